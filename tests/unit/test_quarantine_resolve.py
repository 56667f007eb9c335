"""`registry quarantine resolve`: the correction use case the /submit form shares
(orchestration/services/quarantine.py)."""

from __future__ import annotations

import json

from orchestration.registry import audit
from orchestration.registry.landing import latest_record
from orchestration.registry.quarantine import quarantine_entries
from tests.support import record, run_cli, write_jsonl


def _quarantine_one(home, tmp_path):
    bad = record(case_id="FIX-1", patient={"age_years": 140, "sex": "female"})
    p = run_cli("submit", str(write_jsonl(tmp_path / "bad.jsonl", [bad])), home=home)
    assert p.returncode == 1
    (entry,) = quarantine_entries(home)
    return entry["quarantine_id"]


def test_a_corrected_record_lands_and_resolves_its_entry(home, tmp_path):
    qid = _quarantine_one(home, tmp_path)
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(record(case_id="FIX-1")))
    p = run_cli("quarantine", "resolve", qid, "--record", str(fixed), home=home)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("ACCEPTED") and f"RESOLVED     {qid}" in p.stdout
    (entry,) = quarantine_entries(home)
    assert entry["resolved_at"] and "corrected and resubmitted as FIX-1 r1" in entry["resolution"]
    assert latest_record(home, "FIX-1")["patient"]["age_years"] == 70
    c = audit.submission_counts(home)
    assert c["submitted"] == c["accepted"] + c["duplicate"] + c["quarantined"] == 2


def test_a_correction_that_still_fails_leaves_the_entry_open(home, tmp_path):
    qid = _quarantine_one(home, tmp_path)
    still_bad = tmp_path / "still_bad.json"
    still_bad.write_text(json.dumps(record(case_id="FIX-1", patient={"age_years": -1, "sex": "female"})))
    p = run_cli("quarantine", "resolve", qid, "--record", str(still_bad), home=home)
    assert p.returncode == 1
    assert p.stdout.startswith("QUARANTINED") and f"OPEN         {qid}" in p.stdout
    assert len(quarantine_entries(home, include_resolved=False)) == 2  # the old entry and the new one


def test_resolving_with_a_note_and_the_one_line_errors(home, tmp_path):
    qid = _quarantine_one(home, tmp_path)
    p = run_cli("quarantine", "resolve", qid, home=home)
    assert p.returncode == 2 and "give --record FILE" in p.stderr and "Traceback" not in p.stderr
    p = run_cli("quarantine", "resolve", "no-such-entry", "--note", "x", home=home)
    assert p.returncode == 2 and "no quarantine entry" in p.stderr
    p = run_cli("quarantine", "resolve", qid, "--note", "sent twice by mistake", home=home)
    assert p.returncode == 0
    assert quarantine_entries(home, include_resolved=False) == []
    p = run_cli("quarantine", "resolve", qid, "--note", "again", home=home)
    assert p.returncode == 2 and "already resolved" in p.stderr
    p = run_cli("quarantine", "--unresolved", home=home)  # the listing still works beside the sub-command
    assert p.returncode == 0 and "quarantine is empty" in p.stdout
