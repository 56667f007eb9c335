"""Consent withdrawal's purge, under the landing lock: the entry point of
:mod:`orchestration.registry.withdrawals`' steps.

Apart from that module because it takes the landing lock and runs the journal's recovery first
(``journal.py``), and the journal's recovery in turn finishes a purge a crash cut short
(``withdrawals.finish_interrupted``): journal -> withdrawals, and this module above both.
"""

from __future__ import annotations

import orjson

from orchestration.config import Home
from orchestration.registry import journal
from orchestration.registry.fsutil import atomic_write, crash_point, stamp, utcnow
from orchestration.registry.withdrawals import PENDING, Purge, carry_out


def purge(home: Home, case_id: str, reason: str) -> Purge:
    """Erase a case from the landing zone, the quarantine (payloads included) and the audit's details;
    leave its tombstone and a ``withdrawal`` audit event. The warehouse and snapshots are the
    pipeline's to clean (the next build deletes the case). All or nothing across crashes: a mark is
    written first, and whoever takes the landing lock next finishes the purge if this process dies
    (see :mod:`orchestration.registry.withdrawals`)."""
    home.ensure()
    if not reason.strip():
        raise ValueError("a reason is required")
    with journal.landing_lock(home):
        journal.recover(home)  # an interrupted submission (or purge) is completed or undone before this one
        name = stamp()
        body = orjson.dumps({"case_id": case_id, "reason": reason, "at": utcnow().isoformat()})
        atomic_write(home.withdrawals / f"{name}{PENDING}", body, tmp_dir=home.tmp)
        crash_point("withdraw.after_mark")
        return carry_out(home, name, body)
