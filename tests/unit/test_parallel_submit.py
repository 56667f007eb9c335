"""A big submission judged in worker processes lands exactly what the same submission judged in
this process lands: same receipts, same audit lines, same quarantine entries and payloads, byte-
identical landed batches and the same landing index (apart from batch ids and time stamps), on a few
thousand generated records with every kind of broken one among them."""

from __future__ import annotations

import copy
import re

import orjson
import pyarrow.parquet as pq
import pytest

from orchestration.config import Home
from orchestration.contract import validate
from orchestration.registry import audit, landing, judging
from orchestration.synthetic.generate import generate_records

STAMP = re.compile(rb'"(submitted_at|quarantined_at|batch_id|quarantine_id)":"[^"]*"')


def _lines() -> bytes:
    recs = list(generate_records(2500, seed=5))
    out = []
    for i, r in enumerate(recs):
        r = copy.deepcopy(r)
        k = i % 15
        if k == 1:
            r["patient"]["age_years"] = 40.5  # not a whole number
        elif k == 2:
            r["patient"]["age_years"] = 40.0  # a whole number: lands as 40
        elif k == 3:
            r["labs"] = (r.get("labs") or []) + [{"analyte": "calcium", "value": 2.2, "unit": "furlongs", "day": 0}]
        elif k == 4:
            r["mrn"] = "12345"
        elif k == 5:
            r["organs"] = r["organs"] + [dict(r["organs"][0])]
        elif k == 6 and i > 100:
            r = recs[i - 6]  # a duplicate of an earlier record
        elif k == 7 and i > 100:
            r = {**copy.deepcopy(recs[i - 7]), "citation": "changed"}  # same case and revision, other content
        elif k == 8:
            r["site_id"] = "OTHER-SITE"
        elif k == 9:
            r["case_id"] = "caf\u00e9\u202e-1"  # not an identifier, and a control character to print
        out.append(orjson.dumps(r))
    out[10] = b"{not json"
    out[20] = b'{"schema_version": 1, "patient": {"bmi": NaN}}'
    out[30] = out[30][:-1] + b', "case_id": "DUP-KEY-1"}'  # a repeated key
    out[40] = b"[1, 2]"
    out[50] = b'   {"a": "\\ud800"}   '
    out.insert(60, b"")  # a blank line
    return b"\n".join(out) + b"\n"


def _land(tmp_path, monkeypatch, name: str, workers: int, allowed_sites=None):
    monkeypatch.setattr(landing, "WORKERS", workers)
    monkeypatch.setattr(landing, "PARALLEL_MIN_BYTES", 0 if workers else 1 << 60)
    monkeypatch.setattr(landing, "CHUNK_RECORDS", 1000)  # three chunks
    monkeypatch.setattr(validate, "BLOCK_BYTES", 100_000)  # blocks of about 60 lines: they do not divide a chunk
    monkeypatch.setattr(landing, "AHEAD_BYTES", 1_000_000)
    pools: list = []
    real_pool = judging.WorkerPool

    def spy(n):
        pools.append(n)
        return real_pool(n)

    monkeypatch.setattr(judging, "WorkerPool", spy)
    home = Home(tmp_path / name).ensure()
    data = _lines()
    array = orjson.dumps([orjson.loads(x) for x in data.splitlines()[100:103]])  # a JSON array file alongside
    files = [("cohort.jsonl", data), ("more.json", array), ("again.jsonl", data[: data.index(b"\n", 5000) + 1])]
    receipts = landing.submit(home, files, allowed_sites=allowed_sites, user="u1")
    assert bool(pools) == bool(workers)
    events = [{k: v for k, v in e.items() if k not in ("at", "batch_id", "quarantine_id")} for e in audit.read(home)]

    def files_of(folder, pattern="*.jsonl") -> bytes:
        return b"".join(STAMP.sub(rb'"\1":"-"', f.read_bytes()) for f in sorted(folder.glob(pattern)))

    index = [pq.read_table(f).drop(["batch_id"]).to_pylist() for f in sorted(home.landing_index.glob("*.parquet"))]
    return {
        "receipts": [dict(r.as_dict(), quarantine_id=None) for r in receipts],
        "audit": events,
        "landed": files_of(home.landing_batches),
        "quarantine": files_of(home.quarantine_batches),
        "payloads": files_of(home.quarantine_payloads),
        "index": index,
    }


@pytest.mark.parametrize("allowed_sites", [None, frozenset({"UK-MAN", "DE-BER", "US-NYC"})])
def test_parallel_landing_equals_in_process_landing(tmp_path, monkeypatch, allowed_sites):
    here = _land(tmp_path, monkeypatch, "here", 0, allowed_sites)
    there = _land(tmp_path, monkeypatch, "there", 2, allowed_sites)
    statuses = {r["status"] for r in here["receipts"]}
    assert {"accepted", "duplicate", "quarantined"} <= statuses
    assert len(here["receipts"]) == 2500 + 3 + len(_lines()[:_lines().index(b"\n", 5000) + 1].splitlines())
    for what in here:
        assert here[what] == there[what], what
    assert b'"age_years":40,' in there["landed"] and b'"age_years":40.0' not in there["landed"]


def test_a_worker_that_dies_fails_the_submission_cleanly(tmp_path, monkeypatch):
    """No record of an unfinished chunk lands, and the error reaches the caller."""
    monkeypatch.setattr(landing, "WORKERS", 2)
    monkeypatch.setattr(landing, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(landing, "CHUNK_RECORDS", 1000)
    monkeypatch.setattr(validate, "BLOCK_BYTES", 100_000)
    monkeypatch.setattr(landing, "AHEAD_BYTES", 1_000_000)
    home = Home(tmp_path / "h").ensure()
    data = _lines()
    real = judging.WorkerPool.submit

    def poisoned(self, name, block, *args):
        fut = real(self, name, block, *args)
        if block.lineno > 1500:  # the second chunk: its worker is killed
            for w in self._workers:
                w.proc.kill()
        return fut

    monkeypatch.setattr(judging.WorkerPool, "submit", poisoned)
    with pytest.raises(Exception):
        landing.submit(home, [("cohort.jsonl", data)])
    assert not list((home.landing / "journal").glob("*.json"))
    landed = sum(len(f.read_bytes().splitlines()) for f in home.landing_batches.glob("*.jsonl"))
    assert landed < 1000  # at most the first chunk
