"""Consent withdrawal, the domain part: the tombstones of withdrawn cases and the purge of a case
from the landing zone, the quarantine and the audit log.

This module owns ``$REGISTRY_HOME/withdrawals/`` (one tombstone per withdrawal: case id, reason,
time). Ingestion deletes tombstoned cases from the warehouse and the landing writer refuses their
resubmission; :mod:`orchestration.services.withdraw` runs the whole use case (purge, rebuild,
remove older snapshots).

A purge (:func:`orchestration.registry.erasure.purge`, which takes the landing lock: this module sits
below the journal, whose recovery calls it) is all or nothing across crashes, as a submission is
(``journal.py``): under the landing lock it first writes a mark (``withdrawals/<stamp>.pending``:
case id, reason), then the tombstone (``<stamp>.json``), then purges the landing zone and the
quarantine, redacts the audit log, writes the ``withdrawal`` event, and removes the mark. Every
step can be done again, so whoever takes the landing lock next (a submission, a build's ingest, a
backup, ``registry verify``: :func:`journal.recover`) finishes a purge a crash cut short
(:func:`finish_interrupted`): never a case purged from the landing zone without its tombstone, nor
a tombstone beside the case's unredacted audit lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import orjson

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.registry.fsutil import atomic_write, crash_point, file_lock, fsync_dir


@dataclass
class Purge:
    case_id: str
    landing_records_purged: int
    quarantine_entries_purged: int
    audit_events_purged: int


def is_withdrawn(case_id: str, withdrawn: set[str]) -> bool:
    """Whether ``case_id`` is a withdrawn case, ignoring case: ``wd-canary-01`` may not come back
    after ``WD-CANARY-01`` was withdrawn."""
    return case_id.lower() in {w.lower() for w in withdrawn}


def withdrawn_case_ids(home: Home) -> set[str]:
    d = home.withdrawals
    out = set()
    if d.exists():
        for f in d.glob("*.json"):
            out.add(orjson.loads(f.read_bytes())["case_id"])
    return out


def _batches_with_case(home: Home, case_id: str) -> list[str]:
    files = sorted(home.landing_index.glob("*.parquet"))
    # a batch without its index (a home damaged outside the registry) is searched too: the index
    # must never be the only way to find a withdrawn patient's records
    unindexed = sorted({p.stem for p in home.landing_batches.glob("*.jsonl")} - {p.stem for p in files})
    if not files:
        return unindexed
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(
            "SELECT DISTINCT batch_id FROM read_parquet(?) WHERE case_id = ?", [[str(f) for f in files], case_id]
        ).fetchall()
    finally:
        con.close()
    return sorted({r[0] for r in rows} | set(unindexed))


def _purge_landing(home: Home, case_id: str) -> int:
    import pyarrow as pa  # only a purge needs it: every `registry submit` and build imports this module
    import pyarrow.parquet as pq

    purged = 0
    needle = orjson.dumps(case_id)
    for batch in _batches_with_case(home, case_id):
        data_file = home.landing_batches / f"{batch}.jsonl"
        if data_file.exists():
            kept = []
            with open(data_file, "rb") as f:
                for line in f:
                    # cheap pre-filter, exact check on the parsed envelope
                    if needle in line and orjson.loads(line).get("case_id") == case_id:
                        purged += 1
                        continue
                    kept.append(line)
            atomic_write(data_file, b"".join(kept), tmp_dir=home.tmp)
        index_file = home.landing_index / f"{batch}.parquet"
        if index_file.exists():
            table = pq.read_table(index_file)
            mask = [c != case_id for c in table.column("case_id").to_pylist()]
            kept_table = table.filter(pa.array(mask))
            sink = pa.BufferOutputStream()
            pq.write_table(kept_table, sink)
            atomic_write(index_file, sink.getvalue().to_pybytes(), tmp_dir=home.tmp)
    return purged


def _purge_quarantine(home: Home, case_id: str) -> int:
    purged = 0
    needle = orjson.dumps(case_id)
    for f in sorted(home.quarantine_payloads.glob("*.jsonl")):
        data = f.read_bytes()
        if needle in data:
            kept = [ln for ln in data.splitlines(keepends=True) if not (needle in ln and orjson.loads(ln).get("case_id") == case_id)]
            atomic_write(f, b"".join(kept), tmp_dir=home.tmp)
    for f in sorted(home.quarantine_batches.glob("*.jsonl")):
        data = f.read_bytes()
        if needle not in data:
            continue
        kept = []
        for line in data.splitlines(keepends=True):
            if needle in line and orjson.loads(line).get("case_id") == case_id:
                purged += 1
                continue
            kept.append(line)
        atomic_write(f, b"".join(kept), tmp_dir=home.tmp)
    return purged


# What a withdrawn case's submission events keep: that the case was submitted, when, and with what
# outcome; not which file or record it came from.
_KEPT_AFTER_WITHDRAWAL = ("at", "event", "case_id", "revision", "status")


def _redact_audit(home: Home, case_id: str, since: str, reason: str) -> tuple[int, bool]:
    """Reduce the case's audit events to case id, revision, status and time, marked withdrawn.
    Returns how many were reduced (again: a line already reduced counts) and whether the log holds the
    ``withdrawal`` event of this purge already (one with its ``reason``, written at or after ``since``,
    the time of its tombstone: an earlier withdrawal of the same case is older), so that a purge
    finished after a crash writes it only once. (The event keeps its fields: nothing is added.)"""
    if not home.audit_log.exists():
        return 0, False
    needle = orjson.dumps(case_id)
    with file_lock(home.locks / "audit.lock"):
        out, redacted, has_event = [], 0, False
        with open(home.audit_log, "rb") as f:
            for line in f:
                if needle in line:
                    e = orjson.loads(line)
                    if e.get("case_id") == case_id and e.get("event") == "withdrawal":
                        has_event = has_event or (e.get("reason") == reason and str(e.get("at", "")) >= since)
                    elif e.get("case_id") == case_id:
                        e = {k: e[k] for k in _KEPT_AFTER_WITHDRAWAL if k in e} | {"withdrawn": True}
                        line = orjson.dumps(e) + b"\n"
                        redacted += 1
                out.append(line)
        atomic_write(home.audit_log, b"".join(out), tmp_dir=home.tmp)
    return redacted, has_event


#: the suffix of a purge's mark (``withdrawals/<stamp>.pending``), removed once the purge is whole
PENDING = ".pending"


def carry_out(home: Home, name: str, body: bytes) -> Purge:
    """The steps of a purge (:func:`orchestration.registry.erasure.purge`), from its mark on, under the
    landing lock; each can be done again."""
    tomb = orjson.loads(body)
    case_id = tomb["case_id"]
    tombstone = home.withdrawals / f"{name}.json"
    if not tombstone.exists():
        atomic_write(tombstone, body, tmp_dir=home.tmp)
    crash_point("withdraw.after_tombstone")
    landing = _purge_landing(home, case_id)
    crash_point("withdraw.after_landing")
    quarantined = _purge_quarantine(home, case_id)
    # the audit's part too, before the landing lock is released: a reader that takes it (a backup,
    # `registry verify`) sees the withdrawal whole or not at all, never a tombstone beside the case's
    # unredacted audit lines (the locks in the order submitters and backups take them: landing, audit)
    purged_events, has_event = _redact_audit(home, case_id, tomb["at"], tomb["reason"])
    crash_point("withdraw.after_redaction")
    if not has_event:
        audit.event(home, "withdrawal", case_id=case_id, reason=tomb["reason"])
    (home.withdrawals / f"{name}{PENDING}").unlink()
    fsync_dir(home.withdrawals)
    return Purge(case_id, landing, quarantined, purged_events)


def finish_interrupted(home: Home) -> list[str]:
    """Finish every purge a crash cut short (its mark is still there), oldest first; one line for each.
    Called by :func:`journal.recover`, under the landing lock."""
    out = []
    if not home.withdrawals.exists():
        return out
    for mark in sorted(home.withdrawals.glob(f"*{PENDING}")):
        p = carry_out(home, mark.name[: -len(PENDING)], mark.read_bytes())
        out.append(f"completed the interrupted withdrawal of {p.case_id} ({p.landing_records_purged} landed records purged)")
    return out
