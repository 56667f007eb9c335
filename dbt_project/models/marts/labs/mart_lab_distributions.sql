-- Distribution of each analyte's baseline value (each case's earliest value of the analyte, see
-- fct_lab_results.is_baseline) in the analyte's canonical unit, plus the calcium x phosphate
-- product of the cases having baseline values of both. Quartiles are continuous (linear
-- interpolation, numpy's default); sd is the sample standard deviation.
--
-- Computed from mart_lab_value_counts (each distinct baseline value with its count, a few thousand
-- rows) rather than from the values themselves (millions of rows): the counts, extremes and
-- quartiles are exactly those of quantile_cont over the values (same positions, same
-- interpolation), the mean and sd equal to ~1e-14 (DuckDB sums floats in parallel, in no fixed
-- order, so they differ in their last bits between any two builds anyway). At a million cases:
-- 0.56-0.79 s -> 0.04 s, a second off every build, one new case included (bench/README.md).
-- The flags follow fct_lab_results.flag from the value and its reference range; the calcium x
-- phosphate product has no lower limit and is high above 55 mg²/dL² (KDOQI 2003, CKD stage 5).
{%- set caxp_high = 55 %}

with counts as (
    -- the baseline rows of mart_lab_value_counts: each distinct (analyte, value, reference range)
    select analyte, value, ref_low, ref_high, n_values
    from {{ ref('mart_lab_value_counts') }}
    where is_baseline
),

per_value as (
    select
        analyte,
        value,
        sum(n_values) as n,
        sum(n_values) filter (where flag = 'low') as n_low,
        sum(n_values) filter (where flag = 'high') as n_high
    from (
        select
            *,
            case
                when analyte = 'calcium_phosphate_product' then case when value > {{ caxp_high }} then 'high' else 'normal' end
                -- as fct_lab_results.flag, from the value and its reference range
                else {{ lab_flag('value', 'ref_low', 'ref_high') }}
            end as flag
        from counts
    )
    group by analyte, value
),

ranked as (
    -- each distinct value with the number of values up to it, in order: the sorted values, compressed
    select
        *,
        sum(n) over (partition by analyte order by value rows between unbounded preceding and current row) as upto,
        min(value) over (partition by analyte) as lowest
    from per_value
),

totals as (
    -- n counts every baseline row (count(*)); the statistics, like avg and quantile_cont, only the
    -- values that are not null (nv; the contract requires a value, so the two are equal in practice)
    select
        analyte,
        sum(n) as n,
        sum(n) filter (where value is not null) as nv,
        sum(value * n) / sum(n) filter (where value is not null) as mean,
        -- the values shifted by the smallest, so that equal values give exactly 0, as stddev_samp does
        sum((value - lowest) * n) / sum(n) filter (where value is not null) as shifted_mean,
        min(value) as min,
        max(value) as max,
        coalesce(sum(n_low), 0) as n_low,
        coalesce(sum(n_high), 0) as n_high
    from ranked
    group by analyte
),

positions as (
    -- quantile_cont's positions: h = (n - 1) p, between the values of rank floor(h) and ceil(h) (from 0)
    select t.*, q.i, (t.nv - 1)::double * q.p as h
    from totals t
    cross join (values (1, 0.25), (2, 0.5), (3, 0.75)) as q(i, p)
),

quartiles as (
    select
        p.analyte,
        p.i,
        -- the value of a rank is the first whose count up to it exceeds the rank
        (select min(r.value) from ranked r where r.analyte = p.analyte and r.upto > floor(p.h)) as lo,
        (select min(r.value) from ranked r where r.analyte = p.analyte and r.upto > ceil(p.h)) as hi,
        p.h - floor(p.h) as d
    from positions p
),

spread as (
    select r.analyte, sum(r.n * ((r.value - r.lowest) - t.shifted_mean) ** 2) as ss
    from ranked r
    inner join totals t using (analyte)
    group by r.analyte
),

summary as (
    select
        t.*,
        case when t.nv > 1 then sqrt(s.ss / (t.nv - 1)) end as sd,
        -- linear interpolation as quantile_cont does it: lo + (hi - lo) * d
        list(case when q.d = 0 then q.lo else q.lo + (q.hi - q.lo) * q.d end order by q.i) as quartiles
    from totals t
    inner join spread s using (analyte)
    inner join quartiles q using (analyte)
    group by all
)

select
    analyte::varchar as analyte,
    coalesce(a.canonical_unit, 'mg²/dL²')::varchar as unit,
    n::integer as n,
    mean::double as mean,
    sd::double as sd,
    min::double as min,
    quartiles[1]::double as p25,
    quartiles[2]::double as median,
    quartiles[3]::double as p75,
    max::double as max,
    n_low::integer as n_low,
    n_high::integer as n_high,
    100.0 * n_low::double / n::double as pct_low,
    100.0 * n_high::double / n::double as pct_high
from summary
left join {{ ref('analytes') }} a using (analyte)
