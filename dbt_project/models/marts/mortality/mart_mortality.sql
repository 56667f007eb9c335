-- Case fatality and Kaplan-Meier survival figures per stratum value. The survival figures are read
-- from mart_survival (one implementation of the estimate): the value at day N is the one of the
-- last curve row on or before day N (right-continuous: deaths on day N count); the median is the
-- first day with an estimate <= 0.5.
{%- set strata = var('mortality_strata', marts_default_strata()) %}

with cases as (
    select case_id, died, followup_days, kidney_status, sex, age_band, visceral_involvement, lesion_distribution, warfarin
    from {{ ref('dim_cases') }}
),

stratified as (
    {{ marts_case_strata('cases', strata) }}
),

counts as (
    select
        stratum,
        stratum_value,
        count(*) as n_cases,
        count(died) as n_known_outcome,
        count(*) filter (where died) as n_deaths
    from stratified
    group by stratum, stratum_value
    {%- if 'all' in strata %}
    -- the whole registry has a row even when it holds no case
    union all
    select 'all', 'all', 0, 0, 0
    where not exists (select 1 from cases)
    {%- endif %}
),

curves as (
    select * from {{ ref('mart_survival') }}
),

figures as (
    select
        stratum,
        stratum_value,
        arg_max(survival, day) filter (where day <= 30) as survival_30d,
        arg_max(survival, day) filter (where day <= 90) as survival_90d,
        arg_max(survival, day) filter (where day <= 180) as survival_180d,
        arg_max(survival, day) filter (where day <= 365) as survival_365d,
        min(day) filter (where survival <= 0.5) as median_survival_days
    from curves
    group by stratum, stratum_value
)

select
    c.stratum::varchar as stratum,
    c.stratum_value::varchar as stratum_value,
    c.n_cases::integer as n_cases,
    c.n_known_outcome::integer as n_known_outcome,
    c.n_deaths::integer as n_deaths,
    case when c.n_known_outcome > 0 then c.n_deaths::double / c.n_known_outcome::double end as case_fatality,
    f.survival_30d,
    f.survival_90d,
    f.survival_180d,
    f.survival_365d,
    f.median_survival_days::integer as median_survival_days
from counts as c
left join figures as f
    on f.stratum = c.stratum and f.stratum_value = c.stratum_value
