-- The current version of each case: its highest revision. Earlier revisions stay in the raw
-- tables (history); analysts see each case once, in its current revision.
{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

with versions as (
    select
        *,
        count(*) over (partition by case_id) as n_revisions,
        min(submitted_at) over (partition by case_id) as first_submitted_at,
        row_number() over (partition by case_id order by revision desc) as version_rank
    from {{ ref('stg_case_records') }}
    where {{ pending_cases_filter() }}
)

select * exclude (version_rank)
from versions
where version_rank = 1
