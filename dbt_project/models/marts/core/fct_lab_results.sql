-- A view: the rows live in the incremental table int_labs_normalized (the publisher materialises it).
{{ config(materialized='view') }}

select
    case_id,
    analyte,
    loinc,
    day,
    value,
    unit,
    value_reported,
    unit_reported,
    ref_low,
    ref_high,
    flag,
    is_baseline,
    lab_index::integer as lab_index,
    ref_range_from_record
from {{ ref('int_labs_normalized') }}
