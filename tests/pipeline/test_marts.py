"""The analytics marts against independent computations, on registries built through the real CLI.

The expected figures are computed here from the *submitted records* (current revision of each
accepted case), in plain Python with the reference CSVs -- not from the warehouse -- and with
lifelines (Kaplan-Meier, its band, the median, the log-rank test) and numpy (quantiles). Then
orchestration.analytics.stats, the dashboards' implementation, must reproduce the marts from dim_cases and
fct_lab_results.

Two homes: a synthetic cohort of a few hundred cases plus hand-made edge cases, submitted in two
batches (revisions, duplicates and a conflict in the second); and a tiny hand-made registry whose
curves land exactly on one half (where floating point decides the median).
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import math
import os
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from lifelines import KaplanMeierFitter
from lifelines.statistics import multivariate_logrank_test

from orchestration.analytics import stats
from orchestration.config import DBT_PROJECT_DIR, REFERENCE_DIR, Home
from orchestration.synthetic.generate import generate_records
from tests.support import record, run_cli, seed_case, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("marts")]

TOL = 1e-6  # what the marts promise against an independent computation
EXACT = 1e-9  # orchestration.analytics.stats against the marts: the same definitions

# ----------------------------------------------------------------------------- reference data, read independently


def _csv(name: str) -> list[dict]:
    with (REFERENCE_DIR / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _ukey(unit: str) -> str:
    return "".join(unit.split()).replace("µ", "u").replace("μ", "u").replace("×", "x").lower()


ANALYTES = {r["analyte"]: r for r in _csv("analytes.csv")}
FACTORS = {(r["analyte"], _ukey(r["unit"])): float(r["factor"]) for r in _csv("analyte_units.csv")}
GROUPS = {(r["vocabulary"], r["code"]): r["code_group"] for r in _csv("vocabularies.csv")}


def _num(x: str) -> float | None:
    return float(x) if x not in ("", None) else None


# ----------------------------------------------------------------------------- building registries


def _submit(home: Home, path: Path) -> list[str]:
    p = run_cli("submit", "--format", "json", str(path), home=home)
    return [r["status"] for r in json.loads(p.stdout)]


def _build(home: Home) -> None:
    p = run_cli("build", home=home)
    assert p.returncode == 0 and "build succeeded" in p.stdout, p.stdout + p.stderr


def _current(batches: list[tuple[list[dict], list[str]]]) -> dict[str, dict]:
    """The current revision of every accepted case, by plain Python."""
    current: dict[str, dict] = {}
    for recs, statuses in batches:
        for r, s in zip(recs, statuses):
            if s == "accepted" and (r["case_id"] not in current or r.get("revision", 1) > current[r["case_id"]].get("revision", 1)):
                current[r["case_id"]] = r
    return current


def _case(cid: str, *, sex="female", age=70, kidney="dialysis", vital="dead", days=100, warfarin=None, **changes) -> dict:
    outcome = {"vital_status": vital}
    if days is not None:
        outcome["followup_days"] = days
    changes.setdefault("diagnosis", {"basis": "biopsy", "day": 0})  # nothing after a short follow-up
    changes.setdefault("treatments", [{"treatment": "sodium_thiosulfate", "day": 0}])
    r = record(case_id=cid, patient={"age_years": age, "sex": sex}, outcome=outcome, **changes)
    r["kidney"] = {"status": kidney} if kidney != "dialysis" else r["kidney"]
    if warfarin is not None:
        r["exposures"] = {"warfarin": warfarin}
    return r


def handmade_cases() -> list[dict]:
    cases = []
    # tied day 30: three deaths and two censorings; a death exactly on day 365 and on day 90
    for i, vital in enumerate(["dead", "dead", "dead", "alive", "alive"]):
        cases.append(_case(f"MARTS-TIE-{i}", vital=vital, days=30, warfarin=True))
    cases.append(_case("MARTS-TIE-365", vital="dead", days=365))
    cases.append(_case("MARTS-TIE-90", vital="dead", days=90, kidney="aki"))
    # a stratum value (sex other) in which every outcome is unknown, with and without a follow-up day
    cases.append(_case("MARTS-UNK-0", sex="other", vital="unknown", days=None))
    cases.append(_case("MARTS-UNK-1", sex="other", vital="unknown", days=50))
    cases.append(_case("MARTS-UNK-2", sex="other", vital="unknown", days=None, warfarin=False))
    # ages of 90 and more are published as 90
    cases.append(_case("MARTS-OLD-95", age=95, vital="alive", days=20))
    cases.append(_case("MARTS-OLD-101", age=101, vital="dead", days=12))
    cases.append(_case("MARTS-OLD-90", age=90, vital="dead", days=0))  # a death on day 0
    # labs in every spelling, later values, a baseline listed after a later value, an own range, a tie
    cases.append(
        _case(
            "MARTS-LAB-1",
            labs=[
                {"analyte": "calcium", "value": 9.1, "unit": "MG/DL", "day": 5},
                {"analyte": "calcium", "value": 2.3, "unit": "mmol/l", "day": 0},
                {"analyte": "phosphate", "value": 1.9, "unit": "mmol/l", "day": 0, "ref_low": 0.8, "ref_high": 1.45},
                {"analyte": "creatinine", "value": 612, "unit": "µmol/L", "day": 0},
                {"analyte": "creatinine", "value": 5.1, "unit": "mg/dl", "day": 10},
                {"analyte": "pth_intact", "value": 800, "unit": "pg/ml", "day": 1},
                {"analyte": "pth_intact", "value": 40, "unit": "pmol/L", "day": 1},
            ],
        )
    )
    cases.append(
        _case(
            "MARTS-LAB-2",
            labs=[
                {"analyte": "calcium", "value": 11.5, "unit": "mg/dL", "day": 7},
                {"analyte": "calcium", "value": 2.9, "unit": "mmol/L", "day": 3},
                {"analyte": "phosphate", "value": 7.8, "unit": "MG/DL", "day": 3},
                {"analyte": "creatinine", "value": 1020, "unit": "umol/L"},
            ],
        )
    )
    # several organs, visceral
    cases.append(
        _case(
            "MARTS-ORG-1",
            organs=[{"organ": o} for o in ("skin", "subcutaneous_fat", "lung", "heart", "eye")],
            lesions=[{"site": "thigh"}, {"site": "foot"}],
        )
    )
    return cases


@pytest.fixture(scope="module")
def main(tmp_path_factory) -> tuple[Home, dict[str, dict]]:
    home = Home(tmp_path_factory.mktemp("marts") / "home").ensure()
    d = home.root.parent
    synthetic = list(generate_records(420, seed=29))
    first = [seed_case(), *synthetic, *handmade_cases()]
    write_jsonl(d / "first.jsonl", first)
    s1 = _submit(home, d / "first.jsonl")
    assert s1 == ["accepted"] * len(first)

    # second batch: revisions (outcome, sex, organs and labs change), duplicates, a conflict
    by_id = {r["case_id"]: r for r in first}
    alive = next(r for r in synthetic if r["outcome"]["vital_status"] == "alive")
    dead = next(r for r in synthetic if r["outcome"]["vital_status"] == "dead" and r["patient"]["sex"] == "female")
    rev_alive = copy.deepcopy(alive) | {"revision": 2}
    rev_alive["outcome"] = {"vital_status": "dead", "followup_days": alive["outcome"]["followup_days"], "cause_of_death": "sepsis"}
    rev_alive["organs"] = [{"organ": "skin"}, {"organ": "kidney"}, {"organ": "lymph_node"}]
    rev_dead = copy.deepcopy(dead) | {"revision": 3}
    rev_dead["patient"] = {**dead["patient"], "sex": "male", "age_years": 93}
    rev_dead["outcome"] = {"vital_status": "unknown"}
    rev_lab = copy.deepcopy(by_id["MARTS-LAB-1"]) | {"revision": 2}
    rev_lab["labs"] = [
        {"analyte": "calcium", "value": 10.4, "unit": "MG/DL", "day": 0},
        {"analyte": "calcium", "value": 2.3, "unit": "mmol/l", "day": 2},
        {"analyte": "phosphate", "value": 2.1, "unit": "mmol/l", "day": 0},
    ]
    conflict = copy.deepcopy(synthetic[5]) | {"site_id": "CONFLICT"}
    second = [rev_alive, synthetic[3], rev_dead, conflict, by_id["MARTS-TIE-0"], rev_lab]
    write_jsonl(d / "second.jsonl", second)
    s2 = _submit(home, d / "second.jsonl")
    assert s2 == ["accepted", "duplicate", "accepted", "quarantined", "duplicate", "accepted"]
    _build(home)
    return home, _current([(first, s1), (second, s2)])


def tiny_cases() -> list[dict]:
    """Curves that land exactly on one half: where lifelines' floating point decides the median."""
    cases = []
    for i in range(6):  # 6 deaths on days 1..6: S(3) = 1/2 exactly, lifelines says 0.5000000000000001
        cases.append(_case(f"HALF6-{i}", sex="female", days=i + 1, warfarin=True))
    for i in range(8):  # 8 deaths: the same in another stratum
        cases.append(_case(f"HALF8-{i}", sex="male", kidney="ckd", days=10 * (i + 1), warfarin=False))
    for i, (vital, days) in enumerate([("dead", 10), ("dead", 20), ("alive", 30), ("alive", 40)]):
        cases.append(_case(f"HALF4-{i}", sex="unknown", kidney="aki", vital=vital, days=days, age=35))
    cases.append(_case("HALF-UNK", sex="other", kidney="normal", vital="unknown", days=None))
    return cases


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Home, dict[str, dict]]:
    home = Home(tmp_path_factory.mktemp("tiny") / "home").ensure()
    recs = tiny_cases()
    write_jsonl(home.root.parent / "tiny.jsonl", recs)
    statuses = _submit(home, home.root.parent / "tiny.jsonl")
    assert set(statuses) == {"accepted"}
    _build(home)
    return home, _current([(recs, statuses)])


@pytest.fixture(params=["main", "tiny"])
def registry(request) -> tuple[Home, dict[str, dict]]:
    return request.getfixturevalue(request.param)


def snapshot(home: Home) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(home.published_current / "registry.duckdb"), read_only=True)


def table(home: Home, name: str) -> pd.DataFrame:
    con = snapshot(home)
    try:
        return con.execute(f'SELECT * FROM "{name}"').df()
    finally:
        con.close()


# ----------------------------------------------------------------------------- independent derivations


def _age_band(age: int) -> str:
    for upper, band in ((40, "<40"), (50, "40-49"), (60, "50-59"), (70, "60-69"), (80, "70-79"), (90, "80-89")):
        if age < upper:
            return band
    return "90+"


def _strata_of(r: dict) -> dict[str, str]:
    organs = {o["organ"] for o in r["organs"]}
    sites = {GROUPS.get(("lesion_site", lz["site"])) for lz in r.get("lesions") or []}
    if "central" in sites and "peripheral" in sites:
        lesions = "mixed"
    elif "central" in sites:
        lesions = "central"
    elif "peripheral" in sites:
        lesions = "peripheral"
    else:
        lesions = "none"
    warfarin = (r.get("exposures") or {}).get("warfarin")
    return {
        "all": "all",
        "kidney_status": r["kidney"]["status"] or "unknown",
        "sex": r["patient"]["sex"] or "unknown",
        "age_band": _age_band(r["patient"]["age_years"]),
        "visceral_involvement": "true" if any(GROUPS[("organ", o)] == "visceral" for o in organs) else "false",
        "lesion_distribution": lesions,
        "warfarin": {True: "true", False: "false"}.get(warfarin, "unknown"),
    }


def _outcome(r: dict) -> tuple[bool | None, int | None]:
    vs = r["outcome"]["vital_status"]
    return {"dead": True, "alive": False}.get(vs), r["outcome"].get("followup_days")


def _groups(current: dict[str, dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in current.values():
        for s, v in _strata_of(r).items():
            groups[(s, v)].append(r)
    return groups


def _kmf(recs: list[dict]) -> KaplanMeierFitter | None:
    obs = [(_outcome(r)[1], _outcome(r)[0]) for r in recs if _outcome(r)[0] is not None and _outcome(r)[1] is not None]
    if not obs:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KaplanMeierFitter().fit([t for t, _ in obs], [e for _, e in obs])


def _close(a, b, tol=TOL) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)) or a is pd.NA:
        return b is None or b is pd.NA or (isinstance(b, float) and math.isnan(b))
    if b is None or b is pd.NA or (isinstance(b, float) and math.isnan(b)):
        return False
    return abs(float(a) - float(b)) <= tol


def _baselines(current: dict[str, dict]) -> dict[str, list[tuple[str, float, float | None, float | None]]]:
    """analyte -> [(case_id, canonical value, ref_low, ref_high)] of each case's earliest value."""
    out: dict[str, list] = defaultdict(list)
    for cid, r in current.items():
        first: dict[str, tuple] = {}
        for i, lab in enumerate(r.get("labs") or []):
            key = (lab.get("day", 0), i)
            if lab["analyte"] not in first or key < first[lab["analyte"]][0]:
                first[lab["analyte"]] = (key, lab)
        for analyte, (_, lab) in first.items():
            f = FACTORS[(analyte, _ukey(lab["unit"]))]
            if lab.get("ref_low") is None and lab.get("ref_high") is None:
                lo, hi = _num(ANALYTES[analyte]["ref_low"]), _num(ANALYTES[analyte]["ref_high"])
            else:
                lo = lab["ref_low"] * f if lab.get("ref_low") is not None else None
                hi = lab["ref_high"] * f if lab.get("ref_high") is not None else None
            out[analyte].append((cid, lab["value"] * f, lo, hi))
    return out


# ----------------------------------------------------------------------------- mart_mortality


def test_mortality_matches_counting_and_lifelines(registry):
    home, current = registry
    mart = table(home, "mart_mortality")
    groups = _groups(current)
    assert set(zip(mart["stratum"], mart["stratum_value"])) == set(groups)
    assert set(mart["stratum"]) == set(stats.STRATA)
    for row in mart.itertuples():
        recs = groups[(row.stratum, row.stratum_value)]
        known = [r for r in recs if _outcome(r)[0] is not None]
        deaths = [r for r in known if _outcome(r)[0]]
        assert (row.n_cases, row.n_known_outcome, row.n_deaths) == (len(recs), len(known), len(deaths)), row
        assert _close(row.case_fatality, len(deaths) / len(known) if known else None), row
        kmf = _kmf(recs)
        for d in stats.SURVIVAL_DAYS:
            expected = float(kmf.survival_function_at_times(d).iloc[0]) if kmf else None
            assert _close(getattr(row, f"survival_{d}d"), expected), (row, d, expected)
        med = kmf.median_survival_time_ if kmf else math.inf
        assert _close(row.median_survival_days, None if math.isinf(med) else med, tol=0), (row, med)


def test_mortality_edge_cases_of_the_main_registry(main):
    home, _ = main
    mart = table(home, "mart_mortality").set_index(["stratum", "stratum_value"])
    other = mart.loc[("sex", "other")]
    assert other["n_cases"] == 3 and other["n_known_outcome"] == 0 and other["n_deaths"] == 0
    assert other[["case_fatality", "survival_30d", "survival_365d", "median_survival_days"]].isna().all()
    assert set(mart.loc["warfarin"].index) == {"true", "false", "unknown"}
    assert set(mart.loc["visceral_involvement"].index) == {"true", "false"}
    assert mart.loc[("all", "all"), "n_cases"] == len(table(home, "dim_cases"))
    probs = mart[["case_fatality", *[f"survival_{d}d" for d in stats.SURVIVAL_DAYS]]].to_numpy(dtype=float)
    assert np.nanmin(probs) >= 0 and np.nanmax(probs) <= 1


def test_published_ages_stop_at_90(main):
    home, current = main
    cases = table(home, "dim_cases").set_index("case_id")
    assert cases["age_years"].max() == 90
    assert cases.loc["MARTS-OLD-101", "age_years"] == 90 and cases.loc["MARTS-OLD-101", "age_band"] == "90+"
    assert sum(1 for r in current.values() if r["patient"]["age_years"] >= 90) == (cases["age_band"] == "90+").sum()


# ----------------------------------------------------------------------------- mart_survival


def test_survival_curves_match_lifelines(registry):
    home, current = registry
    mart = table(home, "mart_survival")
    groups = _groups(current)
    with_curve = {k for k, recs in groups.items() if _kmf(recs) is not None}
    assert set(zip(mart["stratum"], mart["stratum_value"])) == with_curve
    for (s, v), curve in mart.groupby(["stratum", "stratum_value"]):
        curve = curve.sort_values("day")
        kmf = _kmf(groups[(s, v)])
        et = kmf.event_table
        assert curve["day"].tolist() == [int(x) for x in et.index], (s, v)
        assert curve["n_at_risk"].tolist() == et["at_risk"].astype(int).tolist()
        assert curve["n_events"].tolist() == et["observed"].astype(int).tolist()
        assert curve["n_censored"].tolist() == et["censored"].astype(int).tolist()
        np.testing.assert_allclose(curve["survival"], kmf.survival_function_.iloc[:, 0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(curve["ci_lower"], kmf.confidence_interval_.iloc[:, 0], rtol=0, atol=1e-9)
        np.testing.assert_allclose(curve["ci_upper"], kmf.confidence_interval_.iloc[:, 1], rtol=0, atol=1e-9)
    assert (mart["ci_lower"] <= mart["survival"]).all() and (mart["survival"] <= mart["ci_upper"]).all()
    assert mart[["survival", "ci_lower", "ci_upper"]].stack().between(0, 1).all()


def test_tied_day_counts_deaths_before_censorings(main):
    home, current = main
    mart = table(home, "mart_survival")
    allc = mart[(mart["stratum"] == "all")].set_index("day")
    known = [_outcome(r) for r in current.values() if _outcome(r)[0] is not None]
    on30 = [died for died, days in known if days == 30]
    at_risk = sum(1 for _, days in known if days >= 30)
    assert allc.loc[30, "n_events"] == sum(on30) >= 3 and allc.loc[30, "n_censored"] == len(on30) - sum(on30) >= 2
    assert allc.loc[30, "n_at_risk"] == at_risk
    assert allc.loc[0, "n_events"] >= 1  # the death on day 0
    assert allc.index.min() == 0


# ----------------------------------------------------------------------------- organs


def test_organ_involvement_counts_cases_once(registry):
    home, current = registry
    mart = table(home, "mart_organ_involvement").set_index("organ")
    counts = Counter(o for r in current.values() for o in {x["organ"] for x in r["organs"]})
    assert set(mart.index) == set(counts)
    for organ, n in counts.items():
        assert mart.loc[organ, "n_cases"] == n
        assert mart.loc[organ, "organ_group"] == GROUPS[("organ", organ)]
        assert _close(mart.loc[organ, "pct_of_cases"], 100.0 * n / len(current))
    pairs = Counter(p for r in current.values() for p in itertools.combinations(sorted({x["organ"] for x in r["organs"]}), 2))
    co = table(home, "mart_organ_cooccurrence")
    assert {(a, b): n for a, b, n in co[["organ_a", "organ_b", "n_cases"]].itertuples(index=False)} == dict(pairs)


def test_a_revision_replaces_the_organs(main):
    home, current = main
    mart = table(home, "mart_organ_involvement").set_index("organ")
    assert mart.loc["lymph_node", "n_cases"] == sum(1 for r in current.values() if any(o["organ"] == "lymph_node" for o in r["organs"]))
    assert mart.loc["skin", "n_cases"] == len(current)


# ----------------------------------------------------------------------------- labs


def test_lab_distributions_match_numpy(registry):
    home, current = registry
    mart = table(home, "mart_lab_distributions").set_index("analyte")
    base = _baselines(current)
    expected = {a: (ANALYTES[a]["canonical_unit"], rows) for a, rows in base.items()}
    ca = {cid: v for cid, v, *_ in base.get("calcium", [])}
    ph = {cid: v for cid, v, *_ in base.get("phosphate", [])}
    cap = [(cid, ca[cid] * ph[cid], None, 55.0) for cid in ca if cid in ph]
    if cap:
        expected["calcium_phosphate_product"] = ("mg²/dL²", cap)
    assert set(mart.index) == set(expected)
    for analyte, (unit, rows) in expected.items():
        row = mart.loc[analyte]
        values = np.array([v for _, v, _, _ in rows])
        assert row["unit"] == unit and row["n"] == len(values), analyte
        p25, med, p75 = np.percentile(values, [25, 50, 75])
        for col, exp in (("p25", p25), ("median", med), ("p75", p75), ("min", values.min()), ("max", values.max()), ("mean", values.mean())):
            assert _close(row[col], exp), (analyte, col, row[col], exp)
        assert _close(row["sd"], np.std(values, ddof=1) if len(values) > 1 else None), analyte
        n_low = sum(1 for _, v, lo, _ in rows if lo is not None and v < lo)
        n_high = sum(1 for _, v, lo, hi in rows if hi is not None and v > hi and not (lo is not None and v < lo))
        assert (row["n_low"], row["n_high"]) == (n_low, n_high), analyte
        assert _close(row["pct_low"], 100 * n_low / len(values)) and _close(row["pct_high"], 100 * n_high / len(values))


def test_baseline_is_the_earliest_value_of_the_current_revision(main):
    home, _ = main
    con = snapshot(home)
    try:
        rows = con.execute(
            "SELECT case_id, analyte, value, unit_reported FROM fct_lab_results WHERE is_baseline AND case_id LIKE 'MARTS-LAB-%' ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()
    base = {(c, a): (v, u) for c, a, v, u in rows}
    assert base[("MARTS-LAB-1", "calcium")] == (10.4, "MG/DL")  # revision 2
    assert ("MARTS-LAB-1", "creatinine") not in base  # revision 2 dropped it
    assert base[("MARTS-LAB-2", "calcium")][0] == pytest.approx(2.9 * 4.008) and base[("MARTS-LAB-2", "calcium")][1] == "mmol/L"
    assert base[("MARTS-LAB-2", "creatinine")][0] == pytest.approx(1020 / 88.4, rel=1e-3)


# ----------------------------------------------------------------------------- orchestration.analytics.stats = the marts


def test_stats_reproduce_mortality_and_curves(registry):
    home, _ = registry
    cases = table(home, "dim_cases")
    mortality = table(home, "mart_mortality")
    survival = table(home, "mart_survival")
    for s in stats.STRATA:
        mine = stats.mortality_by(cases, s)
        mart = mortality[mortality["stratum"] == s].sort_values("stratum_value").reset_index(drop=True)
        assert mine["stratum_value"].tolist() == mart["stratum_value"].tolist(), s
        for col in stats.MORTALITY_COLUMNS[2:]:
            for a, b in zip(mine[col], mart[col]):
                assert _close(a, b, EXACT), (s, col, a, b)
        values = stats.stratum_values(cases, s)
        for v in mart["stratum_value"]:
            sub = cases[(values == v).to_numpy()]
            curve = stats.kaplan_meier(sub["followup_days"], sub["died"])
            m = survival[(survival["stratum"] == s) & (survival["stratum_value"] == v)].sort_values("day")
            assert len(curve) == len(m), (s, v)
            for col in stats.CURVE_COLUMNS:
                np.testing.assert_allclose(curve[col].to_numpy(float), m[col].to_numpy(float), rtol=0, atol=EXACT)


def test_stats_reproduce_lab_distributions(registry):
    home, _ = registry
    labs = table(home, "fct_lab_results")
    mine = stats.lab_distributions(labs).set_index("analyte")
    mart = table(home, "mart_lab_distributions").set_index("analyte")
    assert sorted(mine.index) == sorted(mart.index)
    for analyte in mart.index:
        for col in mart.columns:
            assert _close(mine.loc[analyte, col], mart.loc[analyte, col], EXACT) if col != "unit" else mine.loc[analyte, col] == mart.loc[analyte, col]


def test_stats_logrank_matches_lifelines(main):
    home, _ = main
    cases = table(home, "dim_cases")
    known = cases[cases["died"].notna()]
    for s in ("kidney_status", "sex", "warfarin"):
        groups = stats.stratum_values(known, s)
        expected = multivariate_logrank_test(known["followup_days"].astype(float), groups, known["died"].astype(bool)).p_value
        assert stats.logrank_p(cases["followup_days"], cases["died"], stats.stratum_values(cases, s)) == pytest.approx(expected, abs=1e-9)


# ----------------------------------------------------------------------------- documentation


def test_every_mart_column_is_documented_in_the_snapshot(main):
    home, _ = main
    con = snapshot(home)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, table_description, column_description FROM data_dictionary WHERE table_name LIKE 'mart_%'"
        ).fetchall()
    finally:
        con.close()
    marts = {r[0] for r in rows}
    assert marts == {"mart_mortality", "mart_survival", "mart_organ_involvement", "mart_organ_cooccurrence", "mart_lab_distributions",
                     "mart_lab_value_counts"}
    undocumented = [(t, c) for t, c, td, cd in rows if not td or not cd]
    assert not undocumented
    md = (home.published_current / "data_dictionary.md").read_text(encoding="utf-8")
    assert all(f"## `{m}`" in md for m in marts)


def test_dbt_docs_generate_works(main, tmp_path):
    home, _ = main
    env = {**os.environ, "REGISTRY_WAREHOUSE": str(home.warehouse), "DBT_LOG_PATH": str(tmp_path / "logs")}
    dbt = Path(sys.executable).with_name("dbt")
    p = subprocess.run(
        [str(dbt), "docs", "generate", "--profiles-dir", ".", "--target-path", str(tmp_path / "docs")],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True, timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    catalog = json.loads((tmp_path / "docs" / "catalog.json").read_text())
    assert any(k.endswith(".mart_mortality") for k in catalog["nodes"])
    assert (tmp_path / "docs" / "index.html").exists()
