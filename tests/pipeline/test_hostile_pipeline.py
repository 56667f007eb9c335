"""Issue 15 through the whole pipeline: units the validator accepts always convert; the published
quality table carries no free text from rejected records; a withdrawal leaves no trace in the
warehouse file and blocks the case id whatever its case."""

from __future__ import annotations

import json

import pytest

from tests.support import record, run_cli, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("build")]


def sql(home, query):
    p = run_cli("sql", "--format", "json", query, home=home)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_odd_but_accepted_units_convert_and_rejected_records_publish_no_free_text(home, tmp_path):
    secret_dir = tmp_path / "Mueller-Hans-private"
    secret_dir.mkdir()
    good = record(case_id="UNIT-0001", labs=[
        {"analyte": "calcium", "value": 9.1, "unit": " mg / dL "},
        {"analyte": "creatinine", "value": 300, "unit": "UMOL/l"},
    ])
    name_in_id = record(case_id="Mueller, Hans 1950-01-02")
    name_as_field = record(case_id="BAD-0002", **{"Hans_Mueller_1950": 1})
    nbsp_unit = record(case_id="BAD-0003", labs=[{"analyte": "calcium", "value": 9, "unit": "mg/\u00a0dL"}])
    f = write_jsonl(secret_dir / "upload.jsonl", [good, name_in_id, name_as_field, nbsp_unit])
    p = run_cli("submit", str(f.resolve()), home=home)
    assert "1 accepted" in p.stderr and "3 quarantined" in p.stderr, p.stderr
    b = run_cli("build", home=home)
    assert b.returncode == 0, b.stdout + b.stderr

    labs = sql(home, "SELECT unit_reported, value, unit FROM fct_lab_results WHERE case_id = 'UNIT-0001' ORDER BY analyte")
    assert [(r["unit_reported"], r["unit"]) for r in labs] == [(" mg / dL ", "mg/dL"), ("UMOL/l", "mg/dL")]
    assert all(r["value"] is not None for r in labs)

    rows = sql(home, "SELECT * FROM quality_quarantine ORDER BY record")
    assert len(rows) == 3
    text = json.dumps(rows)
    assert "Mueller" not in text and "Hans" not in text and "1950" not in text, text
    assert {r["source_file"] for r in rows} == {"upload.jsonl"}
    assert [r["case_id"] for r in rows] == [None, "BAD-0002", "BAD-0003"]
    assert rows[0]["first_error_path"] == "case_id" and "must be 3 to 64 characters" in rows[0]["reasons"]
    assert "(unknown field)" in rows[1]["reasons"]
    # the coordinator still sees everything, verbatim
    q = json.loads(run_cli("quarantine", "--format", "json", home=home).stdout)
    assert any("Mueller, Hans" in e["payload"] for e in q)


CANARY = "CANARY-CITATION-7f3a9c Smith J, Journal of Withdrawn Consent 2019"


def test_withdrawal_compacts_the_warehouse_and_blocks_the_id_in_any_case(home, tmp_path):
    from orchestration.synthetic.generate import generate_records

    canary = record(case_id="WD-CANARY-01", citation=CANARY)
    revised = record(case_id="WD-CANARY-01", revision=2, citation=CANARY + " (rev 2)")
    others = list(generate_records(30, seed=11))
    write_jsonl(tmp_path / "a.jsonl", [canary, *others])
    write_jsonl(tmp_path / "b.jsonl", [revised])
    assert run_cli("submit", str(tmp_path / "a.jsonl"), home=home).returncode == 0
    assert run_cli("build", home=home).returncode == 0
    assert run_cli("submit", str(tmp_path / "b.jsonl"), home=home).returncode == 0
    assert run_cli("build", home=home).returncode == 0
    assert CANARY.encode() in home.warehouse.read_bytes()  # the test can see the canary at all

    p = run_cli("withdraw", "WD-CANARY-01", "--reason", "consent withdrawn", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    needle = b"CANARY-CITATION-7f3a9c"
    for f in home.root.rglob("*"):
        if f.is_file():
            assert needle not in f.read_bytes(), f
    assert not home.warehouse.with_name(home.warehouse.name + ".wal").exists()

    # the id is blocked whatever its case, and the compacted warehouse keeps working
    write_jsonl(tmp_path / "c.jsonl", [record(case_id="wd-canary-01"), record(case_id="AFTER-0001")])
    r = json.loads(run_cli("submit", "--format", "json", str(tmp_path / "c.jsonl"), home=home).stdout)
    assert [x["status"] for x in r] == ["quarantined", "accepted"]
    assert "withdrawn" in r[0]["errors"][0]["message"]
    b = run_cli("build", home=home)
    assert b.returncode == 0, b.stdout + b.stderr
    assert sql(home, "SELECT count(*) AS n FROM dim_cases") == [{"n": 31}]
