select
    t.case_id,
    t.treatment,
    t.day,
    t.treatment_index::integer as treatment_index
from {{ ref('stg_treatments') }} t
inner join {{ ref('int_cases_current') }} c using (case_id, revision)
