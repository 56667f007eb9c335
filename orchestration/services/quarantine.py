"""Correcting a quarantined record: the use case the /submit form and ``registry quarantine resolve``
share.

A correction is a new submission of the fixed record through the one landing writer (same
validator, receipts and audit as ``registry submit``); when it is accepted (or is identical to an
accepted record) the quarantine entry is marked resolved with a note saying so, and kept. An entry
that needs no resubmission (a file sent twice, a test) is resolved with a note alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestration.config import Home
from orchestration.registry.landing import ACCEPTED, DUPLICATE, Receipt, batch_of, submit
from orchestration.registry.quarantine import quarantine_entries, resolve_quarantine


class UnknownEntry(LookupError):
    """No quarantine entry has that id."""


@dataclass
class Correction:
    receipt: Receipt
    resolved: str | None  # the quarantine id that was resolved, when the correction landed
    batch_id: str | None  # the landing batch of an accepted correction


def find_entry(home: Home, quarantine_id: str) -> dict[str, Any]:
    for e in quarantine_entries(home, with_payload=True, include_resolved=True):
        if e["quarantine_id"] == quarantine_id:
            return e
    raise UnknownEntry(f"no quarantine entry {quarantine_id!r} (see `registry quarantine`)")


def correct(home: Home, quarantine_id: str | None, record: dict[str, Any], *, channel: str = "form",
            source: str | None = None) -> Correction:
    """Submit ``record`` as the correction of quarantine entry ``quarantine_id`` (or as a plain
    submission when it is ``None``); resolve the entry when the record lands."""
    if quarantine_id is not None:
        entry = find_entry(home, quarantine_id)
        if entry["resolved_at"]:
            raise ValueError(f"quarantine entry {quarantine_id} is already resolved ({entry['resolution']})")
    body = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")
    (r,) = submit(home, [(source or f"{channel}:{record.get('case_id')}", body)], channel=channel)
    batch = batch_of(home, r.case_id, r.revision) if r.status == ACCEPTED else None
    resolved = None
    if quarantine_id is not None and r.status in (ACCEPTED, DUPLICATE):
        note = f"corrected and resubmitted as {r.case_id} r{r.revision}" + (
            " (identical to the accepted record)" if r.status == DUPLICATE else "")
        resolve_quarantine(home, quarantine_id, note=note, resolved_by_batch=batch)
        resolved = quarantine_id
    return Correction(r, resolved, batch)


def resolve(home: Home, quarantine_id: str, note: str) -> None:
    """Mark an entry resolved with a note (it is kept)."""
    if not note.strip():
        raise ValueError("a note is required: why is this entry resolved?")
    entry = find_entry(home, quarantine_id)
    if entry["resolved_at"]:
        raise ValueError(f"quarantine entry {quarantine_id} is already resolved ({entry['resolution']})")
    resolve_quarantine(home, quarantine_id, note=note)
