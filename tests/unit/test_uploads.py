"""A file of several chunks marks itself while it lands, so that automatic builds wait for all of
it (orchestration/registry/uploads.py); a dead or old mark holds nothing back."""

from __future__ import annotations

import json
import subprocess
import sys

from orchestration.registry import landing, uploads
from tests.support import record


def _marks(home) -> list:
    folder = home.locks / "uploads"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_live_upload_holds_until_it_ends(home):
    assert not uploads.in_progress(home)
    up = uploads.Upload(home)
    up.begin()
    up.begin()  # once per upload
    assert len(_marks(home)) == 1 and uploads.in_progress(home)
    assert not uploads.in_progress(home, hold_s=0)  # held no longer than hold_s from its start
    assert len(_marks(home)) == 1  # (but still there: HOLD_S has not passed)
    up.end()
    up.begin()
    (mark,) = _marks(home)
    mark.write_text(json.dumps({**json.loads(mark.read_bytes()), "began": 0}))  # abandoned long ago by a live process
    assert not uploads.in_progress(home) and _marks(home) == []
    up.end()
    up.begin()
    (mark,) = _marks(home)
    mark.write_text(json.dumps({**json.loads(mark.read_bytes()), "began": 4e9}))  # the clock stepped back
    assert not uploads.in_progress(home)
    up.end()
    assert not uploads.in_progress(home) and _marks(home) == []


def test_a_dead_or_reused_process_holds_nothing_and_its_mark_goes(home):
    up = uploads.Upload(home)
    up.begin()
    (mark,) = _marks(home)
    data = json.loads(mark.read_bytes())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    mark.write_text(json.dumps({**data, "pid": dead.pid}))
    assert not uploads.in_progress(home)
    assert _marks(home) == []
    up.begin()  # this object already has a mark (removed above): nothing new
    up.end()
    other = uploads.Upload(home)
    other.begin()
    (mark,) = _marks(home)
    mark.write_text(json.dumps({**json.loads(mark.read_bytes()), "start": "1"}))  # this pid, another process
    assert not uploads.in_progress(home)
    (home.locks / "uploads" / "x.json").write_text("{not json")
    assert not uploads.in_progress(home)


def test_a_file_of_several_chunks_marks_itself_while_it_lands(home, monkeypatch):
    monkeypatch.setattr(landing, "CHUNK_RECORDS", 2)
    records = "\n".join(json.dumps(record(case_id=f"U-{i}")) for i in range(5)).encode()
    chunks = landing.submit_iter(home, [("big.jsonl", records)])
    assert [r.status for r in next(chunks)] == ["accepted", "accepted"]
    assert uploads.in_progress(home)  # more may follow
    assert sum(len(c) for c in chunks) == 3
    assert not uploads.in_progress(home) and _marks(home) == []
    # abandoned half-way (the caller stops reading): the mark goes with it
    chunks = landing.submit_iter(home, [("again.jsonl", records)])
    next(chunks)
    assert uploads.in_progress(home)
    chunks.close()
    assert not uploads.in_progress(home)
    # a file of one chunk never holds builds back
    monkeypatch.setattr(uploads.Upload, "begin", lambda self: (_ for _ in ()).throw(AssertionError("marked")))
    assert [r.status for r in landing.submit(home, [("one.jsonl", json.dumps(record(case_id="U-9")).encode())])] == ["accepted"]
