{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

with cases as (
    select * from {{ ref('int_cases_current') }}
    where {{ pending_cases_filter() }}
),

vocab as (
    select vocabulary, code, code_group from {{ ref('vocabularies') }}
),

organs as (
    select
        o.case_id,
        count(distinct o.organ) as organ_count,
        bool_or(v.code_group = 'visceral') as visceral_involvement
    from {{ ref('stg_organs') }} o
    inner join cases c using (case_id, revision)
    left join vocab v on v.vocabulary = 'organ' and v.code = o.organ
    group by o.case_id
),

lesions as (
    select
        l.case_id,
        bool_or(v.code_group = 'central') as any_central,
        bool_or(v.code_group = 'peripheral') as any_peripheral
    from {{ ref('stg_lesions') }} l
    inner join cases c using (case_id, revision)
    left join vocab v on v.vocabulary = 'lesion_site' and v.code = l.site
    group by l.case_id
),

baseline as (
    -- each case's baseline calcium and phosphate (canonical mg/dL), for the Ca x P product
    select
        case_id,
        max(value) filter (where analyte = 'calcium') as baseline_calcium,
        max(value) filter (where analyte = 'phosphate') as baseline_phosphate
    from {{ ref('int_labs_normalized') }}
    where is_baseline and analyte in ('calcium', 'phosphate') and {{ pending_cases_filter() }}
    group by case_id
),

final as (
    select
        c.case_id,
        c.revision::integer as revision,
        c.site_id,
        c.source,
        c.is_synthetic,
        c.index_year,
        least(c.age_years_reported, 90) as age_years,
        -- the bands are the seed age_bands (codes of the age_band vocabulary); ages are whole years
        (select b.age_band from {{ ref('age_bands') }} b
         where c.age_years_reported between b.age_min and b.age_max) as age_band,
        c.sex,
        c.kidney_status,
        c.dialysis_modality,
        c.dialysis_vintage_months,
        c.diabetes,
        c.obesity,
        c.warfarin,
        c.diagnosis_basis,
        case
            when coalesce(l.any_central, false) and coalesce(l.any_peripheral, false) then 'mixed'
            when coalesce(l.any_central, false) then 'central'
            when coalesce(l.any_peripheral, false) then 'peripheral'
            else 'none'
        end as lesion_distribution,
        coalesce(o.visceral_involvement, false) as visceral_involvement,
        coalesce(o.organ_count, 0)::integer as organ_count,
        c.vital_status,
        case c.vital_status when 'dead' then true when 'alive' then false end as died,
        c.followup_days,
        c.cause_of_death,
        c.onset_day,
        c.diagnosis_day,
        c.bmi,
        c.hypertension,
        c.malignancy,
        c.autopsy,
        c.wound_healing,
        b.baseline_calcium,
        b.baseline_phosphate,
        b.baseline_calcium * b.baseline_phosphate as calcium_phosphate_product,
        c.n_revisions::integer as n_revisions,
        c.first_submitted_at,
        c.submitted_at as revision_submitted_at
    from cases c
    left join organs o using (case_id)
    left join lesions l using (case_id)
    left join baseline b using (case_id)
)

select * from final
