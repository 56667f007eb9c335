-- Cases in which two organs are involved together: one row per unordered pair of distinct organs
-- (organ_a < organ_b, alphabetically) that at least one case shares. The diagonal (one organ with
-- itself) is mart_organ_involvement.n_cases.
with organs as (
    select distinct o.case_id, o.organ
    from {{ ref('fct_organ_involvement') }} as o
    inner join {{ ref('dim_cases') }} as d on d.case_id = o.case_id
)

select
    a.organ::varchar as organ_a,
    b.organ::varchar as organ_b,
    count(*)::integer as n_cases
from organs as a
inner join organs as b
    on b.case_id = a.case_id and a.organ < b.organ
group by a.organ, b.organ
