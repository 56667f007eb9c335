with source as (
    select * from {{ source('raw', 'quarantine') }}
),

resolutions as (
    select quarantine_id, max(resolved_at) as resolved_at, any_value(note) as resolution_note
    from {{ source('raw', 'quarantine_resolutions') }}
    group by quarantine_id
)

-- What a rejected record may carry to the published quality tables: no free text that could identify a
-- person. The case_id only when it has the contract's form (a name typed into it does not); the file's
-- base name, not the submitter's path; a value repeated by an older message about an identifier's form
-- dropped; the name of an unknown field replaced (a field named after a patient); any other quoted
-- value in a message masked unless it is a plain code (macros/published_text.sql).
select
    q.quarantine_id,
    q.batch_id,
    regexp_extract(q.source_file, '[^/\\]*$') as source_file,
    q.record,
    case when regexp_full_match(q.case_id, '{{ var("case_id_pattern") }}') then q.case_id end as case_id,
    q.revision,
    list_transform(q.errors, lambda e: {
        'path': case when e.message like 'unknown %' then regexp_replace(e.path, '[^.\[\]]+$', '(unknown field)') else e.path end,
        'message': case
            when e.path in ('case_id', 'site_id') then regexp_replace(e.message, '^"(?:[^"\\]|\\.)*" ', '')
            else {{ mask_submitted_values('e.message') }}
        end
    }) as errors,
    len(q.errors) as n_errors,
    q.quarantined_at,
    q.channel,
    r.resolved_at,
    r.resolution_note
from source q
left join resolutions r using (quarantine_id)
