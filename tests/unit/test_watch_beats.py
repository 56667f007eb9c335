"""The warm builder's heartbeat (services/watch.py ``_loop``) as `registry serve` reads it: once
warm, its first beat that says "ready" already says "building" when something landed before it
started, so that serve never takes it for idle in between (cli/serve.py ``_start_stages``)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from orchestration.registry.landing import submit
from orchestration.services import watch
from orchestration.warehouse.holders import heartbeat_file
from tests.support import record


def _run_loop(home, monkeypatch, *, builds: int = 1):
    """Run the loop until it has run ``builds`` builds (a fake run_build that records the heartbeat
    it sees); returns every heartbeat written, in order."""
    beats: list[dict] = []
    real_beat = watch.beat

    def recording_beat(h, **kw):
        real_beat(h, **kw)
        beats.append(json.loads(heartbeat_file(h).read_text()))

    done: list[str] = []

    def fake_build(h, *, trigger, instance, **kw):
        done.append(trigger)
        return SimpleNamespace(success=True, error=None, watermark=None, version="v", cases=1, seconds=0.0)

    monkeypatch.setattr(watch, "beat", recording_beat)
    monkeypatch.setattr(watch, "run_build", fake_build)
    monkeypatch.setattr(watch, "run_data_tests", lambda h, **kw: SimpleNamespace(success=True, error=None, stopped=False))
    monkeypatch.setattr(watch, "_built_watermark", lambda instance: None)
    signals = SimpleNamespace(after_build=lambda: None)
    polls = []

    def stop():
        polls.append(1)
        return len(done) >= builds and len(polls) > 3

    assert watch._loop(home, None, 0.001, stop, lambda line: None, signals) == 0
    return beats


def test_the_first_ready_beat_says_building_when_something_landed_before(home, monkeypatch):
    submit(home, [("first.json", json.dumps(record(case_id="B-1")).encode())])
    beats = _run_loop(home, monkeypatch)
    assert beats[0]["ready"] and beats[0]["building"], beats[:3]


def test_an_idle_builder_beats_ready_and_idle(home, monkeypatch):
    monkeypatch.setattr(watch, "run_build", None)
    beats: list[dict] = []
    real_beat = watch.beat
    monkeypatch.setattr(watch, "beat", lambda h, **kw: (real_beat(h, **kw), beats.append(kw)))
    monkeypatch.setattr(watch, "_built_watermark", lambda instance: None)
    n = []
    assert watch._loop(home, None, 0.001, lambda: n.append(1) or len(n) > 3, lambda line: None,
                       SimpleNamespace(after_build=lambda: None)) == 0
    assert beats and beats[0] == {}  # ready, not building: nothing has landed


def test_a_case_that_lands_during_a_build_is_built_before_that_builds_tests(home, monkeypatch):
    """The warm builder's builds leave dbt's data tests out and run them when no newer case waits:
    a case that landed during a build is built first, then the tests run once (they cover the cases
    changed since the last passing run, both builds' cases)."""
    submit(home, [("first.json", json.dumps(record(case_id="B-1")).encode())])
    order: list[str] = []

    def fake_build(h, *, trigger, instance, data_tests, leave_parquet):
        assert not data_tests and leave_parquet
        order.append("build")
        covered = watch.landing_watermark(home)  # as run_build: what had landed when the run started
        if len(order) == 1:  # a second case lands while the first is built
            submit(home, [("second.json", json.dumps(record(case_id="B-2")).encode())])
        return SimpleNamespace(success=True, error=None, watermark=covered, version="v", cases=1, seconds=0.0)

    def fake_tests(h, *, instance, changed_only, trigger, give_way_after):
        assert changed_only and trigger == "watch" and give_way_after == watch.landing_watermark(home)
        order.append("tests")
        return SimpleNamespace(success=True, error=None, stopped=False)

    monkeypatch.setattr(watch, "run_build", fake_build)
    monkeypatch.setattr(watch, "run_data_tests", fake_tests)
    monkeypatch.setattr(watch, "_built_watermark", lambda instance: None)
    n: list[int] = []
    assert watch._loop(home, None, 0.001, lambda: n.append(1) or len(n) > 20, lambda line: None,
                       SimpleNamespace(after_build=lambda: None)) == 0
    assert order == ["build", "build", "tests"]


def test_nothing_is_built_or_followed_up_while_a_file_of_several_chunks_lands(home, monkeypatch):
    from orchestration.registry import uploads

    submit(home, [("first.json", json.dumps(record(case_id="B-1")).encode())])
    upload = uploads.Upload(home)  # this live process is still landing a big file
    upload.begin()
    done: list[str] = []

    def fake_build(h, *, trigger, instance, **kw):
        done.append("build")
        return SimpleNamespace(success=True, error=None, watermark=watch.landing_watermark(h), version="v", cases=1, seconds=0.0)

    monkeypatch.setattr(watch, "run_build", fake_build)
    monkeypatch.setattr(watch, "run_data_tests", lambda h, **kw: done.append("tests") or SimpleNamespace(success=True, error=None, stopped=False))
    monkeypatch.setattr(watch, "_built_watermark", lambda instance: None)
    turns: list[int] = []

    def stop():
        turns.append(1)
        if len(turns) == 30:
            assert done == []  # 30 turns with the upload under way: nothing
            upload.end()
        return len(turns) > 60

    assert watch._loop(home, None, 0.001, stop, lambda line: None, SimpleNamespace(after_build=lambda: None)) == 0
    assert done == ["build", "tests"]  # once it has landed: built, then its tests


def test_a_stop_request_stops_the_parquet_writing_at_once(home, monkeypatch):
    """`registry serve` stopping while the builder writes a Parquet set when idle: the writing gives
    way as it does to a new case, so the builder ends at once instead of after the set."""
    monkeypatch.setattr(watch, "_built_watermark", lambda instance: None)
    monkeypatch.setattr(watch, "parquet_pending", lambda h: True)
    monkeypatch.setattr(watch, "parquet_shown", lambda h: True)
    monkeypatch.setattr(watch.tested, "untested", lambda h, w: False)
    monkeypatch.setattr(watch, "run_data_tests", None)  # nothing to test: never called
    writing: list[int] = []
    gave_way: list[int] = []

    def endless_writer(h, *, give_way):
        while not give_way():
            writing.append(1)
            if len(writing) > 2000:
                raise AssertionError("the Parquet writing did not give way to the stop")
        gave_way.append(len(writing))
        return None

    monkeypatch.setattr(watch, "complete_parquet", endless_writer)
    assert watch._loop(home, None, 0.001, lambda: len(writing) > 5, lambda line: None,
                       SimpleNamespace(after_build=lambda: None)) == 0
    assert gave_way == [6]  # the first time it was asked after the stop request
