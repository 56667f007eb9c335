with source as (
    select * from {{ source('raw', 'organs') }}
),

renamed as (
    select case_id, revision, organ_index, organ, evidence
    from source
)

select * from renamed
