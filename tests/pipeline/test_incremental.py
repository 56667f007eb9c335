"""Per-case incremental models: after new cases, revisions (with fewer labs, other organs) and a
withdrawal, an incremental build gives exactly what a full rebuild gives."""

from __future__ import annotations

import json

import duckdb
import pytest

from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from tests.support import run_cli, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("incremental")]

TABLES = ("dim_cases", "fct_lab_results", "fct_organ_involvement", "fct_treatments", "fct_lesions",
          "dim_case_revisions", "mart_mortality", "mart_organ_involvement", "mart_lab_distributions", "mart_lab_value_counts")


def _round(row: tuple) -> tuple:
    # sums depend on row order in the last bits; 10 significant digits is far inside the 1e-6 bar
    return tuple(float(f"{v:.10g}") if isinstance(v, float) else v for v in row)


def dump(home: Home) -> dict:
    con = duckdb.connect(str(home.published_current.resolve() / "registry.duckdb"), read_only=True)
    try:
        out = {}
        for t in TABLES:
            cols = [c[0] for c in con.execute(f"DESCRIBE {t}").fetchall() if not c[0].endswith("_at")]
            out[t] = [_round(r) for r in con.execute(f"SELECT {', '.join(cols)} FROM {t} ORDER BY ALL").fetchall()]
        return out
    finally:
        con.close()


def build(home: Home, *args: str) -> None:
    p = run_cli("build", *args, home=home)
    assert p.returncode == 0, p.stdout + p.stderr


def test_incremental_build_equals_full_rebuild(home, tmp_path):
    cohort = list(generate_records(60, seed=21))
    write_jsonl(tmp_path / "one.jsonl", cohort[:50])
    run_cli("submit", str(tmp_path / "one.jsonl"), home=home)
    build(home)

    revised = dict(cohort[0], revision=2, labs=(cohort[0].get("labs") or [])[:1], organs=[{"organ": "lung", "evidence": "imaging"}])
    revised_again = dict(cohort[1], revision=3, lesions=[], treatments=[])
    write_jsonl(tmp_path / "two.jsonl", [revised, revised_again, *cohort[50:]])
    p = run_cli("submit", "--format", "json", str(tmp_path / "two.jsonl"), home=home)
    assert {r["status"] for r in json.loads(p.stdout)} == {"accepted"}
    assert run_cli("withdraw", cohort[2]["case_id"], "--reason", "test", "--no-build", home=home).returncode == 0
    build(home)  # incremental: only the pending cases are recomputed
    con = duckdb.connect(str(home.warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM raw.pending_cases").fetchone()[0] == 0
    con.close()
    incremental = dump(home)

    build(home, "--full-refresh")
    assert dump(home) == incremental
    cases = {r[0] for r in incremental["dim_cases"]}
    assert len(cases) == 59 and cohort[2]["case_id"] not in cases
    organs = [r for r in incremental["fct_organ_involvement"] if r[0] == cohort[0]["case_id"]]
    assert [(r[1], r[2]) for r in organs] == [("lung", "visceral")]
