"""Crash safety of a submission: an intent journal, committed by the audit log.

A submission chunk writes up to five files (quarantine payloads, quarantine batch, landing batch,
landing index) and then its audit lines. A process can die (``kill -9``, a power cut, a full disk)
between any two of those writes. So, under the landing lock:

1. :func:`begin` first writes a *journal* ``landing/journal/<batch_id>.json`` (atomically, fsynced)
   that names every file the chunk is about to write and holds its audit lines;
2. the files are written (each atomically), then the audit lines are appended (all or nothing);
3. :func:`commit` removes the journal.

The audit append is the commit point. :func:`recover`, run under the landing lock before anything
reads or writes the landing zone (every submit chunk, ``registry verify``, ingestion's listing of
batches, a withdrawal, a backup), finishes what a dead writer left:

* no audit line of the batch: **roll back**, i.e. delete whatever files of it were written (the
  submitter never received a receipt, so nothing accepted is lost: the file can be sent again);
* some audit lines (a writer killed in the middle of the append): **roll forward**, i.e. append the
  missing lines (every file was written before the append started).

Readers that must only see committed batches (ingestion, the sensor's watermark, ``verify``) list
batches under the landing lock after recovery, or skip batches that still have a journal.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import orjson

from orchestration.config import Home
from orchestration.registry import audit, withdrawals
from orchestration.registry.fsutil import atomic_write, crash_point, file_lock, fsync_dir, remove_dead_parts


def journal_dir(home: Home) -> Path:
    return home.landing / "journal"


def landing_lock(home: Home):
    """The landing lock: every writer of the landing zone and the quarantine holds it."""
    return file_lock(home.locks / "landing.lock")


def pending_batches(home: Home) -> set[str]:
    """Batch ids whose submission has not committed yet (or awaits recovery)."""
    d = journal_dir(home)
    if not d.exists():
        return set()
    return {p.name[: -len(".json")] for p in d.iterdir() if p.name.endswith(".json") and not p.name.startswith(".")}


def begin(home: Home, batch_id: str, files: list[Path], audit_lines: bytes) -> None:
    body = {
        "batch_id": batch_id,
        "files": [str(p.relative_to(home.root)) for p in files],
        "audit": audit_lines.decode("utf-8"),
    }
    atomic_write(journal_dir(home) / f"{batch_id}.json", orjson.dumps(body), tmp_dir=home.tmp)
    crash_point("submit.after_journal")


def commit(home: Home, batch_id: str) -> None:
    j = journal_dir(home) / f"{batch_id}.json"
    j.unlink()
    fsync_dir(j.parent)


def rollback(home: Home, batch_id: str) -> list[str]:
    """Delete every file the journal of ``batch_id`` names, then the journal. Returns the files removed."""
    j = journal_dir(home) / f"{batch_id}.json"
    body = orjson.loads(j.read_bytes())
    removed = []
    dirs = set()
    for rel in body["files"]:
        p = home.root / rel
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(rel)
            dirs.add(p.parent)
    for d in dirs:
        fsync_dir(d)
    j.unlink()
    fsync_dir(j.parent)
    return removed


def _audit_lines_of(home: Home, batch_id: str) -> int:
    """How many audit lines name ``batch_id`` (read in slices: the log may be large)."""
    if not home.audit_log.exists():
        return 0
    needle = b'"batch_id":' + orjson.dumps(batch_id)
    with open(home.audit_log, "rb") as f:
        return sum(1 for line in f if needle in line and line.endswith(b"\n"))


def recover(home: Home) -> list[str]:
    """Finish or undo every interrupted submission (call it holding the landing lock). Returns one
    line per batch recovered."""
    out: list[str] = []
    remove_dead_parts(home.tmp)
    for batch_id in sorted(pending_batches(home)):
        j = journal_dir(home) / f"{batch_id}.json"
        try:
            body = orjson.loads(j.read_bytes())
        except (OSError, orjson.JSONDecodeError):  # pragma: no cover - written atomically
            continue
        audit.repair(home)  # a partial last line of a killed append is not a committed line
        present = _audit_lines_of(home, batch_id)
        if present == 0:
            removed = rollback(home, batch_id)
            out.append(f"rolled back interrupted submission {batch_id} ({len(removed)} files removed)")
        else:
            lines = [ln + b"\n" for ln in body["audit"].encode("utf-8").split(b"\n")[:-1]]
            missing = lines[present:]
            if missing:
                audit.append_bytes(home, b"".join(missing))
            commit(home, batch_id)
            out.append(f"completed interrupted submission {batch_id} ({len(missing)} audit lines appended)")
    # a consent withdrawal's purge, cut short by a crash, is finished likewise (registry/withdrawals.py)
    out += withdrawals.finish_interrupted(home)
    return out


def committed_batches(home: Home, folder: Path) -> list[Path]:
    """The committed ``*.jsonl`` batches of ``folder``, oldest first: listed under the landing lock
    after recovery, so that a submission in progress is never read half-way."""
    with landing_lock(home):
        recover(home)
        return sorted(folder.glob("*.jsonl"))
