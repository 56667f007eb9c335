"""A full disk: `registry submit` never says "accepted" for records the audit log does not hold,
the audit log never ends mid-line, nothing half-written is left (issue 15)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import uuid

import pytest

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.registry.landing import submit
from tests.pipeline.crashkit import assert_consistent, landed_versions, registry
from tests.support import record


def _cases(tmp_path, n: int, prefix: str = "DISK"):
    p = tmp_path / f"{prefix}.jsonl"
    p.write_text("".join(json.dumps(record(case_id=f"{prefix}-{i:04d}", citation="x" * 200)) + "\n" for i in range(n)))
    return p


def test_a_short_audit_write_undoes_the_submission(tmp_path, monkeypatch):
    """Simulated ENOSPC: the audit append writes part of its lines, then the disk is full."""
    home = Home(tmp_path / "home").ensure()
    first = _cases(tmp_path, 5, "OK")
    submit(home, [(first.name, first.read_bytes())])
    size_before = home.audit_log.stat().st_size

    real = os.pwrite

    def short_then_enospc(fd, data, offset):
        if len(data) > 64:
            return real(fd, bytes(data[:37]), offset)  # a short write ...
        raise OSError(errno.ENOSPC, "No space left on device")  # ... then nothing fits

    monkeypatch.setattr(audit.os, "pwrite", short_then_enospc)
    f = _cases(tmp_path, 50)
    with pytest.raises(OSError) as exc:
        submit(home, [(f.name, f.read_bytes())])
    assert exc.value.errno == errno.ENOSPC
    monkeypatch.setattr(audit.os, "pwrite", real)

    assert home.audit_log.stat().st_size == size_before  # truncated back: no half line
    assert home.audit_log.read_bytes().endswith(b"\n")
    assert len(landed_versions(home)) == 5  # the 50 are not landed without their audit lines
    assert_consistent(home, warehouse=False)
    # space is back: the same file goes in, once
    receipts = submit(home, [(f.name, f.read_bytes())])
    assert {r.status for r in receipts} == {"accepted"}
    assert_consistent(home, warehouse=False)


def test_audit_reader_names_a_malformed_line_and_skips_none(tmp_path):
    home = Home(tmp_path / "home").ensure()
    audit.event(home, "build", success=True)
    with open(home.audit_log, "ab") as f:
        f.write(b'{"event": "build", "succ\n')
    audit.event(home, "build", success=False)
    with pytest.raises(audit.AuditLogCorrupt, match="line 2"):
        list(audit.read(home))


def test_a_killed_append_leaves_no_partial_line_for_the_next(tmp_path):
    home = Home(tmp_path / "home").ensure()
    audit.event(home, "build", success=True)
    with open(home.audit_log, "ab") as f:
        f.write(b'{"event": "submission", "stat')  # a writer died here
    assert [e["event"] for e in audit.read(home)] == ["build"]  # an unfinished line is not read
    audit.event(home, "publish", version="v")
    assert [e["event"] for e in audit.read(home)] == ["build", "publish"]
    assert audit.submission_counts(home)["submitted"] == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs (root only); skipped, with the reason, where mounting is not permitted."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({res.stderr.strip() or 'not permitted'})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt, leave: int):
    """Fill the file system but ``leave`` bytes."""
    filler = mnt / f"filler-{uuid.uuid4().hex}"
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        with contextlib.suppress(OSError):
            f.write(b"\0" * max(free - leave, 0))
    return filler


def test_submit_on_a_full_tmpfs(small_disk, tmp_path):
    """Every amount of free space from almost none to enough: the submission is whole or absent,
    the command says so in one line, and once space is freed everything lands once."""
    home = Home(small_disk / "home").ensure()
    f = _cases(tmp_path, 300)
    outcomes = set()
    for leave in range(8 << 10, 1200 << 10, 40 << 10):
        filler = _fill(small_disk, leave)
        try:
            try:
                receipts = submit(home, [(f.name, f.read_bytes())])
                outcomes.add("ok" if receipts[0].status == "accepted" else "dup")
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                outcomes.add("enospc")
        finally:
            filler.unlink()
        assert_consistent(home, warehouse=False)
    assert "enospc" in outcomes and outcomes & {"ok", "dup"}, outcomes
    # the command line: one line, exit 2, no traceback, never "accepted"
    filler = _fill(small_disk, 16 << 10)
    try:
        g = _cases(tmp_path, 300, "CLI")
        res = registry(home, "submit", str(g))
    finally:
        filler.unlink()
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "No space left" in res.stderr
    assert_consistent(home, warehouse=False)
    res = registry(home, "submit", str(g))
    assert res.returncode == 0, res.stderr
    assert len(landed_versions(home)) == 600
    assert_consistent(home, warehouse=False)


def test_ingest_out_of_space_says_why_and_leaves_nothing_half_written(small_disk, tmp_path):
    """The first step of a build on a full disk: the real error (no space), not "cannot rollback -
    no transaction is active", and after space is freed the same ingestion completes."""
    import duckdb

    from orchestration.warehouse.ingest import ingest
    from tests.pipeline.crashkit import cohort

    home = Home(small_disk / "home").ensure()
    f = cohort(tmp_path / "c.jsonl", 500, seed=3)
    submit(home, [(f.name, f.read_bytes())])
    failures = []
    for leave in (64 << 10, 256 << 10, 768 << 10):
        filler = _fill(small_disk, leave)
        try:
            ingest(home)
            break
        except (duckdb.Error, OSError) as exc:
            failures.append(str(exc))
        finally:
            filler.unlink()
        assert not list(home.root.rglob("*.part"))
    assert failures, "the disk was never full enough to fail"
    for msg in failures:
        assert "cannot rollback" not in msg and "no transaction is active" not in msg, msg
        assert "space" in msg.lower() or "disk" in msg.lower() or "write" in msg.lower(), msg
    res = ingest(home)  # space is back
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM raw.case_records").fetchone()[0] == 500
    finally:
        con.close()
    assert res is not None
    assert_consistent(home)
