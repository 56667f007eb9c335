"""A record version reaches the warehouse once, even if a crash let it into two landing batches: the
copy in the first batch (then the first record of that batch) is kept; ingesting again adds nothing."""

from __future__ import annotations

import duckdb
import orjson

from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse.ingest import ingest


def _batch(home: Home, name: str, records: list[dict], start: int = 0) -> None:
    lines = [
        orjson.dumps({
            "case_id": r["case_id"], "revision": r["revision"], "content_hash": f"h-{r['case_id']}-{r['revision']}",
            "submitted_at": "2026-11-30T10:00:00+00:00", "source_file": f"{name}.jsonl", "record_index": start + i,
            "channel": "cli", "record": r,
        })
        for i, r in enumerate(records)
    ]
    (home.landing_batches / f"{name}.jsonl").write_bytes(b"\n".join(lines) + b"\n")


def test_a_record_version_in_two_batches_is_ingested_once(tmp_path):
    home = Home(tmp_path / "home").ensure()
    home.landing_batches.mkdir(parents=True, exist_ok=True)
    recs = list(generate_records(6, seed=3))
    _batch(home, "20261130T100000000000Z-1-a", recs[:4])
    _batch(home, "20261130T100001000000Z-1-b", [recs[3], recs[2], recs[4], recs[5]], start=10)  # 2 and 3 again
    res = ingest(home)
    assert res.records == 6
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        rows = con.execute("SELECT case_id, batch_id, record_index FROM raw.case_records ORDER BY case_id").fetchall()
        assert len(rows) == 6 and len({r[0] for r in rows}) == 6
        first = {r[0]: (r[1], r[2]) for r in rows}
        assert first[recs[2]["case_id"]] == ("20261130T100000000000Z-1-a", 2)
        assert first[recs[3]["case_id"]] == ("20261130T100000000000Z-1-a", 3)
        labs = con.execute("SELECT count(*) FROM raw.labs").fetchone()[0]
        assert labs == sum(len(r.get("labs") or []) for r in recs)
        assert con.execute("SELECT sum(n_records) FROM raw.ingested_batches").fetchone()[0] == 6
    finally:
        con.close()
    assert ingest(home).records == 0


def _pending(home: Home) -> list[str]:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return [r[0] for r in con.execute("SELECT case_id FROM raw.pending_cases ORDER BY case_id").fetchall()]
    finally:
        con.close()


def test_a_case_is_pending_once_and_clearing_numbers_it_once(tmp_path):
    """Two versions of a case in one ingest, another version in a later one and a withdrawal of a
    pending case list each case once; clearing moves each to case_changes once, empties the list
    and leaves the table as it was (its primary key: processes of older versions rely on it)."""
    from orchestration.registry.erasure import purge
    from orchestration.warehouse.ingest import clear_pending

    home = Home(tmp_path / "home").ensure()
    home.landing_batches.mkdir(parents=True, exist_ok=True)
    recs = list(generate_records(4, seed=5))
    second = {**recs[1], "revision": recs[1]["revision"] + 1}
    _batch(home, "20261130T100000000000Z-1-a", [*recs, second])  # case 1 twice in one ingest
    ingest(home)
    third = {**recs[1], "revision": recs[1]["revision"] + 2}
    _batch(home, "20261130T100001000000Z-1-b", [third])
    ingest(home)
    purge(home, recs[2]["case_id"], reason="test")  # a pending case withdrawn before any build
    ingest(home)
    assert _pending(home) == sorted(r["case_id"] for r in recs)
    assert clear_pending(home) == 4
    assert _pending(home) == []
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT case_id), min(seq), max(seq) FROM raw.case_changes").fetchone() == (4, 4, 1, 1)
        kinds = sorted(r[0] for r in con.execute(
            "SELECT constraint_type FROM duckdb_constraints() WHERE schema_name = 'raw' AND table_name = 'pending_cases'").fetchall())
        assert kinds == ["NOT NULL", "PRIMARY KEY"]
    finally:
        con.close()
