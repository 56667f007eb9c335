with source as (
    select * from {{ source('raw', 'quarantine') }}
),

resolutions as (
    select quarantine_id, max(resolved_at) as resolved_at, any_value(note) as resolution_note
    from {{ source('raw', 'quarantine_resolutions') }}
    group by quarantine_id
)

select
    q.quarantine_id,
    q.batch_id,
    q.source_file,
    q.record,
    q.case_id,
    q.revision,
    q.errors,
    len(q.errors) as n_errors,
    q.quarantined_at,
    q.channel,
    r.resolved_at,
    r.resolution_note
from source q
left join resolutions r using (quarantine_id)
