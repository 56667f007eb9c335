with source as (
    select * from {{ source('raw', 'treatments') }}
),

renamed as (
    select case_id, revision, treatment_index, treatment, day
    from source
)

select * from renamed
