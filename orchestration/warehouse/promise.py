"""The registry's first promise, checked after every build (the asset check
``nothing_submitted_is_lost``): accepted + duplicates + quarantined = submitted, every acceptance is
in the landing zone, every quarantine is kept, and every record version of the batches the
warehouse has ingested is in ``raw.case_records``.

It is counted at one consistent moment: under the warehouse lock (no ingest or purge is half-way)
and the landing lock (a submission writes its files and its audit lines under it), after the
landing zone's crash recovery, as every reader of the landing zone does.

Submissions keep landing while a build runs (a case submitted during the build, or the later chunks
of a large file: `registry build` does not wait for an upload, and automatic builds wait for one for
at most 120 s, ``orchestration/registry/uploads.py``). Their batches are not
in the warehouse yet, and that is no loss: they are reported as ``landed_not_ingested`` and the next
build takes them. Batch names sort in landing order and an ingest takes every batch landed before
it, so a batch not ingested yet must be newer than every ingested one; an older batch missing from
the warehouse fails the check. (Names start with the UTC time of landing, as the sensor's and the
warm builder's watermark assumes too: a system clock stepped back by more than the time between two
submissions would make this check fail wrongly, never pass wrongly.)"""

from __future__ import annotations

from typing import Any

import duckdb

from orchestration.config import Home
from orchestration.registry import audit, journal
from orchestration.registry.landing import index_files
from orchestration.registry.quarantine import quarantine_entries
from orchestration.registry.withdrawals import withdrawn_case_ids
from orchestration.warehouse.locks import warehouse_lock


def nothing_lost(home: Home) -> tuple[bool, dict[str, Any]]:
    """(passed, the counts: the check's metadata)."""
    with warehouse_lock(home), journal.landing_lock(home):  # the order ingestion takes them in
        journal.recover(home)
        c = audit.submission_counts(home)
        n_quarantine = len(quarantine_entries(home))
        withdrawn = sorted(withdrawn_case_ids(home))
        landed, by_ingest, in_raw = _landed_and_raw(home, withdrawn)
    counts = {k: c[k] for k in ("accepted", "duplicate", "quarantined")}
    passed = (
        c["submitted"] == counts["accepted"] + counts["duplicate"] + counts["quarantined"]
        # every audited acceptance is in the landing zone (except withdrawn cases, purged) ...
        and counts["accepted"] - c["accepted_withdrawn"] == landed
        # ... and, up to the newest batch ingested, in the warehouse
        and by_ingest == in_raw
        and counts["quarantined"] - c["quarantined_withdrawn"] == n_quarantine  # every quarantine is kept
    )
    return passed, {
        "submitted": c["submitted"],
        **counts,
        "quarantine_entries": n_quarantine,
        "landed_record_versions": landed,
        "landed_not_ingested": landed - by_ingest,
        "raw_record_versions": in_raw,
        "withdrawals": c["withdrawals"],
    }


def _landed_and_raw(home: Home, withdrawn: list[str]) -> tuple[int, int, int]:
    """Record versions in the landing zone; those of batches up to the newest ingested one; those in
    ``raw.case_records`` (withdrawn cases left out: a withdrawal purges the landing zone at once, the
    warehouse at the next ingest)."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        newest = con.execute("SELECT max(batch_id) FROM raw.ingested_batches").fetchone()[0]
        landed = by_ingest = 0
        files = index_files(home)
        if files:
            landed, by_ingest = con.execute(
                "SELECT count(DISTINCT (case_id, revision)), count(DISTINCT (case_id, revision)) FILTER (WHERE batch_id <= ?) "
                "FROM read_parquet(?)",
                [newest, files],
            ).fetchone()
        in_raw = con.execute(
            "SELECT count(*) FROM raw.case_records WHERE case_id NOT IN (SELECT unnest(?::VARCHAR[]))", [withdrawn]
        ).fetchone()[0]
    finally:
        con.close()
    return landed, by_ingest or 0, in_raw
