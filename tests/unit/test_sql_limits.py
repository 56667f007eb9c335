"""Concurrent SQL console queries are limited per user and overall (issue 15)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from orchestration.config import REPO_ROOT, Home
from orchestration.sql import limits
from orchestration.sql.console import QueryRefused, run_query_isolated


@pytest.fixture
def sqlhome(tmp_path, monkeypatch):
    for k in ("REGISTRY_SQL_MAX_CONCURRENT", "REGISTRY_SQL_MAX_PER_USER", "REGISTRY_SQL_QUEUE_SECONDS"):
        monkeypatch.delenv(k, raising=False)
    home = Home(tmp_path / "home").ensure()
    db = tmp_path / "snap.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE t AS SELECT range AS x FROM range(10)")
    con.close()
    return home, db


def test_limits_from_config_file_per_user_and_environment(sqlhome, monkeypatch):
    home, _ = sqlhome
    assert limits.limits_for(home, "a@x.org") == limits.Limits()
    cfg = limits.config_file(home)
    cfg.parent.mkdir(parents=True)
    cfg.write_text('max_concurrent = 3\nqueue_seconds = 1.5\n[users."boss@x.org"]\nmax_per_user = 3\n')
    assert limits.limits_for(home, "a@x.org") == limits.Limits(3, limits.DEFAULT_MAX_PER_USER, 1.5)
    assert limits.limits_for(home, "boss@x.org").max_per_user == 3
    monkeypatch.setenv("REGISTRY_SQL_MAX_CONCURRENT", "7")
    assert limits.limits_for(home, "a@x.org").max_concurrent == 7
    monkeypatch.setenv("REGISTRY_SQL_MAX_CONCURRENT", "many")
    with pytest.raises(ValueError):
        limits.limits_for(home, "a@x.org")


def test_a_busy_console_refuses_with_one_line(sqlhome, monkeypatch):
    home, db = sqlhome
    monkeypatch.setenv("REGISTRY_SQL_MAX_CONCURRENT", "1")
    monkeypatch.setenv("REGISTRY_SQL_QUEUE_SECONDS", "0.3")
    with limits.slot(home, "someone-else"):
        t0 = time.monotonic()
        with pytest.raises(QueryRefused) as exc:
            run_query_isolated("SELECT 1", database=db, home=home, user="me@x.org")
        assert time.monotonic() - t0 >= 0.3  # it queued first
    assert str(exc.value) == "the SQL console is busy (1 query running); try again"
    # free again: the same query runs
    assert run_query_isolated("SELECT count(*) AS n FROM t", database=db, home=home, user="me@x.org").table.to_pylist() == [{"n": 10}]


def test_per_user_limit_leaves_room_for_others(sqlhome, monkeypatch):
    home, _ = sqlhome
    monkeypatch.setenv("REGISTRY_SQL_MAX_PER_USER", "1")
    monkeypatch.setenv("REGISTRY_SQL_QUEUE_SECONDS", "0")
    with limits.slot(home, "greedy@x.org"):
        with pytest.raises(limits.ConsoleBusy):
            with limits.slot(home, "greedy@x.org"):
                pass
        with limits.slot(home, "other@x.org"):  # another user still gets a slot
            assert limits.running(home) == 2


def test_a_queued_query_runs_when_a_slot_frees(sqlhome, monkeypatch):
    home, db = sqlhome
    monkeypatch.setenv("REGISTRY_SQL_MAX_CONCURRENT", "1")
    monkeypatch.setenv("REGISTRY_SQL_QUEUE_SECONDS", "20")
    release = threading.Event()

    def hold():
        with limits.slot(home, "first"):
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    time.sleep(0.2)
    threading.Timer(0.5, release.set).start()
    res = run_query_isolated("SELECT sum(x) AS s FROM t", database=db, home=home, user="second")
    t.join()
    assert res.table.to_pylist() == [{"s": 45}]


def test_a_killed_query_process_frees_its_slot(sqlhome, monkeypatch):
    home, _ = sqlhome
    code = (
        "import sys, time\n"
        "from orchestration.config import Home\n"
        "from orchestration.sql import limits\n"
        "from pathlib import Path\n"
        "with limits.slot(Home(Path(sys.argv[1])), 'u'):\n"
        "    print('held', flush=True); time.sleep(60)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "REGISTRY_SQL_MAX_CONCURRENT": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, str(home.root)], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout.readline().strip() == "held"
    monkeypatch.setenv("REGISTRY_SQL_MAX_CONCURRENT", "1")
    monkeypatch.setenv("REGISTRY_SQL_QUEUE_SECONDS", "0")
    with pytest.raises(limits.ConsoleBusy):
        with limits.slot(home, "v"):
            pass
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with limits.slot(home, "v"):
        pass


def test_slots_of_a_snapshot_file_live_in_its_home(tmp_path):
    from orchestration.sql.console import _slot_home

    db = tmp_path / "home" / "published" / "versions" / "v1" / "registry.duckdb"
    assert _slot_home(db).root == (tmp_path / "home").resolve()
    assert "registry-sql-" in _slot_home(tmp_path / "x.duckdb").root.name
