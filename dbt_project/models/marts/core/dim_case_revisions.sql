{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

-- The revision history: every accepted version of every case, without its clinical content.
select
    case_id,
    revision::integer as revision,
    site_id,
    source,
    submitted_at,
    content_hash,
    revision = max(revision) over (partition by case_id) as is_current
from {{ ref('stg_case_records') }}
where {{ pending_cases_filter() }}
