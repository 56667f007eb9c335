"""`registry analysis table1|cox|cif` and `registry report` on a registry built through the real
command (the bundled seed cases and 160 synthetic cases), every figure checked against an
independent computation on the snapshot; and the /analysis page renders."""

from __future__ import annotations

import json
import shutil
import subprocess
import warnings

import pandas as pd
import pytest
from lifelines import CoxPHFitter
from scipy import stats as sps

from orchestration.config import REPO_ROOT, SEED_CASES_DIR, Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse import snapshot
from tests.support import run_cli, write_jsonl
from tests.unit.test_analysis_cif import plain_aalen_johansen

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("analysis") / "home").ensure()
    d = home.root.parent
    write_jsonl(d / "cohort.jsonl", list(generate_records(160, seed=21)))
    p = run_cli("submit", str(d / "cohort.jsonl"), *[str(f) for f in sorted(SEED_CASES_DIR.glob("*.json"))], home=home)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    return home


@pytest.fixture(scope="module")
def cases(built) -> pd.DataFrame:
    con = snapshot.connect(built)
    try:
        return con.execute("SELECT * FROM dim_cases ORDER BY case_id").df()
    finally:
        con.close()


def cli_json(home, *args):
    p = run_cli("analysis", *args, home=home)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_table1_counts_and_p_values(built, cases):
    t = cli_json(built, "table1", "--by", "kidney_status", "--filter", "sex=female", "--format", "json")
    sub = cases[cases["sex"] == "female"]
    assert t["n"] == len(sub)
    group = sub["kidney_status"].fillna("unknown")
    assert {g["group"]: g["n"] for g in t["groups"] if g["group"] != "overall"} == group.value_counts().to_dict()
    (w,) = [v for v in t["variables"] if v["variable"] == "warfarin"]
    for lv in w["levels"]:
        for g, c in lv["counts"].items():
            in_g = sub if g == "overall" else sub[group == g]
            flag = in_g["warfarin"].astype(object)
            n = int(flag.isna().sum()) if lv["level"] == "unknown" else int((flag == (lv["level"] == "true")).sum())
            assert c["n"] == n
    (age,) = [v for v in t["variables"] if v["variable"] == "age_years"]
    known = [g for g in group.unique() if g != "unknown"]
    expect = sps.kruskal(*[sub.loc[group == g, "age_years"].astype(float) for g in known]).pvalue
    assert age["p"] == pytest.approx(expect, rel=1e-12)
    p = run_cli("analysis", "table1", "--by", "sex", "--format", "csv", home=built)
    assert p.returncode == 0 and p.stdout.startswith("variable,type,level,group,n,percent")


def test_cox_equals_lifelines(built, cases):
    m = cli_json(built, "cox", "--covariates", "age_years,warfarin,lesion_distribution", "--format", "json")
    cc = cases[cases["died"].notna() & cases["followup_days"].notna() & cases["warfarin"].notna()].copy()
    ref = cc["lesion_distribution"].value_counts().idxmax()
    assert m["reference"]["lesion_distribution"] == ref and m["reference"]["warfarin"] == "false"
    df = pd.DataFrame({"T": cc["followup_days"].astype(float), "E": cc["died"].astype(bool).astype(int),
                       "age": cc["age_years"].astype(float), "warf": cc["warfarin"].astype(bool).astype(float)})
    levels = sorted(set(cc["lesion_distribution"]) - {ref})
    for lv in levels:
        df[lv] = (cc["lesion_distribution"] == lv).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = CoxPHFitter().fit(df, "T", "E").summary
    assert (m["n_used"], m["n_events"], m["n_excluded"]) == (len(cc), int(df["E"].sum()), len(cases) - len(cc))
    col = {("age_years", None): "age", ("warfarin", "true"): "warf", **{("lesion_distribution", lv): lv for lv in levels}}
    assert {(r["covariate"], r["level"]) for r in m["covariates"]} == set(col)
    for r in m["covariates"]:
        c = col[(r["covariate"], r["level"])]
        for key, lf in (("hazard_ratio", "exp(coef)"), ("ci_lower", "exp(coef) lower 95%"),
                        ("ci_upper", "exp(coef) upper 95%"), ("p", "p")):
            assert r[key] == pytest.approx(float(s.loc[c, lf]), rel=1e-6, abs=1e-9)
    assert len(m["ph_test"]) == len(m["covariates"])


def test_cif_equals_plain_aalen_johansen(built, cases):
    rows = cli_json(built, "cif", "--filter", "kidney_status=dialysis")
    sub = cases[cases["kidney_status"] == "dialysis"]
    ref = plain_aalen_johansen(sub["followup_days"].astype(object), sub["died"].astype(object), sub["cause_of_death"])
    assert {r["cause"] for r in rows} == set(ref)
    assert sorted({r["day"] for r in rows}) == [30, 90, 180, 365]
    for r in rows:
        res = ref[r["cause"]]
        before = [t for t in res if t <= r["day"]]
        assert r["cumulative_incidence"] == pytest.approx(res[max(before)][0] if before else 0.0, abs=1e-9)
        assert set(r) == {"cause", "day", "cumulative_incidence", "ci_lower", "ci_upper"}


@pytest.mark.parametrize("args, message", [
    (["cif", "--filter", "kidney=dialysis"], "unknown column 'kidney'"),
    (["cif", "--filter", "sex=robot"], "unknown value 'robot'"),
    (["cox", "--covariates", "age_years,shoe_size"], "unknown covariate 'shoe_size'"),
    (["table1", "--by", "case_id"], "cannot group by"),
])
def test_usage_errors_are_one_line(built, args, message):
    p = run_cli("analysis", *args, home=built)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_a_model_the_cohort_cannot_support_is_refused(built):
    p = run_cli("analysis", "cox", "--covariates", "kidney_status", "--filter", "kidney_status=dialysis", home=built)
    assert p.returncode == 1 and "single known value" in p.stderr


def test_report_html_and_pdf(built, tmp_path):
    version = snapshot.current_version_dir(built).name
    out = tmp_path / "report.html"
    p = run_cli("report", str(out), "--filter", "kidney_status=dialysis", home=built)
    assert p.returncode == 0, p.stderr
    text = out.read_text()
    assert f"Generated from snapshot {version}" in text
    assert "kidney_status = dialysis" in text
    assert text.count("data:image/png;base64,") >= 4  # KM, CIF, forest, organs: embedded, opens offline
    assert "<script" not in text and "http://" not in text and "https://" not in text
    for section in ("Table 1", "Number at risk", "Cumulative incidence of death by cause", "Cox model of death",
                    "Organ involvement", "Baseline labs against reference ranges", "Data completeness"):
        assert section in text
    pdf = tmp_path / "report.pdf"
    p = run_cli("report", str(pdf), home=built)
    assert p.returncode == 0, p.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-"
    if shutil.which("pdftoppm"):
        subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "3", str(pdf), str(tmp_path / "page")], check=True)
        assert len(list(tmp_path.glob("page-*.png"))) == 3
    p = run_cli("report", str(tmp_path / "report.docx"), home=built)
    assert p.returncode == 2 and ".html or .pdf" in p.stderr


def test_analysis_page_renders(built, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "app.py"), default_timeout=180)
    at.run()
    at.switch_page("app_pages/analysis.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Analysis"]
    assert len(at.get("plotly_chart")) >= 2  # forest plot, cumulative incidence
    assert len(at.dataframe) >= 5  # Table 1, Cox, CIF, wounds x2
    assert any("start after day 0" in i.value for i in at.info)
    t1 = at.dataframe[0].value
    assert t1.columns[0] == "Characteristic" and any(c.startswith("Overall (n=") for c in t1.columns)
