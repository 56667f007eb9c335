"""`registry submit`: receipts, quarantine with every reason, bad files, revisions, and the
invariant accepted + duplicates + quarantined = submitted."""

from __future__ import annotations

import json

import pytest

from orchestration.registry import audit
from orchestration.registry.landing import submit
from orchestration.registry.quarantine import quarantine_entries
from tests.support import record, run_cli, seed_case, write_jsonl


def statuses(receipts):
    return [r.status for r in receipts]


def test_bad_records_do_not_take_their_neighbours_down(home, tmp_path):
    good1, good2 = record(case_id="GOOD-1"), record(case_id="GOOD-2")
    bad = record(case_id="BAD-1", patient={"age_years": True, "sex": "male"}, mrn="12345")
    f = write_jsonl(tmp_path / "mixed.jsonl", [good1, bad, good2])
    receipts = submit(home, [(f.name, f.read_bytes())])
    assert statuses(receipts) == ["accepted", "quarantined", "accepted"]
    assert {e.path for e in receipts[1].errors} == {"patient.age_years", "mrn"}
    assert receipts[1].record == 2  # JSON Lines: the line number


@pytest.mark.parametrize(
    "content,words",
    [
        (b'{"schema_version": 1, "case_id": "X-1", ', "not valid JSON"),  # truncated
        (b"[{\"schema_version\": 1}, ", "not valid JSON"),
        (b"\xff\xfe\x00{not utf8", "not UTF-8"),
        (b"hello world", "not valid JSON"),
        (b"", "empty"),
        (b"42", "case object"),
    ],
    ids=["truncated object", "truncated array", "not utf-8", "not json", "empty", "a number"],
)
def test_broken_files_are_quarantined_whole_with_line_and_column(home, content, words):
    receipts = submit(home, [("broken.json", content)])
    assert len(receipts) == 1 and receipts[0].status == "quarantined" and receipts[0].record is None
    msg = receipts[0].errors[0].message
    assert words in msg
    if words in ("not valid JSON", "not UTF-8"):
        assert "line 1, column" in msg
    # nothing is lost: the payload is kept verbatim in the quarantine
    (entry,) = quarantine_entries(home, with_payload=True)
    assert entry["source_file"] == "broken.json" and entry["payload"] is not None


def test_a_broken_line_spoils_only_itself(home, tmp_path):
    path = tmp_path / "lines.jsonl"
    path.write_text(json.dumps(record(case_id="L-1")) + "\n{\"case_id\": \"L-2\",\n" + json.dumps(record(case_id="L-3")) + "\n")
    receipts = submit(home, [(path.name, path.read_bytes())])
    assert statuses(receipts) == ["accepted", "quarantined", "accepted"]
    assert "line 2" in receipts[1].errors[0].message and "column" in receipts[1].errors[0].message


def test_nan_and_infinity_are_rejected_at_their_path(home):
    text = json.dumps(record(case_id="NAN-1")).replace('"value": 2.2', '"value": NaN').replace('"age_years": 70', '"age_years": Infinity')
    (r,) = submit(home, [("nan.json", text.encode())])
    assert r.status == "quarantined"
    assert {e.path for e in r.errors} == {"labs[0].value", "patient.age_years"}


def test_json_array_and_single_object(home):
    arr = json.dumps([record(case_id="A-1"), record(case_id="A-2", source="bogus")]).encode()
    receipts = submit(home, [("arr.json", arr), ("one.json", json.dumps(record(case_id="A-3")).encode())])
    assert [(r.file, r.record, r.status) for r in receipts] == [
        ("arr.json", 0, "accepted"), ("arr.json", 1, "quarantined"), ("one.json", 0, "accepted"),
    ]


def test_revisions_duplicates_and_conflicts(home):
    v1 = record(case_id="REV-1")
    v1_again = record(case_id="REV-1")
    v1_other = record(case_id="REV-1", site_id="OTHER")
    v2 = record(case_id="REV-1", revision=2, site_id="OTHER")
    r = submit(home, [("a.json", json.dumps([v1, v1_again]).encode())])
    assert statuses(r) == ["accepted", "duplicate"]
    r = submit(home, [("b.json", json.dumps([v1, v1_other, v2, v2]).encode())])
    assert statuses(r) == ["duplicate", "quarantined", "accepted", "duplicate"]
    assert r[1].errors[0].path == "revision" and "revision 3" in r[1].errors[0].message
    # the key order of the JSON does not make a different submission
    reordered = json.loads(json.dumps(v1, sort_keys=True))
    assert statuses(submit(home, [("c.json", json.dumps(reordered).encode())])) == ["duplicate"]


def test_accepted_plus_quarantined_equals_submitted(home, tmp_path):
    recs = [record(case_id=f"INV-{i}") for i in range(20)]
    recs[3]["patient"]["age_years"] = 500
    recs[7] = record(case_id="INV-6")  # duplicate of 6
    recs[9]["name"] = "x"
    f = write_jsonl(tmp_path / "inv.jsonl", recs)
    receipts = submit(home, [(f.name, f.read_bytes()), ("junk.json", b"{")])
    counts = {s: statuses(receipts).count(s) for s in ("accepted", "duplicate", "quarantined")}
    assert counts == {"accepted": 17, "duplicate": 1, "quarantined": 3}
    events = [e for e in audit.read(home) if e["event"] == "submission"]
    assert len(events) == len(receipts) == 21
    assert len(quarantine_entries(home)) == counts["quarantined"]
    landed = sum(1 for f in home.landing_batches.glob("*.jsonl") for _ in f.open())
    assert landed == counts["accepted"]


def test_landing_files_are_immutable_batches(home):
    submit(home, [("a.json", json.dumps(record(case_id="IMM-1")).encode())])
    first = {p: p.read_bytes() for p in home.landing_batches.glob("*.jsonl")}
    submit(home, [("b.json", json.dumps(record(case_id="IMM-2")).encode())])
    for p, data in first.items():
        assert p.read_bytes() == data
    assert len(list(home.landing_batches.glob("*.jsonl"))) == 2
    assert not list(home.landing_batches.glob(".*"))  # no partial files left behind


def test_cli_receipts_json_and_exit_codes(home, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(seed_case()))
    p = run_cli("submit", "--format", "json", str(good), home=home)
    assert p.returncode == 0, p.stderr
    (r,) = json.loads(p.stdout)
    assert r == {**r, "file": str(good), "record": 0, "case_id": "LIT-AUTOPSY-002", "status": "accepted", "errors": []}

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(record(case_id="CLI-1", name="Jane")) + "\n" + json.dumps(record(case_id="CLI-2")) + "\n")
    p = run_cli("submit", "--format", "json", str(good), str(bad), home=home)
    assert p.returncode == 1
    out = json.loads(p.stdout)
    assert [x["status"] for x in out] == ["duplicate", "quarantined", "accepted"]
    assert out[1]["errors"] == [{"path": "name", "message": "unknown field (identifiers are not accepted)"}]
    assert "Traceback" not in p.stderr

    p = run_cli("submit", str(bad), home=home)
    assert p.returncode == 1 and "QUARANTINED" in p.stdout and "name: unknown field" in p.stdout

    q = run_cli("quarantine", "--format", "json", home=home)
    entries = json.loads(q.stdout)
    assert {e["source_file"] for e in entries} == {str(bad)}
    assert set(entries[0]) >= {"source_file", "record", "case_id", "errors", "quarantined_at"}


def test_cli_never_shows_a_traceback(home, tmp_path):
    p = run_cli("submit", str(tmp_path / "missing.json"), home=home)
    assert p.returncode == 2 and "no such file" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("sql", "SELECT 1", home=home)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "registry build" in p.stderr


@pytest.mark.parametrize("slice_size", [7, 64, 1 << 24])
def test_not_utf8_position_is_exact_when_the_file_is_streamed(tmp_path, monkeypatch, slice_size):
    from orchestration.contract import validate
    from orchestration.contract.validate import FileSource, parse_submission

    monkeypatch.setattr(validate, "_SLICE", slice_size)
    good = json.dumps(record(case_id="UTF-1")).encode()
    data = good + b"\n" + good + b"\n" + b'{"case_id": "\xc3\xa9t\xe9"}\n'  # é is fine, then a lone 0xe9
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(data)
    for source in (FileSource(path), data):
        (only,) = list(parse_submission(source, "latin1.jsonl"))
        assert only.record is None
        assert only.error.message == "file is not UTF-8 text: byte 0xe9 at line 3, column 17"


def test_file_source_and_bytes_parse_alike(tmp_path):
    from orchestration.contract.validate import FileSource, parse_submission

    recs = [record(case_id=f"FS-{i}") for i in range(5)]
    path = write_jsonl(tmp_path / "five.jsonl", recs)
    a = [(p.record, p.obj) for p in parse_submission(FileSource(path), "five.jsonl")]
    b = [(p.record, p.obj) for p in parse_submission(path.read_bytes(), "five.jsonl")]
    assert a == b and [r for r, _ in a] == [1, 2, 3, 4, 5]
