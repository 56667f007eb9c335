"""Landing with the compiled check (orchestration.contract.fastcheck: a record it passes is landed
without the Python validator) gives the same results as landing with the Python validator alone:
same receipts, same audit lines, same quarantine entries and payloads, byte-identical landed
batches and landing index (apart from the batch id and the time stamps), in this process and in
worker processes."""

from __future__ import annotations

import copy
import json
import re

import orjson
import pyarrow.parquet as pq
import pytest

from orchestration.config import Home
from orchestration.registry import audit, landing, judging
from orchestration.synthetic.generate import generate_records

STAMP = re.compile(rb'"(submitted_at|quarantined_at|batch_id|quarantine_id)":"[^"]*"')


def _cohort() -> bytes:
    recs = list(generate_records(1200, seed=11))
    out = []
    for i, r in enumerate(recs):
        r = copy.deepcopy(r)
        k = i % 12
        if k == 1:
            r["patient"]["age_years"] = 40.5  # not a whole number
        elif k == 2:
            r["labs"] = (r.get("labs") or []) + [{"analyte": "calcium", "value": 2.2, "unit": "furlongs", "day": 0}]
        elif k == 3:
            r["kidney"]["status"] = "ckd"
            r["kidney"]["dialysis_modality"] = "hemodialysis"
        elif k == 4:
            r["mrn"] = "12345"  # an identifier
        elif k == 5:
            r["organs"] = r["organs"] + [dict(r["organs"][0])]  # an organ twice
        elif k == 6:
            r["patient"]["age_years"] = 40.0  # left to Python by the compiled check
        elif k == 7 and i > 600:
            r = recs[i - 7]  # a duplicate of an earlier record
        elif k == 8 and i > 600:
            r = {**copy.deepcopy(recs[i - 8]), "citation": "changed"}  # same case and revision, other content
        elif k == 9:
            r["patient"]["bmi"] = 25  # an integer in a number field: valid, and certainly so
        elif k == 10:
            r = dict(reversed(list(r.items())))  # keys in another order
        elif k == 11:
            r.pop("revision", None)  # revision left out: 1
        out.append(orjson.dumps(r))
    out.insert(50, b"{not json")
    out.insert(70, b'{"schema_version": 1, "patient": {"bmi": NaN}}')
    return b"\n".join(out) + b"\n"


def _land(tmp_path, monkeypatch, name: str, fast: bool, workers: int = 0) -> tuple:
    monkeypatch.setattr(judging, "FAST_CHECK", fast)
    monkeypatch.setattr(landing, "CHUNK_RECORDS", 700)  # two chunks (700 and 502 records)
    monkeypatch.setattr(landing, "WORKERS", workers)
    monkeypatch.setattr(landing, "PARALLEL_MIN_BYTES", 0 if workers else 1 << 60)
    home = Home(tmp_path / name).ensure()
    data = _cohort()
    receipts = landing.submit(home, [("cohort.jsonl", data)], user="coordinator")
    events = [{k: v for k, v in e.items() if k not in ("at", "batch_id", "quarantine_id", "ts", "time")} for e in audit.read(home)]

    def files(folder) -> bytes:
        return b"".join(STAMP.sub(rb'"\1":"-"', f.read_bytes()) for f in sorted(folder.glob("*.jsonl")))

    return (
        [dict(r.as_dict(), quarantine_id=None) for r in receipts],
        events,
        files(home.landing_batches),
        files(home.quarantine_batches),
        files(home.quarantine_payloads),
        [pq.read_table(f).drop(["batch_id"]).to_pylist() for f in sorted(home.landing_index.glob("*.parquet"))],
    )


@pytest.mark.parametrize("workers,python_workers", [(0, 0), (2, 0), (0, 2)])
def test_fast_landing_equals_python_landing(tmp_path, monkeypatch, workers, python_workers):
    python = _land(tmp_path, monkeypatch, "python", False, python_workers)  # (the switch reaches the workers)
    seen: list[bool] = []
    real = judging.certainly_valid

    def spy(obj, year):
        out = real(obj, year)
        seen.append(out)
        return out

    monkeypatch.setattr(judging, "certainly_valid", spy)
    fast = _land(tmp_path, monkeypatch, "fast", True, workers)
    if not workers:  # (in worker processes the spy is not there to see)
        assert sum(seen) > 500, "the compiled check did not take part"
    statuses = {r["status"] for r in python[0]}
    assert statuses == {"accepted", "duplicate", "quarantined"}
    assert any("already submitted with different content" in e["message"] for r in python[0] for e in r["errors"])
    for a, b, what in zip(python, fast, ["receipts", "audit", "landed batches", "quarantine", "quarantine payloads", "index"]):
        assert a == b, what
    # and the landed records are the submitted ones, byte for byte as the Python path writes them
    assert json.loads(fast[2].splitlines()[0])["record"]["case_id"] == "SYN-11-0000001"
    assert all(e.get("user") == "coordinator" for e in fast[1])


def test_the_landing_index_is_extended_only_by_the_batch_it_staged(tmp_path):
    """``_LandingIndex.add`` extends the index from the rows ``parquet`` staged, for that batch only,
    once: a batch whose index file was not made (or was added already) is refused, not guessed."""
    from types import SimpleNamespace

    idx = landing._LandingIndex(Home(tmp_path))
    try:
        with pytest.raises(RuntimeError, match="not staged"):
            idx.add("b1")
        assert idx.parquet([SimpleNamespace(case_id="C-1", revision=1, content_hash="h1")], "b1").startswith(b"PAR1")
        with pytest.raises(RuntimeError, match="not staged"):
            idx.add("b2")
        idx.add("b1")
        assert idx.lookup(["C-1"]) == ({("C-1", 1): "h1"}, {"C-1": 1})
        with pytest.raises(RuntimeError, match="not staged"):
            idx.add("b1")  # twice would count its rows twice
    finally:
        idx.close()
