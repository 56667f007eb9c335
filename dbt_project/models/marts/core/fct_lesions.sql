{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

select
    l.case_id,
    l.site,
    v.code_group as site_group,
    l.laterality,
    l.features,
    l.lesion_index::integer as lesion_index
from {{ ref('stg_lesions') }} l
inner join {{ ref('int_cases_current') }} c using (case_id, revision)
left join {{ ref('vocabularies') }} v on v.vocabulary = 'lesion_site' and v.code = l.site
where {{ pending_cases_filter('l.case_id') }}
