"""Consent withdrawal: a patient's case disappears from everything analysts can read.

``withdraw(home, case_id, reason)``:

1. purges the case from the landing zone, the quarantine and the audit's details and leaves its
   tombstone (:func:`orchestration.registry.erasure.purge`; the only edit ever made to the
   landing zone: erasure overrides immutability), so the case is never ingested again and a
   resubmission is refused;
2. runs the pipeline: ingestion deletes the case from every raw table, dbt rebuilds the marts, a new
   snapshot is published, every older snapshot version is removed, and the warehouse file is rewritten
   so that no freed page still holds the case (:mod:`orchestration.warehouse.compact`).
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestration.config import Home
from orchestration.registry import erasure
from orchestration.services.build import run_build
from orchestration.warehouse.compact import compact
from orchestration.warehouse.publish import prune


@dataclass
class WithdrawResult:
    case_id: str
    landing_records_purged: int
    quarantine_entries_purged: int
    audit_events_purged: int
    build_success: bool | None = None


def withdraw(home: Home, case_id: str, reason: str, *, build: bool = True) -> WithdrawResult:
    p = erasure.purge(home, case_id, reason)
    result = WithdrawResult(case_id, p.landing_records_purged, p.quarantine_entries_purged, p.audit_events_purged)
    if build:
        summary = run_build(home)
        result.build_success = summary.success
        if summary.success:
            prune(home, keep=1)  # older versions may still hold the withdrawn case
            compact(home)  # and the warehouse's freed pages still hold its text
    return result
