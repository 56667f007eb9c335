{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

select
    t.case_id,
    t.treatment,
    t.day,
    t.treatment_index::integer as treatment_index
from {{ ref('stg_treatments') }} t
inner join {{ ref('int_cases_current') }} c using (case_id, revision)
where {{ pending_cases_filter('t.case_id') }}
