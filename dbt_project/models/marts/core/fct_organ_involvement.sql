{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

select
    o.case_id,
    o.organ,
    v.code_group as organ_group,
    o.evidence
from {{ ref('stg_organs') }} o
inner join {{ ref('int_cases_current') }} c using (case_id, revision)
left join {{ ref('vocabularies') }} v on v.vocabulary = 'organ' and v.code = o.organ
where {{ pending_cases_filter('o.case_id') }}
