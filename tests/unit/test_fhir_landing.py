"""FHIR bundles through the one landing: receipts, quarantine (the constructed record, never the
bundle), errors in FHIR coordinates, neighbours land, the case-id key."""

from __future__ import annotations

import json
import stat

import orjson

from orchestration.registry import audit
from orchestration.registry.quarantine import quarantine_entries
from orchestration.services.import_fhir import case_id_key, import_bundles, key_path
from tests.unit.fhir_bundles import FAMILY, MRN, PHONE, STREET, cc, complete_resources, condition, data, observation, patient, replace

SECRETS = (MRN, FAMILY, "Philippa", PHONE, STREET, "2021-03", "1951-03-20")


def _all_bytes(home) -> bytes:
    return b"\n".join(p.read_bytes() for p in home.root.rglob("*") if p.is_file())


def test_a_bundle_lands_and_a_neighbours_problems_do_not_stop_it(home):
    good = data(complete_resources())
    wrong_unit = data(replace(complete_resources(), "o-plt", observation("o-pthrp", "2729-2", 40, "pmol/L")) + [])
    broken = b'{"resourceType": "Bundle", "type": "collection", "entry": [ {"resource": '
    other = replace(complete_resources(), "p1", patient(identifier=[{"system": "urn:example:mrn", "value": "MRN-2"}]))
    results = import_bundles(
        home,
        [("a.json", good), ("b.json", wrong_unit), ("c.json", broken), ("d.json", data(other))],
        site_id="DE-TEST",
    )
    status = [r.receipt.status for r in results]
    assert status == ["accepted", "quarantined", "quarantined", "accepted"]
    b = results[1].receipt
    assert [(e.path, e.message) for e in b.errors] == [
        ("Observation/o-pthrp.valueQuantity.code (labs[1].unit)", '"pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)')
    ]
    c = results[2].receipt
    assert c.case_id is None and c.errors[0].path == "Bundle" and "not valid JSON" in c.errors[0].message
    # what the quarantine keeps: the constructed record for b, nothing for the unreadable bundle
    entries = {e["source_file"]: e for e in quarantine_entries(home, with_payload=True)}
    payload = json.loads(entries["b.json"]["payload"])
    assert payload["schema_version"] == 1 and "entry" not in payload and payload["case_id"].startswith("FHIR-")
    assert entries["c.json"]["payload"] is None and entries["c.json"]["payload_encoding"] == "withheld"
    events = [e for e in audit.read(home) if e.get("event") == "submission"]
    assert {e["channel"] for e in events} == {"fhir"} and len(events) == 4
    blob = _all_bytes(home)
    for s in SECRETS:
        assert s.encode() not in blob, s


def test_missing_facts_quarantine_with_one_error_each_in_fhir_words(home):
    res = replace(complete_resources(), "p1", patient(gender=..., birthDate=...))
    res = replace(res, "c-eskd", None)
    res = replace(res, "c-dial", None)
    [r] = import_bundles(home, [("x.json", data(res))], site_id="DE-TEST")
    assert r.receipt.status == "quarantined"
    got = [e.path for e in r.receipt.errors]
    assert got == ["Patient.gender", "Patient.birthDate", "Condition"]  # no second "is required but missing" per fact
    stored = quarantine_entries(home, with_payload=True)[0]
    assert [e["path"] for e in stored["errors"]] == got
    assert "age_years" not in json.loads(stored["payload"])["patient"]


def test_a_fixed_bundle_is_a_duplicate_when_unchanged(home):
    [a] = import_bundles(home, [("a.json", data(complete_resources()))], site_id="DE-TEST")
    [b] = import_bundles(home, [("a.json", data(complete_resources()))], site_id="DE-TEST")
    assert (a.receipt.status, b.receipt.status) == ("accepted", "duplicate")
    assert a.receipt.case_id == b.receipt.case_id


def test_case_id_key_is_private_and_stable(home):
    k1 = case_id_key(home)
    assert stat.S_IMODE(key_path(home).stat().st_mode) == 0o600
    assert case_id_key(home) == k1 and len(k1) == 64


def test_file_names_with_dates_or_identifiers_are_not_stored(home):
    results = import_bundles(
        home,
        [(f"exports/{MRN}.json", data(complete_resources())), ("exports/bundle_2021-03-10.json", data(complete_resources()))],
        site_id="DE-TEST",
    )
    assert [r.receipt.file for r in results] == ["bundle-1.json", "bundle-2.json"]
    assert results[0].given_name == f"exports/{MRN}.json"
    for line in home.audit_log.read_bytes().splitlines():
        assert MRN.encode() not in line and b"2021-03-10" not in line


def test_unknown_condition_code_is_a_notice_not_an_error(home):
    res = complete_resources() + [condition("c-odd", cc(("urn:local", "ZZ9", "Something local")))]
    [r] = import_bundles(home, [("a.json", data(res))], site_id="DE-TEST")
    assert r.receipt.status == "accepted"
    assert any(n.startswith("Condition/c-odd.code") and "ZZ9" in n for n in r.notices)
    # notices are shown, not stored
    assert b"ZZ9" not in _all_bytes(home)


def test_landed_record_is_the_constructed_one(home):
    import_bundles(home, [("a.json", data(complete_resources()))], site_id="DE-TEST")
    [batch] = list(home.landing_batches.glob("*.jsonl"))
    row = orjson.loads(batch.read_bytes().splitlines()[0])
    assert row["channel"] == "fhir" and row["record"]["kidney"]["status"] == "dialysis"


def test_a_corrected_export_is_the_next_revision(home):
    first = complete_resources()
    [a] = import_bundles(home, [("a.json", data(first))], site_id="DE-TEST")
    changed = replace(first, "o-plt", observation("o-plt", "777-3", 250, "10*3/uL"))
    [b] = import_bundles(home, [("a.json", data(changed))], site_id="DE-TEST")
    assert b.receipt.status == "quarantined" and "revision 2" in b.receipt.errors[0].message
    [c] = import_bundles(home, [("a.json", data(changed))], site_id="DE-TEST", revision=2)
    assert (c.receipt.status, c.receipt.case_id, c.receipt.revision) == ("accepted", a.receipt.case_id, 2)
