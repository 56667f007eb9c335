"""The whole pipeline on a temporary home, driven through the real `registry` command:
submit -> build (Dagster: ingest, dbt build with tests, publish) -> sql."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import pytest

from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse.ingest import ingest
from tests.support import run_cli, seed_case, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("build")]


def sql(home: Home, query: str) -> list[dict]:
    p = run_cli("sql", "--format", "json", query, home=home)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("built") / "home").ensure()
    d = home.root.parent
    synthetic = list(generate_records(200, seed=11))
    seed_file = d / "seed.json"
    seed_file.write_text(json.dumps(seed_case()))
    write_jsonl(d / "cohort.jsonl", synthetic)
    p = run_cli("submit", str(seed_file), str(d / "cohort.jsonl"), home=home)
    assert p.returncode == 0, p.stdout[-2000:]
    # a second batch: a revision, a duplicate and a conflict
    v2 = {**synthetic[0], "revision": 2, "site_id": "REVISED"}
    conflict = {**synthetic[1], "site_id": "CONFLICT"}
    write_jsonl(d / "second.jsonl", [v2, synthetic[2], conflict])
    p = run_cli("submit", "--format", "json", str(d / "second.jsonl"), home=home)
    assert [r["status"] for r in json.loads(p.stdout)] == ["accepted", "duplicate", "quarantined"]
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "build succeeded" in p.stdout and "202 record versions" in p.stdout
    # the totals come from the run's check nothing_submitted_is_lost, and are the audit log's
    assert "submissions so far: 204 records: 202 accepted, 1 duplicates, 1 quarantined" in p.stdout, p.stdout
    return home


FIRST_CASE = next(generate_records(1, seed=11))["case_id"]


def test_seed_case_lands_with_the_reports_facts(built):
    (case,) = sql(built, "SELECT * FROM dim_cases WHERE case_id = 'LIT-AUTOPSY-002'")
    assert case["vital_status"] == "dead" and case["died"] is True and case["followup_days"] == 39
    assert case["kidney_status"] == "aki" and case["age_years"] == 40 and case["sex"] == "male"
    assert case["visceral_involvement"] is True and case["organ_count"] == 5
    assert case["lesion_distribution"] == "peripheral" and case["is_synthetic"] is False
    organs = {r["organ"]: r["organ_group"] for r in sql(built, "SELECT organ, organ_group FROM fct_organ_involvement WHERE case_id = 'LIT-AUTOPSY-002'")}
    assert organs == {"skin": "cutaneous", "subcutaneous_fat": "cutaneous", "lung": "visceral", "kidney": "visceral", "mesenteric_vessels": "visceral"}
    labs = {r["analyte"]: r for r in sql(built, "SELECT * FROM fct_lab_results WHERE case_id = 'LIT-AUTOPSY-002'")}
    assert len(labs) == 23
    assert labs["calcium"]["value"] == 18 and labs["calcium"]["flag"] == "high" and labs["calcium"]["ref_high"] == 10.2
    assert labs["wbc"]["value"] == pytest.approx(11.2) and labs["wbc"]["unit"] == "10^3/µL" and labs["wbc"]["value_reported"] == 11200
    assert labs["wbc"]["flag"] == "high"  # default range 4-11
    assert labs["pth_intact"]["flag"] == "low" and labs["platelets"]["flag"] == "normal"
    assert labs["ca125"]["flag"] == "high" and labs["afp"]["flag"] == "normal"
    assert all(r["is_baseline"] for r in labs.values())


def test_units_are_normalised_and_reported_values_kept(built):
    rows = sql(built, """
        SELECT unit_reported, value_reported, value FROM fct_lab_results
        WHERE analyte = 'calcium' AND lower(unit_reported) = 'mmol/l' LIMIT 5""")
    assert rows
    for r in rows:
        assert r["value"] == pytest.approx(r["value_reported"] * 4.008)
    assert sql(built, "SELECT count(*) AS n FROM fct_lab_results WHERE value IS NULL")[0]["n"] == 0


def test_revision_replaces_and_history_is_kept(built):
    cid = FIRST_CASE
    (case,) = sql(built, f"SELECT revision, site_id, n_revisions FROM dim_cases WHERE case_id = '{cid}'")
    assert case == {"revision": 2, "site_id": "REVISED", "n_revisions": 2}
    hist = sql(built, f"SELECT revision, is_current FROM dim_case_revisions WHERE case_id = '{cid}' ORDER BY revision")
    assert hist == [{"revision": 1, "is_current": False}, {"revision": 2, "is_current": True}]
    assert sql(built, "SELECT count(*) AS n FROM dim_cases")[0]["n"] == 201


def test_published_snapshot_is_what_readers_see(built):
    current = built.published_current.resolve()
    assert (current / "registry.duckdb").exists() and not (current / "registry.duckdb.wal").exists()
    assert (current / "parquet" / "dim_cases.parquet").exists() and (current / "data_dictionary.md").exists()
    con = duckdb.connect()
    n = con.execute(f"SELECT count(*) FROM read_parquet('{current / 'parquet' / 'dim_cases.parquet'}')").fetchone()[0]
    assert n == 201


def test_ingesting_again_changes_nothing(built):
    def dump(con):
        out = {}
        for t in ("case_records", "labs", "organs", "lesions", "treatments"):
            cols = "* EXCLUDE (ingested_at)" if t == "case_records" else "*"
            out[t] = con.execute(f"SELECT {cols} FROM raw.{t} ORDER BY ALL").fetchall()
        return out

    con = duckdb.connect(str(built.warehouse), read_only=True)
    before = dump(con)
    con.close()
    res = ingest(built)
    assert res.records == 0 and res.batches == 0
    con = duckdb.connect(str(built.warehouse), read_only=True)
    assert dump(con) == before
    con.close()
    # resubmitting the same files is a no-op too
    p = run_cli("submit", "--format", "json", str(built.root.parent / "cohort.jsonl"), home=built)
    assert {r["status"] for r in json.loads(p.stdout)} == {"duplicate"}


def test_build_on_an_empty_home_adds_no_demo_data(home):
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    assert sql(home, "SELECT count(*) AS n FROM dim_cases") == [{"n": 0}]


def test_the_warm_up_beside_the_early_ingest_leaves_the_warehouse_alone(home):
    # `registry build` warms dbt up (its project, a `dbt ls`) while its early ingest holds the
    # warehouse read-write in the same process: the warm-up must neither open the warehouse nor
    # write dbt's artifacts (a later build's target would then describe an `ls`), nor print
    code = (
        "from pathlib import Path; from orchestration.config import Home; from orchestration.defs import dbt_inprocess; "
        f"dbt_inprocess.warm_up(Home(Path({str(home.root)!r})).ensure(), more=lambda: True)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout == ""
    assert not home.warehouse.exists()
    assert not (home.dbt_dir / "target" / "manifest.json").exists()
    assert "Command `cli ls` succeeded" in (home.dbt_dir / "logs" / "dbt.log").read_text()  # it did run
