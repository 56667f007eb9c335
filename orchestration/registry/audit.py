"""The append-only audit log (``$REGISTRY_HOME/audit/audit.jsonl``).

Every submission (file, record, case id, status), quarantine and its resolution, withdrawal,
build and publish is one JSON line. Lines are appended under an exclusive lock, so concurrent
writers never interleave; nothing ever rewrites the file except a withdrawal, which keeps only the
case id, the reason and the time for the withdrawn case.

An append is all or nothing: the lines are written at the end and fsynced; on any error (a full
disk: a short write or ENOSPC) the file is truncated back to its previous size and the error is
raised, so the caller never reports a success the log does not hold. A writer killed in the middle
of an append can leave a partial last line; the next append (or :func:`repair`) cuts it off under
the lock. Readers never skip a line silently: a malformed line is an error naming its number, and
only an unterminated last line (an append in progress) is not read.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import duckdb
import orjson

from orchestration.config import Home
from orchestration.registry.fsutil import crash_point, file_lock, utcnow


class AuditLogCorrupt(ValueError):
    """A line of the audit log is not JSON (one line, with its number)."""


def lock(home: Home):
    """The audit lock: held by every append and by a withdrawal's redaction (and by a backup)."""
    return file_lock(home.locks / "audit.lock")


def encode(events: Iterable[dict[str, Any]]) -> bytes:
    now = utcnow().isoformat()
    return b"".join(orjson.dumps({"at": now, **e}) + b"\n" for e in events)


def append(home: Home, events: Iterable[dict[str, Any]]) -> int:
    return append_bytes(home, encode(events))


def append_bytes(home: Home, payload: bytes) -> int:
    """Append complete lines (all or nothing, see the module's doc string)."""
    if not payload:
        return 0
    home.audit_log.parent.mkdir(parents=True, exist_ok=True)
    with lock(home):
        fd = os.open(home.audit_log, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = _cut_partial_tail(fd)
            try:
                _write_at(fd, payload, size)
                os.fsync(fd)
            except BaseException:
                os.ftruncate(fd, size)
                try:
                    os.fsync(fd)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)
    return payload.count(b"\n")


def _write_at(fd: int, payload: bytes, offset: int) -> None:
    view = memoryview(payload)
    half = len(payload) // 2
    done = 0
    while done < len(payload):
        end = len(payload) if done >= half else half
        n = os.pwrite(fd, view[done:end], offset + done)
        if n <= 0:
            raise OSError(28, "No space left on device (short write to the audit log)")
        done += n
        if done == half:
            crash_point("audit.mid_write")


def _cut_partial_tail(fd: int) -> int:
    """Cut an unterminated last line (left by a writer killed mid-append); returns the size."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return size
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        chunk = os.pread(fd, pos - start, start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            size = start + nl + 1
            break
        pos = start
    else:
        size = 0
    os.ftruncate(fd, size)
    os.fsync(fd)
    return size


def repair(home: Home) -> None:
    """Cut a partial last line left by a killed writer (a no-op on a healthy log)."""
    if not home.audit_log.exists():
        return
    with lock(home):
        fd = os.open(home.audit_log, os.O_RDWR)
        try:
            _cut_partial_tail(fd)
        finally:
            os.close(fd)


def event(home: Home, kind: str, **fields: Any) -> None:
    append(home, [{"event": kind, **fields}])


def read(home: Home) -> Iterator[dict[str, Any]]:
    """Every event, oldest first. A malformed line raises :class:`AuditLogCorrupt` naming it; an
    unterminated last line is an append in progress (or a killed writer's) and is not read."""
    if not home.audit_log.exists():
        return
    with open(home.audit_log, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                return
            if line.strip():
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    raise AuditLogCorrupt(f"{home.audit_log} line {n} is not valid JSON") from None


def submission_counts(home: Home) -> dict[str, int]:
    """Submissions by status (plus withdrawals), counted set-based: the log of a million-case
    registry is hundreds of MB, read here in a fraction of a second."""
    counts = {"submitted": 0, "accepted": 0, "duplicate": 0, "quarantined": 0, "withdrawals": 0,
              "accepted_withdrawn": 0, "duplicate_withdrawn": 0, "quarantined_withdrawn": 0}
    if not home.audit_log.exists() or home.audit_log.stat().st_size == 0:
        return counts
    con = duckdb.connect(":memory:", config={"memory_limit": "512MB"})
    try:
        # under the audit lock: no append is half-way, and a killed writer's partial line is cut
        with lock(home):
            fd = os.open(home.audit_log, os.O_RDWR)
            try:
                _cut_partial_tail(fd)
            finally:
                os.close(fd)
            rows = con.execute(
                "SELECT event, status, coalesce(withdrawn, false), count(*) FROM read_json(?, format = 'newline_delimited', "
                "columns = {'event': 'VARCHAR', 'status': 'VARCHAR', 'withdrawn': 'BOOLEAN'}) GROUP BY ALL",
                [str(home.audit_log)],
            ).fetchall()
    finally:
        con.close()
    for event, status, withdrawn, n in rows:
        if event == "submission":
            counts["submitted"] += n
            counts[status] = counts.get(status, 0) + n
            if withdrawn:  # the case was withdrawn since: its records were purged
                counts[f"{status}_withdrawn"] = counts.get(f"{status}_withdrawn", 0) + n
        elif event == "withdrawal":
            counts["withdrawals"] += n
    return counts
