"""The dashboards' page queries (``dashboards.queries``) return the same figures as before issue 16's
fourth session made them count in DuckDB instead of pulling one row per case into numpy: the frozen
functions of ``tests/unit/pages_before`` (main a964b5c) and today's run side by side on a registry
built through the real CLI, for many cohort filters (small cells and an empty cohort among them),
every stratum, lab options and site-restricted case lists, and the disclosure-mode figures derived
from them (``dashboards.lib.public``) agree too.

Equal means equal: same frames, same dtypes, same values to the last bit -- except a lab summary's
``mean`` and ``sd``, which are now the exact sums rounded once (numpy sums pairwise in row order), so
they may differ in the last bit or two (relative 1e-12 here; every figure the page shows has 3
significant digits).

``PAGES_IDENTICAL_HOME=/path/to/registry-home`` runs the same comparison on that home's published
snapshot as well (e.g. a 100k or 1M benchmark home)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dashboards.lib import labels, public
from dashboards.lib.cohort import CohortFilter
from dashboards.queries import cases as cases_q
from dashboards.queries import common, labs, mortality, organs, overview, quality
from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse import snapshot
from tests.support import run_cli, seed_case, write_jsonl
from tests.unit.pages_before import cases as old_cases
from tests.unit.pages_before import labs as old_labs
from tests.unit.pages_before import mortality as old_mortality
from tests.unit.pages_before import organs as old_organs
from tests.unit.pages_before import overview as old_overview
from tests.unit.pages_before import quality as old_quality

pytestmark = [pytest.mark.slow]

N_CASES = 1500
K = 5  # the disclosure policy's minimum cell size used for the protected figures
APPROX = {"mean", "sd"}  # lab-summary columns summed in a different order (see the module docstring)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    extra = os.environ.get("PAGES_IDENTICAL_HOME")
    if extra:
        return Home(Path(extra))
    h = Home(tmp_path_factory.mktemp("pages") / "home").ensure()
    d = h.root.parent
    (d / "seed.json").write_text(json.dumps(seed_case()))
    write_jsonl(d / "cohort.jsonl", list(generate_records(N_CASES, seed=16)))
    p = run_cli("submit", str(d / "seed.json"), str(d / "cohort.jsonl"), home=h)
    assert p.returncode == 0, p.stdout[-2000:]
    p = run_cli("build", home=h)
    assert p.returncode == 0, p.stdout + p.stderr
    return h


@pytest.fixture(scope="module")
def con(home):
    c = snapshot.connect(home)
    yield c
    c.close()


@pytest.fixture(scope="module")
def filters(con) -> list[CohortFilter]:
    sites = [r[0] for r in con.execute("SELECT site_id FROM dim_cases GROUP BY 1 ORDER BY count(*), 1").fetchall()]
    lo, hi = con.execute("SELECT min(index_year), max(index_year) FROM dim_cases").fetchone()
    return [
        CohortFilter(),
        CohortFilter(sex=("female",)),
        CohortFilter(kidney_status=("dialysis", "ckd"), diabetes="yes"),
        CohortFilter(age_band=("90+",), sex=("male",), warfarin="no"),  # small cells
        CohortFilter(site=(sites[0],), visceral="yes"),  # the smallest site: a handful of cases
        CohortFilter(lesion_distribution=("central", "mixed"), warfarin="unknown", diabetes="no"),
        CohortFilter(years=(lo, lo + 1), include_synthetic=False),
        CohortFilter(years=(hi - 2, hi), kidney_status=("transplant", "aki", "normal")),
        CohortFilter(include_synthetic=False),  # the bundled literature case only
        CohortFilter(years=(1800, 1801)),  # empty
    ]


def same(a, b, path: str = "") -> None:
    """Deep equality: frames (dtypes and values), arrays, dicts, lists, numbers (NaN equals NaN)."""
    if isinstance(a, pd.DataFrame):
        assert isinstance(b, pd.DataFrame), path
        assert list(a.columns) == list(b.columns), path
        exact = [c for c in a.columns if c not in APPROX]
        pd.testing.assert_frame_equal(a[exact], b[exact], check_exact=True, obj=path or "frame")
        for c in a.columns:
            if c in APPROX:
                for x, y in zip(a[c], b[c]):
                    close(x, y, f"{path}.{c}")
        assert a.attrs == b.attrs, path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (path, list(a), list(b) if isinstance(b, dict) else b)
        for k in a:
            same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == np.asarray(b).dtype, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b and type(a) is type(b), (path, a, b)


def by_count(causes: pd.DataFrame) -> pd.DataFrame:
    return causes.sort_values(["n", "cause_of_death"], ascending=[False, True], na_position="last", ignore_index=True)


def close(x, y, path: str) -> None:
    if isinstance(x, str) or isinstance(y, str):
        assert x == y, (path, x, y)
    elif x is None or y is None or (isinstance(x, float) and math.isnan(x)):
        assert (x is None and y is None) or (isinstance(y, float) and math.isnan(y)), (path, x, y)
    else:
        assert math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-300), (path, x, y)


def test_overview_is_unchanged(con, filters):
    for f in filters:
        old, new = old_overview.overview_queries(con, f), overview.overview_queries(con, f)
        same(old, new, f"overview {f.describe()}")
        curve_old = old_mortality.mortality_queries(con, f, None)["curves"]
        curve_new = mortality.mortality_queries(con, f, None)["curves"]
        if int(old["summary"]["n_cases"].iloc[0]):
            same(public.protect_overview(old, curve_old, K), public.protect_overview(new, curve_new, K), f"public overview {f.describe()}")
        # the viewers' overview takes both from one grouping of the cohort
        both = overview.public_overview_queries(con, f)
        curve_one = both.pop("curve")
        same(old, both, f"public overview queries {f.describe()}")
        same({"curve": curve_old}, {"curve": curve_one}, f"public overview curve {f.describe()}")


@pytest.mark.parametrize("stratum", [None, *labels.STRATA])
def test_mortality_is_unchanged(con, filters, stratum):
    vocab = common.vocabulary(con)
    for f in filters:
        old = old_mortality.mortality_queries(con, f, stratum, vocab)
        new = mortality.mortality_queries(con, f, stratum, vocab)
        old["causes"] = by_count(old["causes"])  # ties were in no particular order before
        same(old, new, f"mortality {stratum} {f.describe()}")
        size = common.cohort_size(con, f)
        if not size["n_cases"]:
            continue  # the pages stop before any figure (ui.empty_cohort)
        kw = {"cohort": size, "at_risk_days": common.AT_RISK_DAYS, "survival_days": common.SURVIVAL_DAYS}
        same(public.protect_mortality(old, K, **kw), public.protect_mortality(new, K, **kw), f"public mortality {stratum} {f.describe()}")


@pytest.mark.parametrize("stratum", [None, *labels.STRATA])
def test_organs_are_unchanged(con, filters, stratum):
    for f in filters:
        old, new = old_organs.organ_queries(con, f, stratum), organs.organ_queries(con, f, stratum)
        same(old, new, f"organs {stratum} {f.describe()}")
        if old["n_cases"]:
            same(public.protect_organs(old, K), public.protect_organs(new, K), f"public organs {stratum} {f.describe()}")


@pytest.mark.parametrize("analyte", ["calcium", "phosphate", "pth_intact", "albumin", "vitamin_d_25oh", "hematocrit"])
def test_labs_are_unchanged(con, filters, analyte):
    if analyte not in set(labs.lab_options(con)["analyte"]):
        pytest.skip(f"no analyte {analyte} in this registry")
    for f in filters:
        n = common.cohort_size(con, f)["n_cases"]
        for si in (False, True):
            for baseline_only in (True, False):
                for stratum in (None, "kidney_status", "warfarin", "age_band"):
                    what = f"labs {analyte} si={si} baseline={baseline_only} {stratum} {f.describe()}"
                    kw = {"si": si, "baseline_only": baseline_only, "stratum": stratum}
                    old, new = old_labs.lab_queries(con, f, analyte, **kw), labs.lab_queries(con, f, analyte, **kw)
                    same(old, new, what)
                    protect = {"cohort_n": n if baseline_only else None}
                    same(public.protect_lab_summary(old["summary"], K, **protect), public.protect_lab_summary(new["summary"], K, **protect),
                         "public " + what)


def test_calcium_phosphate_product_is_unchanged(con, filters):
    for f in filters:
        n = common.cohort_size(con, f)["n_cases"]
        for si in (False, True):
            old, new = old_labs.capp_queries(con, f, si=si), labs.capp_queries(con, f, si=si)
            same(old, new, f"capp si={si} {f.describe()}")
            same(public.protect_lab_summary(old["summary"], K, low=False, cohort_n=n),
                 public.protect_lab_summary(new["summary"], K, low=False, cohort_n=n), f"public capp si={si} {f.describe()}")


def test_case_pages_are_unchanged_and_keep_to_the_users_sites(con, filters):
    sites = [r[0] for r in con.execute("SELECT DISTINCT site_id FROM dim_cases ORDER BY 1").fetchall()]
    for f in filters:
        for scope in (None, (sites[0],), (sites[0], sites[-1]), (), ("NO-SUCH-SITE",)):
            old, new = old_cases.cases_page(con, f, scope), cases_q.cases_page(con, f, scope)
            same(old, new, f"cases {scope} {f.describe()}")
            if scope is not None and new["detail"] is not None:
                assert new["detail"]["case"]["site_id"] in scope  # a site's staff see their own sites only
                assert set(new["cases"]["site_id"]) <= set(scope)
            for search in ("", sites[-1], "0001"):
                same(old_cases.case_list(con, f, search, 50, scope), cases_q.case_list(con, f, search, 50, scope), f"list {search}")
            same(old_cases.default_case(con, f, scope), cases_q.default_case(con, f, scope), "default case")


def test_quality_is_unchanged(con):
    same(old_quality.quality_queries(con), quality.quality_queries(con), "quality")


def test_histogram_of_counted_values_is_numpys():
    rng = np.random.default_rng(16)
    for _ in range(300):
        n = int(rng.integers(1, 3000))
        v = np.round(rng.lognormal(2, rng.uniform(0.1, 1.5), n), int(rng.integers(0, 3)))
        extra = (None, float(rng.uniform(0, 20))) if rng.random() < 0.5 else ()
        uniq, counts = np.unique(v, return_counts=True)
        same(old_labs.histogram(v, extra=extra), labs.histogram_counts(uniq, counts, extra=extra), f"histogram n={n}")
        same(old_labs.histogram(v, extra=extra), labs.histogram(v, extra=extra), f"histogram of values n={n}")


def test_the_whole_registry_is_read_from_the_marts(con):
    """The default cohort's organ and lab figures above came from the published marts (the fallback,
    a scan of the facts, is what the filtered cohorts exercised)."""
    for table in ("mart_organ_involvement", "mart_organ_cooccurrence", labs.VALUE_COUNTS):
        assert common.has_table(con, table), table
