"""`registry submit` killed at every point between two writes, and at random moments: the next
command works, nothing accepted is lost, nothing is counted twice, the audit matches the landing
zone, and a withdrawal still finds every copy of the case (issue 15)."""

from __future__ import annotations

import json
import random
import subprocess

import orjson
import pytest

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.registry.landing import submit
from orchestration.services.withdraw import withdraw
from tests.pipeline.crashkit import assert_consistent, cohort, kill_after, landed_versions, registry, start
from tests.support import record

# every named point of a submission, in write order; "committed" ones are past the audit append
POINTS = {
    "submit.after_journal": False,
    "submit.after_quarantine_payloads": False,
    "submit.after_quarantine": False,
    "submit.after_batch": False,
    "submit.after_index": False,
    "audit.mid_write": False,  # half the audit lines written: the recovery completes or undoes
    "submit.after_audit": True,
    "submit.after_commit": True,
}


def _file(tmp_path, n: int = 40):
    recs = [record(case_id=f"CRASH-{i:03d}") for i in range(n)]
    recs.append(record(case_id="CRASH-BAD", patient={"age_years": 400, "sex": "female"}))  # quarantined
    p = tmp_path / "cases.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


@pytest.mark.parametrize("point", list(POINTS))
def test_submit_killed_at_a_named_point(point, tmp_path):
    home = Home(tmp_path / "home").ensure()
    f = _file(tmp_path)
    before = registry(home, "submit", str(f), crash_at=point)
    assert before.returncode == 137, before.stderr  # it died there, printing no summary
    assert "accepted" not in before.stderr

    # the next command works and finds a consistent home (recovery runs under the landing lock)
    assert_consistent(home, warehouse=False)
    landed = landed_versions(home)
    if POINTS[point]:
        assert len(landed) == 40  # committed: every record is kept, and audited
    elif point != "audit.mid_write":
        assert not landed  # not committed: undone, the submitter re-sends

    # re-sending the file lands each record exactly once, whatever happened before
    receipts = submit(home, [(f.name, f.read_bytes())])
    assert sum(r.status == "quarantined" for r in receipts) == 1
    assert_consistent(home, warehouse=False)
    assert len(landed_versions(home)) == 40

    # a withdrawal finds every copy: no payload of the patient stays on disk
    withdraw(home, "CRASH-007", "consent withdrawn", build=False)
    needle = b'"CRASH-007"'
    for d in (home.landing_batches, home.quarantine_batches, home.quarantine_payloads):
        for p in d.glob("*"):
            assert needle not in p.read_bytes(), p
    assert_consistent(home, warehouse=False)


def test_submit_killed_at_random_moments(tmp_path):
    """~10 submissions of three files of distinct cases, each SIGKILLed after a random delay; after
    every kill the home is consistent; at the end every case is landed once. Two files are judged in
    the submitting process, the big one in worker processes; the delays are drawn below what a whole
    submission of each file takes (0.5 s and 1.5 s on a quiet 2-core machine), so most kills land
    while it runs."""
    home = Home(tmp_path / "home").ensure()
    plan = [(1500, (0.05, 0.6)), (12000, (0.2, 1.5)), (1500, (0.05, 0.6))]
    files = [(cohort(tmp_path / f"c{i}.jsonl", n, seed=i + 1, prefix=f"F{i}"), delays) for i, (n, delays) in enumerate(plan)]
    rng = random.Random(15)
    killed = 0
    for attempt in range(10):
        f, (low, high) = files[attempt % 3]
        proc = start(home, "submit", str(f))
        killed += kill_after(proc, rng.uniform(low, high))
        assert_consistent(home, warehouse=False)
    assert killed >= 3, "the delays never caught a submission in flight: the test proves nothing"
    for f, _ in files:
        res = registry(home, "submit", str(f))
        assert res.returncode == 0, res.stderr
    assert_consistent(home, warehouse=False)
    assert len(landed_versions(home)) == sum(n for n, _ in plan)


def test_a_batch_without_its_index_is_found_by_verify(tmp_path):
    """A home damaged outside the registry's control (an index deleted by hand) is reported."""
    home = Home(tmp_path / "home").ensure()
    f = _file(tmp_path, 3)
    submit(home, [(f.name, f.read_bytes())])
    idx = next(home.landing_index.glob("*.parquet"))
    idx.unlink()
    res = registry(home, "verify")
    assert res.returncode == 1
    assert "has no index" in res.stdout
    assert "Traceback" not in res.stderr


def test_verify_reports_a_wrong_checksum_and_a_lost_audit_line(tmp_path):
    home = Home(tmp_path / "home").ensure()
    f = _file(tmp_path, 3)
    submit(home, [(f.name, f.read_bytes())])
    batch = next(home.landing_batches.glob("*.jsonl"))
    lines = batch.read_bytes().splitlines(keepends=True)
    e = orjson.loads(lines[0])
    e["record"]["patient"]["age_years"] = 71  # edited behind the registry's back
    batch.write_bytes(orjson.dumps(e) + b"\n" + b"".join(lines[1:]))
    log = [ln for ln in home.audit_log.read_bytes().splitlines(keepends=True) if b"CRASH-001" not in ln]
    home.audit_log.write_bytes(b"".join(log))
    res = registry(home, "verify", "--format", "json")
    assert res.returncode == 1
    problems = json.loads(res.stdout)["problems"]
    assert any("checksum does not match" in p and "CRASH-000" in p for p in problems)
    assert any("no audit line" in p and "CRASH-001" in p for p in problems)


def test_verify_clean_home_exits_zero(tmp_path):
    home = Home(tmp_path / "home").ensure()
    res = registry(home, "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert audit.submission_counts(home)["submitted"] == 0
    _ = subprocess


def test_withdrawal_finds_a_batch_whose_index_was_lost(tmp_path):
    """Even in a home damaged outside the registry (an index deleted), no payload of a withdrawn
    patient stays on disk."""
    home = Home(tmp_path / "home").ensure()
    f = _file(tmp_path, 3)
    submit(home, [(f.name, f.read_bytes())])
    next(home.landing_index.glob("*.parquet")).unlink()
    res = withdraw(home, "CRASH-001", "consent withdrawn", build=False)
    assert res.landing_records_purged == 1
    for p in home.landing_batches.glob("*.jsonl"):
        assert b'"CRASH-001"' not in p.read_bytes()


# every named point of a withdrawal's purge, in write order (orchestration/registry/withdrawals.py)
WITHDRAW_POINTS = ["withdraw.after_mark", "withdraw.after_tombstone", "withdraw.after_landing", "withdraw.after_redaction"]


@pytest.mark.parametrize("point", WITHDRAW_POINTS)
def test_withdrawal_killed_at_a_named_point_is_finished_by_the_next_command(point, tmp_path):
    """`registry withdraw` killed between two of its writes: the next command that takes the landing
    lock (here `registry verify`) finishes the purge, so the home never keeps a purged case without its
    tombstone, nor a tombstone beside the case's landed records or unredacted audit lines; the
    `withdrawal` event is written once."""
    home = Home(tmp_path / "home").ensure()
    f = _file(tmp_path)
    submit(home, [(f.name, f.read_bytes())])
    died = registry(home, "withdraw", "CRASH-007", "--reason", "consent withdrawn", "--no-build", crash_at=point)
    assert died.returncode == 137, died.stderr
    assert list(home.withdrawals.glob("*.pending"))  # cut short: its mark is still there

    checked = registry(home, "verify")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not list(home.withdrawals.glob("*.pending"))
    tombstones = [orjson.loads(p.read_bytes())["case_id"] for p in home.withdrawals.glob("*.json")]
    assert tombstones == ["CRASH-007"]
    needle = b'"CRASH-007"'
    for d in (home.landing_batches, home.landing_index, home.quarantine_batches, home.quarantine_payloads):
        for p in d.glob("*.jsonl"):
            assert needle not in p.read_bytes(), p
    mine = [e for e in audit.read(home) if e.get("case_id") == "CRASH-007"]
    assert [e["event"] for e in mine].count("withdrawal") == 1, mine
    assert all(e.get("withdrawn") for e in mine if e["event"] != "withdrawal"), mine
    assert_consistent(home, warehouse=False)
    # a resubmission is refused, as after a withdrawal that was never interrupted
    again = submit(home, [("again.jsonl", (json.dumps(record(case_id="CRASH-007")) + "\n").encode())])
    assert again[0].status == "quarantined" and "withdrawn" in again[0].errors[0].message
    # withdrawn a second time (a coordinator repeating it): that withdrawal is audited too
    withdraw(home, "CRASH-007", "consent withdrawn, confirmed", build=False)
    assert [e["event"] for e in audit.read(home) if e.get("case_id") == "CRASH-007"].count("withdrawal") == 2
