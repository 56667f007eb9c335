-- Cases with calcific vasculopathy of each organ, among all cases of the registry. Counts are of
-- cases (current revision), not of records or organ mentions. Organs that no case involves are not
-- listed (join the vocabularies table, vocabulary = 'organ', for the complete list).
with cases as (
    select count(*) as n_all from {{ ref('dim_cases') }}
),

organs as (
    select
        o.organ,
        min(o.organ_group) as organ_group,
        count(distinct o.case_id) as n_cases
    from {{ ref('fct_organ_involvement') }} as o
    inner join {{ ref('dim_cases') }} as d on d.case_id = o.case_id
    group by o.organ
)

select
    o.organ::varchar as organ,
    o.organ_group::varchar as organ_group,
    o.n_cases::integer as n_cases,
    100.0 * o.n_cases::double / c.n_all::double as pct_of_cases
from organs as o
cross join cases as c
