with source as (
    select * from {{ source('raw', 'lesions') }}
),

renamed as (
    select case_id, revision, lesion_index, site, laterality, features
    from source
)

select * from renamed
