"""Asset checks that guard the registry's promises: nothing submitted is lost, and the snapshot
readers see is the warehouse that was just built."""


import duckdb
from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from orchestration import audit
from orchestration.defs.resources import RegistryHome
from orchestration.landing import quarantine_entries
from orchestration import snapshot


@asset_check(asset=AssetKey(["raw", "case_records"]), description="accepted + duplicates + quarantined = submitted, and every accepted record version is in raw.case_records")
def nothing_submitted_is_lost(registry: RegistryHome) -> AssetCheckResult:
    home = registry.home()
    counts = {"accepted": 0, "duplicate": 0, "quarantined": 0}
    submitted = 0
    for e in audit.read(home):
        if e.get("event") == "submission":
            submitted += 1
            counts[e["status"]] = counts.get(e["status"], 0) + 1
    n_quarantine = len(quarantine_entries(home))
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        landed = 0
        files = sorted(home.landing_index.glob("*.parquet"))
        if files:
            landed = con.execute("SELECT count(DISTINCT (case_id, revision)) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()[0]
        in_raw = con.execute("SELECT count(*) FROM raw.case_records").fetchone()[0]
    finally:
        con.close()
    withdrawn = sum(1 for e in audit.read(home) if e.get("event") == "withdrawal")
    passed = (
        submitted == counts["accepted"] + counts["duplicate"] + counts["quarantined"]
        and counts["quarantined"] == n_quarantine
        and landed == in_raw
    )
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "submitted": submitted,
            **counts,
            "quarantine_entries": n_quarantine,
            "landed_record_versions": landed,
            "raw_record_versions": in_raw,
            "withdrawals": withdrawn,
        },
    )


@asset_check(asset=AssetKey("published_snapshot"), description="The published snapshot has the same rows as the warehouse's analyst-facing tables")
def snapshot_matches_warehouse(registry: RegistryHome) -> AssetCheckResult:
    home = registry.home()
    wh = duckdb.connect(str(home.warehouse), read_only=True)
    snap = snapshot.connect(home)
    mismatches = {}
    try:
        for (t,) in snap.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'registry'").fetchall():
            if t == "data_dictionary":
                continue
            a = wh.execute(f'SELECT count(*) FROM main."{t}"').fetchone()[0]
            b = snap.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
            if a != b:
                mismatches[t] = [a, b]
    finally:
        wh.close()
        snap.close()
    return AssetCheckResult(passed=not mismatches, metadata={"mismatches": str(mismatches) or "none"})
