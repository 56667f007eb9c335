with source as (
    select * from {{ source('raw', 'case_records') }}
),

renamed as (
    select
        case_id,
        revision,
        content_hash,
        batch_id,
        submitted_at,
        source_file,
        site_id,
        source,
        source = 'synthetic' as is_synthetic,
        citation,
        index_year,
        onset_day,
        age_years as age_years_reported,
        sex,
        bmi,
        kidney_status,
        dialysis_modality,
        dialysis_vintage_months,
        comorbidities.diabetes as diabetes,
        comorbidities.obesity as obesity,
        comorbidities.hypertension as hypertension,
        comorbidities.malignancy as malignancy,
        comorbidities,
        exposures.warfarin as warfarin,
        exposures,
        diagnosis_basis,
        diagnosis_day,
        vital_status,
        followup_days,
        cause_of_death,
        autopsy,
        wound_healing
    from source
)

select * from renamed
