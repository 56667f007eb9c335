-- Records received per day and what became of them.
with accepted as (
    select date_trunc('day', submitted_at)::date as day, count(*) as n
    from {{ ref('stg_case_records') }}
    group by 1
),

quarantined as (
    select date_trunc('day', quarantined_at)::date as day, count(*) as n
    from {{ ref('stg_quarantine') }}
    group by 1
)

select
    day,
    coalesce(a.n, 0)::bigint as n_accepted,
    coalesce(q.n, 0)::bigint as n_quarantined
from accepted a
full outer join quarantined q using (day)
