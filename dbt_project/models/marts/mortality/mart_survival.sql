-- Kaplan-Meier survival curves, with their 95 % band, of every mortality stratum (see km_curve).
-- Time: dim_cases.followup_days; event: death (died). Cases whose vital status is unknown (died
-- null), or with no follow-up day, cannot enter a curve.
{%- set strata = var('mortality_strata', marts_default_strata()) %}

with cases as (
    select case_id, died, followup_days, kidney_status, sex, age_band, visceral_involvement, lesion_distribution, warfarin
    from {{ ref('dim_cases') }}
),

stratified as (
    {{ marts_case_strata('cases', strata) }}
),

observations as (
    select stratum, stratum_value, followup_days as day, died
    from stratified
    where died is not null and followup_days is not null
),

curves as (
    {{ km_curve('observations') }}
)

select stratum, stratum_value, day, n_at_risk, n_events, n_censored, survival, ci_lower, ci_upper
from curves
