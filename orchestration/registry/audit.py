"""The append-only audit log (``$REGISTRY_HOME/audit/audit.jsonl``).

Every submission (file, record, case id, status), quarantine and its resolution, withdrawal,
build and publish is one JSON line. Lines are appended under an exclusive lock with
``O_APPEND``, so concurrent writers never interleave; nothing ever rewrites the file except a
withdrawal, which keeps only the case id, the reason and the time for the withdrawn case.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import duckdb
import orjson

from orchestration.config import Home
from orchestration.registry.fsutil import file_lock, utcnow


def append(home: Home, events: Iterable[dict[str, Any]]) -> int:
    now = utcnow().isoformat()
    payload = b"".join(orjson.dumps({"at": now, **e}) + b"\n" for e in events)
    if not payload:
        return 0
    home.audit_log.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(home.locks / "audit.lock"):
        fd = os.open(home.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, payload)
            os.fsync(fd)
        finally:
            os.close(fd)
    return payload.count(b"\n")


def event(home: Home, kind: str, **fields: Any) -> None:
    append(home, [{"event": kind, **fields}])


def read(home: Home) -> Iterator[dict[str, Any]]:
    if not home.audit_log.exists():
        return
    with open(home.audit_log, "rb") as f:
        for line in f:
            if line.strip():
                yield orjson.loads(line)


def submission_counts(home: Home) -> dict[str, int]:
    """Submissions by status (plus withdrawals), counted set-based: the log of a million-case
    registry is hundreds of MB, read here in a fraction of a second."""
    counts = {"submitted": 0, "accepted": 0, "duplicate": 0, "quarantined": 0, "withdrawals": 0,
              "accepted_withdrawn": 0, "duplicate_withdrawn": 0, "quarantined_withdrawn": 0}
    if not home.audit_log.exists() or home.audit_log.stat().st_size == 0:
        return counts
    con = duckdb.connect(":memory:", config={"memory_limit": "512MB"})
    try:
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
