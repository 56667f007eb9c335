"""Every table of every public page, for many random cohorts, through the independent disclosure
checker (tests/disclosure_check.py, which does not import the suppression code).

The public entry script (dashboards/public_app.py) runs under Streamlit's AppTest over a small built
registry. In disclosure mode every CSV a page offers is the table it shows (dashboards/lib/ui.py
``table``), so checking the shown tables checks the CSVs; the browser test downloads one for real.
The checker knows the structure of each page (which columns are counts, which tables are
distributions of the cohort) -- not how they were suppressed."""

from __future__ import annotations

import random
import re

import pandas as pd
import pytest

from dashboards.lib.cohort import AGE_BANDS, KIDNEY_STATUSES, LESION_DISTRIBUTIONS, OPTION_LABELS, SEXES
from orchestration.config import REPO_ROOT
from orchestration.warehouse import snapshot
from tests import disclosure_check as chk
from tests.ui.public_fixture import build_small_registry, cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("public_pages")]

PUBLIC_APP = str(REPO_ROOT / "dashboards" / "public_app.py")
APP = str(REPO_ROOT / "dashboards" / "app.py")
PAGES = ["overview", "mortality", "organs", "labs"]
N_COHORTS = 14


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_small_registry(tmp_path_factory.mktemp("public"))


@pytest.fixture(scope="module")
def sites(built):
    con = snapshot.connect(built)
    try:
        return [r[0] for r in con.execute("SELECT DISTINCT site_id FROM dim_cases ORDER BY 1").fetchall()]
    finally:
        con.close()


def run_page(app_file: str, page: str, params: dict | None = None, session: dict | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(app_file, default_timeout=180)
    for key, v in (params or {}).items():
        at.query_params[key] = v
    for key, v in (session or {}).items():
        at.session_state[key] = v
    at.run()
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def page_text(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [i.value for i in at.info] + [c.value for c in at.caption])


def cohort_of(at) -> tuple[int | None, int | None]:
    m = re.search(r"Cohort: ([\d,]+) cases of ([\d,]+)", page_text(at))
    if not m:
        return None, None
    return int(m.group(1).replace(",", "")), int(m.group(2).replace(",", ""))


def frames(at) -> list[pd.DataFrame]:
    return [d.value for d in at.dataframe]


def col(df: pd.DataFrame, name: str) -> list:
    return list(df[name]) if name in df.columns else []


def pct_counts(pcts, denominators) -> list:
    out = []
    for p, d in zip(pcts, denominators):
        x, dn = chk.number(str(p).rstrip("%")), chk.number(d)
        out.append(None if x is None or dn is None else round(x / 100 * dn))
    return out


def merged(counts, pct_derived) -> list:
    """A cell is known when its count or its percentage is shown."""
    return [c if not chk.hidden(c) else p for c, p in zip(counts, pct_derived)]


# ----------------------------------------------------------------------------- per page


def check_overview(at, n, k) -> list[str]:
    probs = []
    dfs = {tuple(df.columns): df for df in frames(at)}
    summ = next(df for c, df in dfs.items() if c == ("Measure", "Value"))
    val = dict(zip(summ["Measure"], summ["Value"]))
    assert chk.number(val["Cases"]) == n
    derived = []
    d, known = chk.number(val["Deaths"]), chk.number(val["Known outcome"])
    cf = chk.number(str(val["Case fatality"]).rstrip("%"))
    if known is not None:
        derived.append(n - known)
        if d is None and cf is not None:
            d = round(cf / 100 * known)
        if d is not None:
            derived.append(known - d)
    if d is not None:
        derived.append(n - d)  # alive + unknown together
    syn = chk.number(val["Synthetic cases"])
    if syn is not None:
        derived += [syn, n - syn]
    fem = chk.number(str(val["Female"]).rstrip("%"))
    if fem is not None:
        f = round(fem / 100 * n)
        derived += [f, n - f]
    probs += chk.check_counts([val["Deaths"], val["Known outcome"], val["Synthetic cases"]] + derived, k, "overview summary")
    for cols, df in dfs.items():
        if "Cases" in cols and cols != ("Measure", "Value"):
            cells = col(df, "Cases")
            if "% of cases" in cols:
                cells = merged(cells, pct_counts(col(df, "% of cases"), [n] * len(df)))
            probs += chk.check_distribution(cells, k, total=n, where=f"overview {cols[0]}")
    return probs


def check_mortality(at, n, k) -> list[str]:
    probs = []
    for df in frames(at):
        cols = list(df.columns)
        if any(str(c).startswith("Day ") for c in cols):  # number at risk
            for _, r in df.iterrows():
                vals = [chk.number(r[c]) for c in cols if str(c).startswith("Day ")]
                probs += chk.check_counts(vals, k, "at risk")
                shown = [v for v in vals if v is not None]
                probs += chk.check_counts([a - b for a, b in zip(shown, shown[1:])], k, "at risk, left between days")
        elif "Known outcome" in cols:  # survival table: groups x (deaths, alive, unknown), with partial sums
            cells, rows_tot, extra = [], [], []
            for i, (_, r) in enumerate(df.iterrows()):
                cases, known, deaths = r["Cases"], r["Known outcome"], r["Deaths"]
                cf = chk.number(str(r["Case fatality"]).rstrip("%"))
                dn = chk.number(deaths)
                if dn is None and cf is not None and chk.number(known) is not None:
                    dn = round(cf / 100 * chk.number(known))
                cells.append([dn, None, None])
                rows_tot.append(cases)
                extra.append(([(i, 0), (i, 1)], known))
            probs += chk.check_table(cells, k, row_totals=rows_tot, grand=n, extra=extra, where="survival table")
        elif "% of deaths" in cols:
            for c, p in zip(col(df, "Deaths"), col(df, "% of deaths")):
                if chk.hidden(c) and not chk.hidden(p):
                    probs.append("causes: a percentage shown for a suppressed count")
            probs += chk.check_counts(col(df, "Deaths"), k, "causes")
            probs += chk.check_distribution(col(df, "Deaths"), k, total=None, where="causes")
    return probs


def check_organs(at, n, k) -> list[str]:
    probs = []
    organ_n = {}
    for df in frames(at):
        cols = list(df.columns)
        if "Organ group" in cols:
            cells = merged(col(df, "Cases"), pct_counts(col(df, "% of cases"), [n] * len(df)))
            for o, c in zip(col(df, "Organ"), cells):
                probs += chk.check_distribution([c, None if chk.number(c) is None else n - chk.number(c)], k, total=n, where=f"organ {o}")
                organ_n[o] = chk.number(c)
        elif "Visceral (n)" in cols:
            cases = col(df, "Cases")
            cut = merged(col(df, "Cutaneous only (n)"), pct_counts(col(df, "Cutaneous only (%)"), cases))
            vis = merged(col(df, "Visceral (n)"), pct_counts(col(df, "Visceral (%)"), cases))
            cells = [[a, b, None] for a, b in zip(cut, vis)]
            probs += chk.check_table(cells, k, row_totals=cases, grand=n, where="cutaneous vs visceral")
    for df in frames(at):
        if "Cases with both" in df.columns:
            probs += chk.check_counts(col(df, "Cases with both"), k, "pairs")
            for a, b, v in zip(col(df, "Organ"), col(df, "With organ"), col(df, "Cases with both")):
                v = chk.number(v)
                for o in (a, b):
                    if v is not None and organ_n.get(o) is not None:
                        probs += chk.check_counts([organ_n[o] - v], k, f"{o} without the other organ")
    return probs


def check_labs(at, n, k, *, per_case: bool = True) -> list[str]:
    probs = []
    for df in frames(at):
        if "n" not in df.columns:
            continue
        q = df.rename(columns=lambda c: str(c).split(" (")[0].lower())
        probs += chk.check_no_extremes(q, "lab summary")
        probs += chk.check_quantiles(q, k, where="lab summary")
        ns = col(df, "n")
        probs += chk.check_counts(ns, k, "lab n")
        if chk.number(ns[0]) is not None:
            is_capp = "Below range (%)" not in df.columns  # Ca x P: always one value per case with both
            if per_case or is_capp:  # one value per case: the cases without one are a derived count
                probs += chk.check_counts([n - chk.number(ns[0])], k, "cases without a value")
            probs += chk.check_distribution(ns[1:], k, total=ns[0], where="lab groups") if len(ns) > 1 else []
        for c in df.columns:
            if str(c).startswith(("Below", "Above")):
                cnt = pct_counts(col(df, c), ns)
                probs += chk.check_counts(cnt, k, f"lab {c}")
                for v, nn in zip(col(df, c), ns):
                    if not chk.hidden(v) and chk.hidden(nn):
                        probs.append(f"lab {c}: a percentage of a hidden group size")
    return probs


CHECKS = {"overview": check_overview, "mortality": check_mortality, "organs": check_organs, "labs": check_labs}


def random_params(rng: random.Random, sites: list[str]) -> dict:
    p: dict = {}
    pick = lambda opts: rng.sample(list(opts), rng.randint(1, min(2, len(opts))))  # noqa: E731
    if rng.random() < 0.5:
        p["sex"] = [OPTION_LABELS["sex"][s] for s in pick(SEXES[:2])]
    if rng.random() < 0.5:
        p["age"] = pick(AGE_BANDS[2:6])
    if rng.random() < 0.4:
        p["kidney"] = [OPTION_LABELS["kidney_status"][s] for s in pick(KIDNEY_STATUSES[:3])]
    if rng.random() < 0.3:
        p["lesions"] = [OPTION_LABELS["lesion_distribution"][s] for s in pick(LESION_DISTRIBUTIONS[:3])]
    if rng.random() < 0.3:
        p["site"] = pick(sites)
    if rng.random() < 0.3:
        p["diabetes"] = rng.choice(["Yes", "No"])
    if rng.random() < 0.3:
        p["values"] = "all"
    if rng.random() < 0.3:
        p["units"] = "si"
    if rng.random() < 0.3:
        p["km_by"] = rng.choice(["sex", "age_band", "kidney_status", "diabetes", "warfarin"])
        p["organs_by"] = p["km_by"]
        p["labs_by"] = p["km_by"]
    return p


@pytest.mark.parametrize("seed", range(N_COHORTS))
def test_no_small_or_derivable_count_on_any_public_page(built, sites, monkeypatch, seed):
    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    rng = random.Random(seed)
    k = 5
    params = {} if seed == 0 else random_params(rng, sites)
    for page in PAGES:
        at = run_page(PUBLIC_APP, page, params)
        text = page_text(at)
        assert f"k = {k}" in text, "the policy is shown on the page"
        n, total = cohort_of(at)
        if n is None:  # refused: one line saying why, no figure at all
            assert "no figures are shown" in text
            assert not at.dataframe and not at.get("plotly_chart") and not [m for m in at.metric if m.label != "Cohort"]
            continue
        assert at.dataframe, f"/{page} shows no table"
        problems = CHECKS[page](at, n, k) if page != "labs" else check_labs(at, n, k, per_case=params.get("values") != "all")
        for df in frames(at):
            problems += chk.check_no_extremes(df.rename(columns=lambda c: str(c).split(" (")[0].lower()), page)
        assert problems == [], (page, params, problems[:5])


def test_policy_change_applies_and_marks_cells(built, monkeypatch):
    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    p = cli(built, "disclosure", "set", "--min-cell", "11")
    assert p.returncode == 0, p.stderr
    try:
        at = run_page(PUBLIC_APP, "overview")
        assert "k = 11" in page_text(at)
        n, _ = cohort_of(at)
        assert check_overview(at, n, 11) == []
        cells = [str(v) for df in frames(at) for c in df.columns for v in df[c]]
        assert "suppressed" in cells, "small cells are marked"
        assert not any(d.value.empty for d in at.dataframe)
    finally:
        assert cli(built, "disclosure", "set", "--min-cell", "5").returncode == 0


def test_a_cohort_below_k_shows_no_figure(built, monkeypatch):
    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    # the seed case is the only one of its kind in many combinations; a narrow filter leaves < 5
    at = run_page(PUBLIC_APP, "mortality", {"sex": ["Male"], "age": ["50-59"], "kidney": ["Transplant"], "diabetes": "Yes"})
    text = page_text(at)
    assert "no figures are shown" in text
    assert not at.dataframe and not at.get("plotly_chart")


def test_filters_offer_no_level_below_k(built, monkeypatch):
    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    con = snapshot.connect(built)
    try:
        small_sites = [r[0] for r in con.execute("SELECT site_id FROM dim_cases GROUP BY 1 HAVING count(*) < 5").fetchall()]
        big_sites = [r[0] for r in con.execute("SELECT site_id FROM dim_cases GROUP BY 1 HAVING count(*) >= 5").fetchall()]
    finally:
        con.close()
    at = run_page(PUBLIC_APP, "overview")
    (site,) = [m for m in at.sidebar.multiselect if m.label == "Site"]
    assert set(site.options) == set(big_sites)
    assert small_sites, "the fixture should have small sites"
    # a small site asked for in the URL is dropped, not applied
    at = run_page(PUBLIC_APP, "overview", {"site": [small_sites[0]]})
    n, total = cohort_of(at)
    assert n == total


def test_viewers_see_the_policy_and_analysts_exact_figures(built, monkeypatch):
    """The signed-in user's roles decide (dashboards/lib/auth.py resolves them on every run): here the
    one local user of single-user mode is given the roles under test."""
    from orchestration.registry import access

    coordinator = access.local_coordinator

    def signed_in_as(roles):
        user = (lambda: access.User("someone@example.org", frozenset(roles))) if roles else coordinator
        monkeypatch.setattr(access, "local_coordinator", user)

    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    signed_in_as({"viewer"})
    viewer = run_page(APP, "overview")
    assert "k = 5" in page_text(viewer)
    assert check_overview(viewer, *cohort_of(viewer)[:1], 5) == []
    for roles in ({"analyst"}, {"coordinator", "viewer"}, None):
        signed_in_as(roles)
        at = run_page(APP, "overview")
        assert "k = 5" not in page_text(at)
        cells = [str(v) for df in frames(at) for c in df.columns for v in df[c]]
        assert "suppressed" not in cells
