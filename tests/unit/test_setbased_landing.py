"""Landing with the set-based check gives the same results as landing with the Python validator
alone: same receipts, same audit lines, same quarantine entries and payloads, byte-identical
landed batches (apart from the batch id and the time stamps)."""

from __future__ import annotations

import copy
import json
import re

import orjson

from orchestration.config import Home
from orchestration.registry import audit, landing
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
            r["patient"]["age_years"] = 40.0  # left to Python by the set-based check
        elif k == 7 and i > 600:
            r = recs[i - 7]  # a duplicate of an earlier record
        out.append(orjson.dumps(r))
    out.insert(50, b"{not json")
    out.insert(70, b'{"schema_version": 1, "patient": {"bmi": NaN}}')
    return b"\n".join(out) + b"\n"


def _land(tmp_path, monkeypatch, name: str, set_based: bool) -> tuple[list, list, bytes, bytes, bytes]:
    monkeypatch.setattr(landing, "SET_BASED", set_based)
    monkeypatch.setattr(landing, "CHUNK_RECORDS", 700)  # two chunks (700 and 502 records), both set-based
    home = Home(tmp_path / name).ensure()
    data = _cohort()
    receipts = landing.submit(home, [("cohort.jsonl", data)])
    events = [{k: v for k, v in e.items() if k not in ("at", "batch_id", "quarantine_id", "ts", "time")} for e in audit.read(home)]

    def files(folder) -> bytes:
        return b"".join(STAMP.sub(rb'"\1":"-"', f.read_bytes()) for f in sorted(folder.glob("*.jsonl")))

    return (
        [dict(r.as_dict(), quarantine_id=None) for r in receipts],
        events,
        files(home.landing_batches),
        files(home.quarantine_batches),
        files(home.quarantine_payloads),
    )


def test_set_based_landing_equals_python_landing(tmp_path, monkeypatch):
    python = _land(tmp_path, monkeypatch, "python", False)
    seen: list[int] = []
    real = landing.SetChecker.passing

    def spy(self, records, **kw):
        out = real(self, records, **kw)
        seen.append(sum(out))
        return out

    monkeypatch.setattr(landing.SetChecker, "passing", spy)
    setbased = _land(tmp_path, monkeypatch, "setbased", True)
    assert seen and sum(seen) > 500, "the set-based check did not take part"
    statuses = {r["status"] for r in python[0]}
    assert statuses == {"accepted", "duplicate", "quarantined"}
    for a, b, what in zip(python, setbased, ["receipts", "audit", "landed batches", "quarantine", "quarantine payloads"]):
        assert a == b, what
    # and the landed records are the submitted ones, byte for byte as the Python path writes them
    assert json.loads(setbased[2].splitlines()[0])["record"]["case_id"] == "SYN-11-0000001"
