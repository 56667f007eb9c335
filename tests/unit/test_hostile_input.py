"""Issue 15, hostile input: a record can fail, a file cannot; duplicate keys; whole-number floats;
quarantine payloads kept verbatim."""

from __future__ import annotations

import copy
import json

import pytest

from orchestration.contract.validate import parse_submission, record_errors, validate_record
from orchestration.registry import judging
from orchestration.registry.landing import submit
from orchestration.registry.quarantine import quarantine_entries
from tests.support import MINIMAL, record, run_cli


def line(**changes) -> str:
    return json.dumps(record(**changes))


def _submit_lines(home, *lines: str, name="f.jsonl"):
    data = ("\n".join(lines) + "\n").encode("utf-8", errors="surrogatepass")
    return submit(home, [(name, data)])


# ----------------------------------------------------------------------------- 2. a record can fail


def _deep(n: int) -> str:
    return "[" * n + "]" * n


HOSTILE = {
    "nesting of 1,000 levels": (line(case_id="H-0001")[:-1] + ', "x": ' + _deep(1000) + "}", "x"),
    "nesting of 100,000 levels": (line(case_id="H-0001")[:-1] + ', "x": ' + _deep(100_000) + "}", "$"),
    "revision of 4,300 digits": (line(case_id="H-0001").replace('"case_id"', '"revision": ' + "9" * 4300 + ', "case_id"'), "revision"),
    "lab value of 5,000 digits": (line(case_id="H-0001").replace('"value": 2.2', '"value": ' + "1" * 5000), "labs[0].value"),
    "lone surrogate": (line(case_id="H-0001", citation="x").replace('"citation": "x"', '"citation": "\\ud800"'), "citation"),
    "lone surrogate in a key": (line(case_id="H-0001")[:-1] + ', "\\udfff": 1}', "$"),
    "invalid escape": (line(case_id="H-0001", citation="x").replace('"citation": "x"', '"citation": "\\x41"'), "$"),
    "short unicode escape": (line(case_id="H-0001", citation="x").replace('"citation": "x"', '"citation": "\\u12"'), "$"),
}


@pytest.mark.parametrize("bad,path", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_record_is_quarantined_at_its_path_and_its_neighbours_land(home, bad, path):
    receipts = _submit_lines(home, line(case_id="GOOD-0001"), bad, line(case_id="GOOD-0002"))
    assert [r.status for r in receipts] == ["accepted", "quarantined", "accepted"]
    assert path in {e.path for e in receipts[1].errors}, receipts[1].errors
    (entry,) = quarantine_entries(home, with_payload=True)
    assert entry["payload"] == bad  # kept byte for byte


@pytest.mark.parametrize("bad,path", list(HOSTILE.values()), ids=list(HOSTILE))
def test_the_same_in_a_json_array_file(home, bad, path):
    text = "[" + ",\n".join([line(case_id="GOOD-0001"), bad, line(case_id="GOOD-0002")]) + "]"
    receipts = submit(home, [("f.json", text.encode("utf-8", errors="surrogatepass"))])
    assert [r.status for r in receipts] == ["accepted", "quarantined", "accepted"]
    assert path in {e.path for e in receipts[1].errors}, receipts[1].errors
    (entry,) = quarantine_entries(home, with_payload=True)
    assert entry["payload"] == bad


def test_registry_submit_reports_every_record_of_a_file_with_a_hostile_one(home, tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text(line(case_id="GOOD-0001") + "\n" + HOSTILE["nesting of 100,000 levels"][0] + "\n" + line(case_id="GOOD-0002") + "\n")
    p = run_cli("submit", str(f), home=home)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stderr and "recursion" not in p.stderr
    assert "3 records: 2 accepted, 0 duplicates, 1 quarantined" in p.stderr


def test_an_unexpected_failure_quarantines_only_that_record(home, monkeypatch):
    real = judging.record_errors  # where records are judged (in this process for a small file)

    def flaky(p):
        if p.case_id == "BOOM-0001":
            raise RuntimeError("a bug")
        return real(p)

    monkeypatch.setattr(judging, "record_errors", flaky)
    real_check = judging.certainly_valid  # (a valid record is judged by the compiled check alone)

    def flaky_check(obj, year):
        if obj.get("case_id") == "BOOM-0001":
            raise RuntimeError("a bug")
        return real_check(obj, year)

    monkeypatch.setattr(judging, "certainly_valid", flaky_check)
    receipts = _submit_lines(home, line(case_id="GOOD-0001"), line(case_id="BOOM-0001"), line(case_id="GOOD-0002"))
    assert [r.status for r in receipts] == ["accepted", "quarantined", "accepted"]
    assert "internal error" in receipts[1].errors[0].message
    (entry,) = quarantine_entries(home, with_payload=True)
    assert json.loads(entry["payload"])["case_id"] == "BOOM-0001"


# ----------------------------------------------------------------------------- 3. duplicate keys


@pytest.mark.parametrize(
    "text,path",
    [
        ('{"age_years": 140, "age_years": 40, "sex": "male"}', "patient"),
        ('{"age_years": 40, "sex": "male", "sex": "female"}', "patient"),
        ('{"age_years": 40, "\\u0061ge_years": 41, "sex": "male"}', "patient"),  # an escaped twin
        ('{"age_years": 40, "age_years": ":", "sex": "male"}', "patient"),  # a colon in the kept value
    ],
)
def test_a_duplicate_key_is_an_error_at_the_objects_path(home, text, path):
    rec = line(case_id="DUP-0001").replace('"patient": {"age_years": 70, "sex": "female"}', '"patient": ' + text)
    assert '"patient": ' + text in rec
    for name, data in (("f.jsonl", rec + "\n"), ("f.json", rec), ("a.json", "[" + rec + "]")):
        (p,) = list(parse_submission(data.encode(), name))
        errors = record_errors(p)
        assert any(e.path == path and "more than once" in e.message for e in errors), (name, errors)


def test_a_duplicate_top_level_key_and_a_colon_in_a_string_are_told_apart():
    same = line(case_id="DUP-0002", citation="J Am Acad Dermatol. 2020;82:1")
    (p,) = list(parse_submission((same + "\n").encode(), "f.jsonl"))
    assert record_errors(p) == []
    dup = same[:-1] + ', "case_id": "DUP-0003"}'
    (p,) = list(parse_submission((dup + "\n").encode(), "f.jsonl"))
    assert [e.path for e in record_errors(p)] == ["$"]


# ----------------------------------------------------------------------------- 4. whole-number floats


@pytest.mark.parametrize("field,value,expected", [("age", "40.0", 40), ("age", "1e1", 10), ("day", "-0.0", 0), ("revision", "2.0", 2), ("schema_version", "1.0", 1)])
def test_whole_number_floats_are_integers_as_in_json_schema(home, field, value, expected):
    rec = line(case_id="WHOLE-0001")
    rec = {
        "age": rec.replace('"age_years": 70', f'"age_years": {value}'),
        "day": rec.replace('"day": 0}', f'"day": {value}}}'),
        "revision": rec[:-1] + f', "revision": {value}}}',
        "schema_version": rec.replace('"schema_version": 1', f'"schema_version": {value}'),
    }[field]
    (r,) = submit(home, [("f.jsonl", (rec + "\n").encode())])
    assert r.status == "accepted", r.errors
    landed = json.loads(next(home.landing_batches.glob("*.jsonl")).read_text())["record"]
    got = {"age": lambda: landed["patient"]["age_years"], "day": lambda: landed["labs"][0]["day"], "revision": lambda: landed["revision"], "schema_version": lambda: landed["schema_version"]}[field]()
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value", [40.5, float("nan"), float("inf"), True, "40"])
def test_other_values_in_integer_fields_stay_errors(value):
    rec = copy.deepcopy(MINIMAL)
    rec["patient"]["age_years"] = value
    assert [e.path for e in validate_record(rec)] == ["patient.age_years"]


# ----------------------------------------------------------------------------- 5. payloads verbatim


@pytest.mark.parametrize("literal", ["NaN", "1e309", "-Infinity", "1E400"])
def test_quarantine_payloads_keep_the_original_text(home, literal):
    bad = line(case_id="NAN-0001").replace('"value": 2.2', f'"value": {literal}')
    (r,) = _submit_lines(home, bad)
    assert r.status == "quarantined" and r.errors[0].path == "labs[0].value"
    p = run_cli("quarantine", "--format", "json", home=home)
    assert p.returncode == 0, p.stderr
    (entry,) = json.loads(p.stdout)
    assert entry["payload"] == bad and f'"value": {literal}' in entry["payload"]


def test_a_conflicting_revision_keeps_its_original_text(home):
    _submit_lines(home, line(case_id="CONF-0001"))
    other = line(case_id="CONF-0001", citation="other  text")
    (r,) = _submit_lines(home, other)
    assert r.status == "quarantined"
    (entry,) = quarantine_entries(home, with_payload=True)
    assert entry["payload"] == other
