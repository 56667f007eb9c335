"""Everything at once: three submitters (one re-sending cases already landed), a build, a withdrawal
(with its rebuild), and readers (audit, verify, SQL) at the same time. Afterwards the home keeps
every promise and the withdrawn patient is nowhere on disk (issue 15)."""

from __future__ import annotations

import json
import threading

import pytest

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.registry.landing import submit
from orchestration.services.verify import verify
from orchestration.sql.console import QueryRefused, run_query_isolated
from orchestration.warehouse.snapshot import NoSnapshot
from tests.pipeline.crashkit import assert_consistent, cohort, landed_versions, start

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash_concurrent")]


def test_submitters_build_withdrawal_and_readers_at_once(tmp_path):
    home = Home(tmp_path / "home").ensure()
    base = cohort(tmp_path / "base.jsonl", 300, seed=21, prefix="BASE")
    submit(home, [(base.name, base.read_bytes())])
    victim = json.loads(base.read_text().splitlines()[5])["case_id"]
    files = [cohort(tmp_path / f"s{i}.jsonl", 3000, seed=30 + i, prefix=f"S{i}") for i in range(2)]
    files.append(base)  # re-sent: duplicates, and the victim racing its withdrawal

    errors: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            try:
                list(audit.read(home))
                rep = verify(home, warehouse=False)
                if not rep.ok:
                    errors.append("; ".join(rep.problems[:3]))
                try:
                    run_query_isolated("SELECT count(*) FROM dim_cases", home=home, timeout_s=20)
                except (NoSnapshot, QueryRefused):
                    pass
            except Exception as exc:  # noqa: BLE001 - collected and reported
                errors.append(f"{type(exc).__name__}: {exc}")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    procs = [start(home, "submit", str(f)) for f in files]
    procs.append(start(home, "build"))
    procs.append(start(home, "withdraw", victim, "--reason", "consent withdrawn"))
    try:
        for p in procs:
            p.wait(timeout=900)
    finally:
        stop.set()
        for t in readers:
            t.join()
    stderr = [p.stderr.read().decode() for p in procs]
    assert [p.returncode for p in procs[:2]] == [0, 0], stderr
    assert procs[2].returncode in (0, 1), stderr[2]  # 1: the victim was refused as withdrawn
    assert procs[3].returncode == 0, stderr[3]
    assert procs[4].returncode == 0, stderr[4]
    assert not errors, errors[:5]

    assert_consistent(home)
    landed = landed_versions(home)
    assert len(landed) == 300 - 1 + 6000
    assert all(c != victim for c, _ in landed)
    needle = json.dumps(victim).encode()
    for p in home.landing_batches.glob("*"):
        assert needle not in p.read_bytes(), p
    for p in home.quarantine_payloads.glob("*"):  # a refused re-submission keeps the id, never the payload
        for line in p.read_bytes().splitlines():
            e = json.loads(line)
            assert e["case_id"] != victim or e["payload"] is None, e
    counts = audit.submission_counts(home)
    assert counts["submitted"] == counts["accepted"] + counts["duplicate"] + counts["quarantined"]


def test_verify_during_a_withdrawal_sees_it_whole(tmp_path, monkeypatch):
    """A withdrawal that purges the landing zone while `verify` waits for the landing lock, and has
    not yet redacted the audit log (it does that after the lock) when `verify` reads it: `verify`
    knows the case as withdrawn, not as lost (a reader of the test above once reported it as lost:
    the tombstones were read before the lock)."""
    import contextlib

    from orchestration.registry import journal, withdrawals
    from orchestration.registry.erasure import purge

    home = Home(tmp_path / "home").ensure()
    base = cohort(tmp_path / "base.jsonl", 20, seed=21, prefix="BASE")
    submit(home, [(base.name, base.read_bytes())])
    victim = json.loads(base.read_text().splitlines()[5])["case_id"]
    real, raced = journal.landing_lock, []

    @contextlib.contextmanager
    def withdrawn_meanwhile(h):
        if not raced:  # verify's turn: the withdrawal gets the lock first, its audit part comes later
            raced.append(victim)
            with monkeypatch.context() as m:
                m.setattr(withdrawals, "_redact_audit", lambda *a: (0, False))
                m.setattr(withdrawals.audit, "event", lambda *a, **k: None)
                purge(h, victim, "consent withdrawn")
        with real(h):
            yield

    monkeypatch.setattr(journal, "landing_lock", withdrawn_meanwhile)
    rep = verify(home, warehouse=False)
    assert raced == [victim]
    assert rep.ok, rep.problems
