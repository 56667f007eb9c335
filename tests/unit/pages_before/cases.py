"""The Cases page: the case list and one case's details."""

from __future__ import annotations

from typing import Any

from dashboards.lib.cohort import CohortFilter
from tests.unit.pages_before.common import CASE_LIST_COLUMNS, Con, query_df


def _search(search: str) -> tuple[str, list[Any]]:
    s = (search or "").strip()
    if not s:
        return "TRUE", []
    like = f"%{s}%"
    return "(case_id ILIKE ? OR site_id ILIKE ? OR source ILIKE ?)", [like, like, like]


def _sites(sites: tuple[str, ...] | None) -> tuple[str, list[Any]]:
    """The rows a user may read: ``sites`` None is every site (coordinator, analyst); a tuple is
    site_staff's own sites (empty: none). Every case-level query here ANDs this into its WHERE
    clause, so a site's staff never read another site's rows, whatever the page asks for."""
    if sites is None:
        return "TRUE", []
    if not sites:
        return "FALSE", []
    return f"site_id IN ({', '.join('?' for _ in sites)})", list(sites)


def case_list(con: Con, f: CohortFilter, search: str = "", limit: int | None = 5000,
              sites: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Cases of the cohort matching ``search`` (case ID, site or source, case-insensitive): ``cases``
    (real cases first, at most ``limit`` rows) and ``n_matching``; only ``sites`` when given."""
    where, params = f.where()
    s_sql, s_params = _search(search)
    scope, scope_params = _sites(sites)
    s_sql, s_params = f"{s_sql} AND {scope}", s_params + scope_params
    n = con.execute(f"SELECT count(*) FROM dim_cases WHERE ({where}) AND {s_sql}", params + s_params).fetchone()[0]
    lim = "" if limit is None else f"LIMIT {int(limit)}"
    df = query_df(
        con,
        f"SELECT {', '.join(CASE_LIST_COLUMNS)} FROM dim_cases WHERE ({where}) AND {s_sql} "
        f"ORDER BY is_synthetic, case_id {lim}",
        params + s_params,
    )
    return {"cases": df, "n_matching": int(n)}


def default_case(con: Con, f: CohortFilter, sites: tuple[str, ...] | None = None) -> str | None:
    """The case shown when none is picked: the cohort's first real case, else its first case."""
    where, params = f.where()
    scope, scope_params = _sites(sites)
    row = con.execute(f"SELECT case_id FROM dim_cases WHERE ({where}) AND {scope} ORDER BY is_synthetic, case_id LIMIT 1",
                      params + scope_params).fetchone()
    return row[0] if row else None


def case_detail(con: Con, case_id: str, sites: tuple[str, ...] | None = None) -> dict[str, Any] | None:
    """Every published fact of one case: ``case`` (its dim_cases row as a dict), ``organs``,
    ``lesions``, ``treatments``, ``labs`` (with the analyte's label and reference range) and
    ``revisions``; ``None`` when there is no such case (among ``sites``, when given)."""
    scope, scope_params = _sites(sites)
    case = query_df(con, f"SELECT * FROM dim_cases WHERE case_id = ? AND {scope}", [case_id] + scope_params)
    if case.empty:
        return None
    organs = query_df(
        con,
        """SELECT o.organ, o.organ_group, o.evidence FROM fct_organ_involvement o
           LEFT JOIN vocabularies v ON v.vocabulary = 'organ' AND v.code = o.organ
           WHERE o.case_id = ? ORDER BY v.sort_order, o.organ""",
        [case_id],
    )
    lesions = query_df(con, "SELECT site, site_group, laterality, features FROM fct_lesions WHERE case_id = ? ORDER BY lesion_index", [case_id])
    treatments = query_df(con, "SELECT treatment, day FROM fct_treatments WHERE case_id = ? ORDER BY treatment_index", [case_id])
    labs = query_df(
        con,
        """SELECT l.analyte, a.label AS analyte_label, l.day, l.value, l.unit, l.value_reported, l.unit_reported,
                  l.ref_low, l.ref_high, l.flag, l.ref_range_from_record, l.is_baseline
           FROM fct_lab_results l LEFT JOIN analytes a USING (analyte)
           WHERE l.case_id = ? ORDER BY l.day NULLS LAST, l.lab_index""",
        [case_id],
    )
    revisions = query_df(
        con,
        "SELECT revision, site_id, source, submitted_at, is_current FROM dim_case_revisions WHERE case_id = ? ORDER BY revision",
        [case_id],
    )
    return {
        "case": case.iloc[0].to_dict(),
        "organs": organs,
        "lesions": lesions,
        "treatments": treatments,
        "labs": labs,
        "revisions": revisions,
    }


def cases_page(con: Con, f: CohortFilter, sites: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Everything /cases computes when it opens: the case list and the default case's details."""
    listing = case_list(con, f, sites=sites)
    cid = default_case(con, f, sites)
    return {**listing, "detail": case_detail(con, cid, sites) if cid else None}
