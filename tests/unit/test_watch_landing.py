"""The warm builder's cheap poll (services/watch.py ``_Landing``): it lists the landing zone again
only when one of its directories moved, yet never misses a submission, a withdrawal or the commit
of a pending batch (issue 16)."""

from __future__ import annotations

import json

from orchestration.registry import journal
from orchestration.registry.landing import landing_watermark, submit
from orchestration.services import watch
from tests.support import record


def test_poll_sees_every_change_without_relisting_in_between(home, monkeypatch):
    monkeypatch.setattr(watch, "RELIST_S", 3600.0)  # only a moved directory may trigger a listing
    listings = []
    real = watch.landing_watermark
    monkeypatch.setattr(watch, "landing_watermark", lambda h: listings.append(1) or real(h))
    home.ensure()
    landing = watch._Landing(home)
    assert landing.watermark() is None
    assert landing.watermark() is None
    assert len(listings) == 1  # nothing moved: no second listing

    submit(home, [("a.json", json.dumps(record(case_id="P-1")).encode())])
    first = landing.watermark()
    assert first is not None and first == landing_watermark(home)

    submit(home, [("b.json", json.dumps(record(case_id="P-2")).encode())])
    second = landing.watermark()
    assert second > first and second == landing_watermark(home)
    n = len(listings)
    assert landing.watermark() == second and len(listings) == n


def test_a_batch_counts_once_its_journal_entry_is_gone(home, monkeypatch):
    monkeypatch.setattr(watch, "RELIST_S", 3600.0)
    submit(home, [("a.json", json.dumps(record(case_id="J-1")).encode())])
    landing = watch._Landing(home)
    committed = landing.watermark()
    # a later batch whose submission has not committed yet: not a watermark
    newer = sorted(p.name for p in home.landing_batches.iterdir() if not p.name.startswith("."))[-1].split(".", 1)[0]
    fake = newer[:-1] + chr(ord(newer[-1]) + 1)  # sorts after every real batch
    (home.landing_batches / f"{fake}.parquet").write_bytes(b"")
    journal.journal_dir(home).mkdir(parents=True, exist_ok=True)
    entry = journal.journal_dir(home) / f"{fake}.json"
    entry.write_text("{}")
    assert landing.watermark() == committed
    entry.unlink()  # the commit: only the journal directory moves
    assert landing.watermark() == fake


def test_relists_on_a_timer_for_coarse_timestamps(home, monkeypatch):
    monkeypatch.setattr(watch, "RELIST_S", 0.0)
    home.ensure()
    landing = watch._Landing(home)
    landing.watermark()
    landing.key = landing._key()  # pretend a change left every timestamp as it was
    submit(home, [("a.json", json.dumps(record(case_id="T-1")).encode())])
    landing.key = landing._key()
    assert landing.watermark() == landing_watermark(home) is not None
