with source as (
    select * from {{ source('raw', 'labs') }}
),

renamed as (
    select
        case_id,
        revision,
        lab_index,
        analyte,
        day,
        value as value_reported,
        unit as unit_reported,
        ref_low as ref_low_reported,
        ref_high as ref_high_reported
    from source
)

select * from renamed
