-- How many lab values of the whole registry share each (analyte, baseline or not, value, reference
-- range): the distinct values with their counts, a few thousand rows for millions of values. The
-- dashboards' /labs page opens on the whole registry, whose quartiles, histogram and share outside
-- the range follow from these counts exactly, without scanning fct_lab_results again. The rows of
-- calcium_phosphate_product count dim_cases.calcium_phosphate_product (the page's Ca x P figure).
with labs as (
    select analyte, is_baseline, value, ref_low, ref_high, count(*) as n_values
    from {{ ref('fct_lab_results') }}
    group by all
),

calcium_phosphate as (
    select
        'calcium_phosphate_product' as analyte,
        true as is_baseline,
        calcium_phosphate_product as value,
        null::double as ref_low,
        null::double as ref_high,
        count(*) as n_values
    from {{ ref('dim_cases') }}
    where calcium_phosphate_product is not null
    group by calcium_phosphate_product
)

select analyte::varchar as analyte, is_baseline, value, ref_low, ref_high, n_values::bigint as n_values from labs
union all
select analyte::varchar, is_baseline, value, ref_low, ref_high, n_values::bigint from calcium_phosphate
