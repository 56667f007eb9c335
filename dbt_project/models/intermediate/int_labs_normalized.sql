{{ config(materialized='incremental', incremental_strategy='append', on_schema_change='append_new_columns', pre_hook="{{ delete_pending_cases() }}") }}

-- Labs of each case's current revision, converted to the analyte's canonical unit with the factor of
-- seeds/reference/analyte_units.csv. The reported unit is matched exactly against the accepted spellings of
-- seeds/reference/unit_spellings.csv, the table the validator uses too (no normalisation of our own here).
-- The reported value and unit are kept beside the canonical ones.
-- Reference range: the record's own (converted with the same factor) when it gives either limit,
-- otherwise the analyte's default range.
with current_labs as (
    select l.*
    from {{ ref('stg_labs') }} l
    inner join {{ ref('int_cases_current') }} c using (case_id, revision)
    where {{ pending_cases_filter('l.case_id') }}
),

spellings as (
    select spelling, unit
    from {{ ref('unit_spellings') }}
),

units as (
    select analyte, unit, factor
    from {{ ref('analyte_units') }}
),

analytes as (
    select * from {{ ref('analytes') }}
),

converted as (
    select
        l.case_id,
        l.lab_index,
        l.analyte,
        a.loinc,
        l.day,
        l.value_reported * u.factor as value,
        a.canonical_unit as unit,
        l.value_reported,
        l.unit_reported,
        case
            when l.ref_low_reported is null and l.ref_high_reported is null then a.ref_low
            else l.ref_low_reported * u.factor
        end as ref_low,
        case
            when l.ref_low_reported is null and l.ref_high_reported is null then a.ref_high
            else l.ref_high_reported * u.factor
        end as ref_high,
        l.ref_low_reported is not null or l.ref_high_reported is not null as ref_range_from_record
    from current_labs l
    inner join analytes a on a.analyte = l.analyte
    left join spellings s on s.spelling = l.unit_reported
    left join units u on u.analyte = l.analyte and u.unit = s.unit
)

select
    *,
    {{ lab_flag('value', 'ref_low', 'ref_high') }} as flag,
    row_number() over (partition by case_id, analyte order by day, lab_index) = 1 as is_baseline
from converted
