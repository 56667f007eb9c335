"""The quarantine: records that failed a check wait here with every reason, never dropped.

Entries are written by the landing writer (:mod:`orchestration.registry.landing`) into
``quarantine/batches`` (reasons; loaded into the warehouse) and ``quarantine/payloads`` (the record
as submitted; never loaded). An entry is resolved by a note in ``quarantine/resolutions`` and kept.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.registry.fsutil import atomic_write, stamp, utcnow


def _payloads(home: Home, batch_stem: str) -> dict[str, dict[str, Any]]:
    f = home.quarantine_payloads / f"{batch_stem}.jsonl"
    out = {}
    if f.exists():
        with open(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    p = orjson.loads(line)
                    out[p["quarantine_id"]] = p
    return out


def quarantine_entries(home: Home, *, with_payload: bool = False, include_resolved: bool = True) -> list[dict[str, Any]]:
    """Every quarantined record, oldest first, with its resolution when it has one."""
    resolutions = {r["quarantine_id"]: r for r in _resolutions(home)}
    out = []
    for f in sorted(home.quarantine_batches.glob("*.jsonl")):
        payloads = _payloads(home, f.stem) if with_payload else {}
        with open(f, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                e = orjson.loads(line)
                res = resolutions.get(e["quarantine_id"])
                if res is not None and not include_resolved:
                    continue
                item = {
                    "quarantine_id": e["quarantine_id"],
                    "source_file": e["source_file"],
                    "record": e["record"],
                    "case_id": e["case_id"],
                    "errors": e["errors"],
                    "quarantined_at": e["quarantined_at"],
                    "resolved_at": res["at"] if res else None,
                    "resolution": res.get("note") if res else None,
                }
                if with_payload:
                    p = payloads.get(e["quarantine_id"], {})
                    item["payload"] = p.get("payload")
                    item["payload_encoding"] = p.get("payload_encoding")
                out.append(item)
    return out


def _resolutions(home: Home) -> Iterable[dict[str, Any]]:
    for f in sorted(home.quarantine_resolutions.glob("*.jsonl")) if home.quarantine_resolutions.exists() else []:
        with open(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)


def resolve_quarantine(home: Home, quarantine_id: str, *, note: str, resolved_by_batch: str | None = None) -> None:
    """Mark a quarantine entry resolved (it is kept, never deleted)."""
    rec = {"quarantine_id": quarantine_id, "at": utcnow().isoformat(), "note": note, "batch_id": resolved_by_batch}
    atomic_write(home.quarantine_resolutions / f"{stamp()}.jsonl", orjson.dumps(rec) + b"\n", tmp_dir=home.tmp)
    audit.event(home, "quarantine_resolved", quarantine_id=quarantine_id, note=note)
