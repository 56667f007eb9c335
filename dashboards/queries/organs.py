"""The Organs page: organ involvement and co-occurrence by stratum."""

from __future__ import annotations

from typing import Any

import pandas as pd

from dashboards.lib import labels
from dashboards.lib.cohort import CohortFilter
from dashboards.queries.common import (
    Con,
    check_stratum,
    cohort_size,
    has_table,
    in_cohort,
    named,
    numbered,
    query_df,
    sort_levels,
    vocabulary,
)


def organ_queries(con: Con, f: CohortFilter, stratum: str | None = "kidney_status") -> dict[str, Any]:
    """Organ frequency (``frequency``: cases with the organ, % of the cohort), pairwise co-occurrence
    (``cooccurrence``: cases with both organs) and cutaneous-only versus visceral by stratum
    (``by_stratum``).

    A filtered cohort: one pass over ``fct_organ_involvement``, each case's set of organs as a bit mask,
    counted per distinct mask (a few hundred); frequencies and pairs are then read off the masks. The
    whole registry: the organ marts, which hold these very counts."""
    check_stratum(stratum)
    n_cases = cohort_size(con, f)["n_cases"]
    ref = con.execute("SELECT code, code_group, sort_order FROM vocabularies WHERE vocabulary = 'organ' ORDER BY sort_order").fetchall()
    # the whole registry (the page's default) is what mart_organ_involvement and mart_organ_cooccurrence
    # count, case by case as below: read them instead of grouping a million cases' organs again
    whole = f.is_default and has_table(con, "mart_organ_involvement") and has_table(con, "mart_organ_cooccurrence")
    if whole:
        counted = dict(con.execute("SELECT organ, n_cases FROM mart_organ_involvement").fetchall())
        present = list(counted)
    else:
        present = [r[0] for r in con.execute("SELECT DISTINCT organ FROM fct_organ_involvement").fetchall()]
    organs = [r[0] for r in ref] + sorted(o for o in present if o not in {r[0] for r in ref})
    group_of = {r[0]: r[1] for r in ref}
    order_of = {o: i + 1 for i, o in enumerate(organs)}
    freq_n = dict.fromkeys(organs, 0)
    pairs: dict[tuple[str, str], int] = {}
    if whole:
        for o, n in counted.items():
            freq_n[o] = int(n)
        for a, b, n in con.execute("SELECT organ_a, organ_b, n_cases FROM mart_organ_cooccurrence").fetchall():
            pairs[(a, b) if a < b else (b, a)] = int(n)
    else:
        cond, cparams = in_cohort(f)
        masks = con.execute(
            f"""SELECT mask, count(*) AS n FROM (
                    SELECT bit_or(1::UBIGINT << (list_position($organs, organ) - 1)::UBIGINT) AS mask
                    FROM fct_organ_involvement WHERE {numbered(cond)} GROUP BY case_id)
                GROUP BY mask""",
            {"organs": organs, **named(cparams)},
        ).fetchall()
        for mask, n in masks:
            have = [o for i, o in enumerate(organs) if int(mask) >> i & 1]
            for i, a in enumerate(have):
                freq_n[a] += n
                for b in have[i + 1:]:
                    key = (a, b) if a < b else (b, a)
                    pairs[key] = pairs.get(key, 0) + n
    freq = pd.DataFrame(
        [{"organ": o, "organ_group": group_of.get(o, "visceral"), "n": freq_n[o], "sort_order": order_of[o]} for o in organs if freq_n[o]],
        columns=["organ", "organ_group", "n", "sort_order"],
    ).sort_values(["n", "organ"], ascending=[False, True], ignore_index=True)
    freq["pct_of_cases"] = freq["n"] / max(n_cases, 1)
    co = pd.DataFrame([(a, b, n) for (a, b), n in sorted(pairs.items())], columns=["organ_a", "organ_b", "n"])
    where, params = f.where()
    col = stratum or "'All cases'"
    by = query_df(
        con,
        f"""SELECT {col} AS level, count(*) AS n_cases,
                   count(*) FILTER (WHERE NOT visceral_involvement) AS n_cutaneous_only,
                   count(*) FILTER (WHERE visceral_involvement) AS n_visceral
            FROM dim_cases WHERE {where} GROUP BY 1""",
        params,
    )
    by = sort_levels(by, "level", stratum)
    vocab = vocabulary(con)
    by.insert(0, "group", [labels.stratum_value_label(stratum, v, vocab) if stratum else "All cases" for v in by["level"]])
    by = by.drop(columns="level")
    by["pct_cutaneous_only"] = by["n_cutaneous_only"] / by["n_cases"].clip(lower=1)
    by["pct_visceral"] = by["n_visceral"] / by["n_cases"].clip(lower=1)
    return {"n_cases": n_cases, "frequency": freq, "cooccurrence": co, "by_stratum": by}


#: The stratum the page opens with.
DEFAULT_ORGAN_STRATUM = "kidney_status"


def organs_page(con: Con, f: CohortFilter) -> dict[str, Any]:
    return organ_queries(con, f, DEFAULT_ORGAN_STRATUM)
