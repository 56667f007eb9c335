-- Quarantined records with their reasons (no payloads: those stay in the quarantine folder).
select
    quarantine_id,
    source_file,
    record,
    case_id,
    revision::integer as revision,
    n_errors::integer as n_errors,
    array_to_string(list_transform(errors, lambda e: e.path || ': ' || e.message), ' | ') as reasons,
    errors[1].path as first_error_path,
    quarantined_at,
    channel,
    resolved_at is not null as is_resolved,
    resolved_at,
    resolution_note
from {{ ref('stg_quarantine') }}
