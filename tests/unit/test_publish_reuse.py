"""Publishing without copying unchanged data: a table whose contents did not change since the current
version is hard-linked (Parquet) and kept (DuckDB file) from it; every published table still equals
the warehouse's, in both the DuckDB file and the Parquet files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
from pathlib import Path

from orchestration.config import Home
from orchestration.warehouse import publish as pub
from orchestration.warehouse.snapshot import DB_NAME


def _manifest(home: Home):
    """A dbt manifest that marks the three analyst-facing tables as published (and not the staging one)."""
    nodes = {
        f"model.p.{t}": {"resource_type": "model", "name": t, "config": {"meta": {"publish": t != "stg_not_published"}}}
        for t in ("dim_cases", "fct_lab_results", "mart_small", "stg_not_published")
    }
    path = home.root / "manifest.json"
    path.write_text(json.dumps({"nodes": nodes}))
    return path


def _warehouse(home: Home, sql: str) -> None:
    con = duckdb.connect(str(home.warehouse))
    try:
        con.execute(sql)
    finally:
        con.close()


def _published(home: Home, table: str) -> tuple[list, list]:
    vdir = home.published_current.resolve()
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{vdir / DB_NAME}' AS p (READ_ONLY)")
        db = con.execute(f"SELECT * FROM p.main.{table} ORDER BY ALL").fetchall()
        pq = con.execute(f"SELECT * FROM read_parquet('{vdir / 'parquet' / (table + '.parquet')}') ORDER BY ALL").fetchall()
    finally:
        con.close()
    return db, pq


def _expected(home: Home, table: str) -> list:
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        return con.execute(f"SELECT * FROM main.{table} ORDER BY ALL").fetchall()
    finally:
        con.close()


def _inode(home: Home, table: str) -> int:
    return os.stat(home.published_current.resolve() / "parquet" / f"{table}.parquet").st_ino


def _three_tables(tmp_path) -> Home:
    """A home whose warehouse has the three published tables (and one that is not published)."""
    home = Home(tmp_path / "home").ensure()
    _warehouse(home, """
        CREATE TABLE dim_cases AS SELECT i AS case_id, i % 7 AS age FROM range(5000) r(i);
        CREATE TABLE fct_lab_results AS SELECT i % 5000 AS case_id, i * 0.5 AS value FROM range(20000) r(i);
        CREATE TABLE mart_small AS SELECT 1 AS n;
        CREATE TABLE stg_not_published AS SELECT 1 AS n;
    """)
    return home


def test_unchanged_tables_are_linked_and_changed_ones_rewritten(tmp_path):
    home = _three_tables(tmp_path)
    first = pub.publish(home, manifest_path=_manifest(home))
    tables = ["dim_cases", "fct_lab_results", "mart_small"]
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t)
    inodes = {t: _inode(home, t) for t in tables}

    # one small table changes: the big ones are reused, from the previous DuckDB file and by link
    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 2 AS n")
    second = pub.publish(home, manifest_path=_manifest(home))
    assert second.version != first.version
    meta = json.loads((second.path / "snapshot.json").read_text())
    assert meta["reused"] == ["dim_cases", "fct_lab_results"]
    assert _inode(home, "dim_cases") == inodes["dim_cases"]
    assert _inode(home, "fct_lab_results") == inodes["fct_lab_results"]
    assert _inode(home, "mart_small") != inodes["mart_small"]
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    assert _published(home, "mart_small")[0] == [(2,)]
    # the previous version is untouched (readers of it see the old state)
    con = duckdb.connect()
    con.execute(f"ATTACH '{first.path / DB_NAME}' AS old (READ_ONLY)")
    assert con.execute("SELECT n FROM old.main.mart_small").fetchall() == [(1,)]
    con.close()

    # a change in the big table (same row count, one value): detected, rewritten; a fresh file
    _warehouse(home, "UPDATE fct_lab_results SET value = value + 1 WHERE case_id = 17 AND value < 10")
    third = pub.publish(home, manifest_path=_manifest(home))
    meta = json.loads((third.path / "snapshot.json").read_text())
    assert "fct_lab_results" not in meta["reused"] and "dim_cases" in meta["reused"]
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    assert not (third.path / (DB_NAME + ".wal")).exists()
    assert sorted(os.listdir(third.path)) == ["data_dictionary.md", "parquet", DB_NAME, "snapshot.json"]  # no spare copy
    tabs = duckdb.connect(str(third.path / DB_NAME), read_only=True).execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
    assert [t for (t,) in tabs] == ["data_dictionary", "dim_cases", "fct_lab_results", "mart_small"]


def _changes(home: Home, *case_ids: int) -> None:
    """What a successful dbt build leaves for the publisher: the cases it recomputed, under a new number."""
    _warehouse(home, "CREATE SCHEMA IF NOT EXISTS raw; CREATE TABLE IF NOT EXISTS raw.case_changes (case_id VARCHAR, seq BIGINT)")
    con = duckdb.connect(str(home.warehouse))
    try:
        seq = con.execute("SELECT coalesce(max(seq), 0) + 1 FROM raw.case_changes").fetchone()[0]
        con.executemany("INSERT INTO raw.case_changes VALUES (?, ?)", [[str(c), seq] for c in case_ids])
    finally:
        con.close()


def _meta(result) -> dict:
    return json.loads((result.path / "snapshot.json").read_text())


def test_changed_cases_are_patched_into_a_copy_and_a_wrong_list_is_caught(tmp_path):
    home = Home(tmp_path / "home").ensure()
    _warehouse(home, """
        CREATE TABLE dim_cases AS SELECT i::VARCHAR AS case_id, i % 7 AS age FROM range(5000) r(i);
        CREATE TABLE fct_lab_results AS SELECT (i % 5000)::VARCHAR AS case_id, i * 0.5 AS value FROM range(20000) r(i);
        CREATE TABLE mart_small AS SELECT count(*) AS n FROM dim_cases;
        CREATE TABLE stg_not_published AS SELECT 1 AS n;
    """)
    _changes(home, *range(5000))  # the first build recomputed every case
    first = pub.publish(home, manifest_path=_manifest(home))
    assert _meta(first)["patched"] == [] and _meta(first)["changes_seq"] == 1
    tables = ["dim_cases", "fct_lab_results", "mart_small"]

    # a new case, a revised one (17: one lab row fewer, age changed) and a withdrawn one (19)
    _warehouse(home, """
        INSERT INTO dim_cases VALUES ('new-1', 3);
        INSERT INTO fct_lab_results VALUES ('new-1', 1.5), ('new-1', 2.5);
        UPDATE dim_cases SET age = 99 WHERE case_id = '17';
        DELETE FROM fct_lab_results WHERE case_id = '17' AND value = 8.5;
        DELETE FROM dim_cases WHERE case_id = '19';
        DELETE FROM fct_lab_results WHERE case_id = '19';
        CREATE OR REPLACE TABLE mart_small AS SELECT count(*) AS n FROM dim_cases;
    """)
    _changes(home, "new-1", 17, 19)
    second = pub.publish(home, manifest_path=_manifest(home))
    meta = _meta(second)
    assert meta["patched"] == ["dim_cases", "fct_lab_results"] and meta["changes_seq"] == 2
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    assert not (second.path / (DB_NAME + ".wal")).exists()
    con = duckdb.connect()  # the previous version is untouched
    con.execute(f"ATTACH '{first.path / DB_NAME}' AS old (READ_ONLY)")
    assert con.execute("SELECT age FROM old.main.dim_cases WHERE case_id = '17'").fetchall() == [(17 % 7,)]
    assert con.execute("SELECT count(*) FROM old.main.dim_cases").fetchall() == [(5000,)]
    con.close()

    # a change the list does not name (case 23): the patch does not add up, the table is copied whole
    _warehouse(home, "UPDATE dim_cases SET age = -1 WHERE case_id IN ('23', '24')")
    _changes(home, 24)
    third = pub.publish(home, manifest_path=_manifest(home))
    meta = _meta(third)
    assert "dim_cases" not in meta["patched"] and "fct_lab_results" in meta["reused"]
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t

    # nothing listed and nothing changed: everything reused, nothing patched
    fourth = pub.publish(home, manifest_path=_manifest(home))
    assert _meta(fourth)["patched"] == [] and sorted(_meta(fourth)["reused"]) == tables

    # a withdrawn case: the new file is written fresh, so no free page of it holds the case's rows
    canary = "CANARY-WD-7f3a9c-0001"
    _warehouse(home, f"INSERT INTO dim_cases VALUES ('{canary}', 1); INSERT INTO fct_lab_results VALUES ('{canary}', 7.25)")
    _changes(home, canary)
    fifth = pub.publish(home, manifest_path=_manifest(home))
    assert _meta(fifth)["patched"] == ["dim_cases", "fct_lab_results"]
    assert canary.encode() in (fifth.path / DB_NAME).read_bytes()  # the check below can see it at all
    _warehouse(home, f"DELETE FROM dim_cases WHERE case_id = '{canary}'; DELETE FROM fct_lab_results WHERE case_id = '{canary}'")
    home.withdrawals.mkdir(parents=True, exist_ok=True)
    (home.withdrawals / "canary.json").write_text(json.dumps({"case_id": canary.lower()}))
    _changes(home, canary)
    sixth = pub.publish(home, manifest_path=_manifest(home))
    assert _meta(sixth)["patched"] == [] and _meta(sixth)["patched_rows_since_fresh"] == 0
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    assert canary.encode() not in (sixth.path / DB_NAME).read_bytes()


def _parquet_rows(folder, table: str) -> list:
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM read_parquet('{folder / (table + '.parquet')}') ORDER BY ALL").fetchall()
    finally:
        con.close()


def _publish_killed(home: Home, monkeypatch, killed) -> None:
    """A publish killed (``killed``) while it writes the Parquet set, after the switch."""
    monkeypatch.setattr(pub, "_write_parquet_set_from_snapshot", killed)
    try:
        pub.publish(home, manifest_path=_manifest(home))
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()


def test_the_parquet_set_follows_the_switch_as_one_set_and_a_killed_publish_is_repaired(tmp_path, monkeypatch):
    home = Home(tmp_path / "home").ensure()
    _warehouse(home, """
        CREATE TABLE dim_cases AS SELECT i AS case_id, i % 7 AS age FROM range(500) r(i);
        CREATE TABLE fct_lab_results AS SELECT i % 500 AS case_id, i * 0.5 AS value FROM range(2000) r(i);
        CREATE TABLE mart_small AS SELECT 1 AS n;
    """)
    first = pub.publish(home, manifest_path=_manifest(home))
    tables = ["dim_cases", "fct_lab_results", "mart_small"]
    # the first publish has no earlier set to show meanwhile: its set is switched in with the snapshot
    assert (first.path / "parquet").is_symlink()
    first_set = (first.path / "parquet").resolve()
    assert first_set.parent == pub.parquet_sets(home) and first_set.name == first.version

    # the next publish switches the DuckDB file first; while its Parquet set is written, the version
    # shows the previous set, whole; if the publish dies then, the version keeps showing it
    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 2 AS n")
    seen = {}

    def killed(database, folder, tables_, *_):
        now = home.published_current.resolve()
        seen["current"] = now.name
        seen["set"] = (now / "parquet").resolve()
        seen["mart_small"] = _parquet_rows(now / "parquet", "mart_small")
        raise KeyboardInterrupt("killed while writing the Parquet set")

    _publish_killed(home, monkeypatch, killed)
    second = home.published_current.resolve()
    assert seen["current"] == second.name != first.version  # readers already saw the new DuckDB file ...
    assert seen["set"] == first_set and seen["mart_small"] == [(1,)]  # ... and the old Parquet set, whole
    assert _published(home, "mart_small")[0] == [(2,)]
    assert (second / "parquet").resolve() == first_set  # after the kill, still the old set (consistent)
    for t in tables:
        assert _parquet_rows(second / "parquet", t) == _parquet_rows(first_set, t)

    # the next publish does not take the old set for the killed version's own: it links only what
    # equals the old set's recorded fingerprints, and writes the rest (mart_small changed since)
    third = pub.publish(home, manifest_path=_manifest(home))
    assert (third.path / "parquet").resolve().name == third.version
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    assert _inode(home, "dim_cases") == os.stat(first_set / "dim_cases.parquet").st_ino
    assert _inode(home, "mart_small") != os.stat(first_set / "mart_small.parquet").st_ino

    # a set without recorded fingerprints (written before they were) that is not the version's own:
    # nothing is taken from it
    own = (third.path / "parquet").resolve()
    (own / pub.SET_FINGERPRINTS).unlink()
    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 3 AS n")
    _publish_killed(home, monkeypatch, killed)
    pub.publish(home, manifest_path=_manifest(home))
    assert _inode(home, "dim_cases") != os.stat(own / "dim_cases.parquet").st_ino
    for t in tables:
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t

    # only the sets some kept version shows stay; staging leftovers are cleaned by the next publish
    for _ in range(pub.KEEP_VERSIONS + 1):
        pub.publish(home, manifest_path=_manifest(home))
    versions = [v for v in home.published_versions.iterdir() if not v.name.startswith(".")]
    assert len(versions) == pub.KEEP_VERSIONS
    assert {p.name for p in pub.parquet_sets(home).iterdir()} == {(v / "parquet").resolve().name for v in versions}
    pub.prune(home, keep=1)  # what a withdrawal does
    assert [p.name for p in pub.parquet_sets(home).iterdir()] == [home.published_current.resolve().name]


def _set_of(home: Home) -> str:
    return os.path.basename(os.path.realpath(home.published_current.resolve() / "parquet"))


def test_a_publish_can_leave_its_parquet_set_for_later(tmp_path):
    """The warm builder's publish: readers get the new DuckDB file at once and the previous (complete)
    Parquet set meanwhile (none on a first publish); complete_parquet writes the version's own set later, linking what equals the
    set shown, and gives up as soon as it is asked to give way; a publish after one that left its set
    links from the set shown too."""
    home = _three_tables(tmp_path)
    first = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    # a first publish has no set to show meanwhile: its link points at its own set, written later;
    # until then readers find no Parquet file (as before the first publish), never part of a set
    assert first.parquet_deferred and pub.parquet_pending(home) and _set_of(home) == first.version
    assert not (home.published_current.resolve() / "parquet").exists()
    pub.prune(home)  # keeps the set the link waits for
    assert pub.complete_parquet(home) == first.version and not pub.parquet_pending(home)
    for t in ("dim_cases", "fct_lab_results", "mart_small"):
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    inodes = {t: _inode(home, t) for t in ("dim_cases", "fct_lab_results", "mart_small")}

    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 2 AS n")
    second = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    assert second.parquet_deferred and pub.parquet_pending(home)
    assert _set_of(home) == first.version  # the older set, whole: its files, its values
    db, pq = _published(home, "mart_small")
    assert db == [(2,)] and pq == [(1,)]
    assert not list(pub.parquet_sets(home).glob(".*.tmp"))  # nothing half-written left behind

    # giving way before the first file: nothing written, nothing switched
    assert pub.complete_parquet(home, give_way=lambda: True) is None and _set_of(home) == first.version
    # a case lands while the first file is written: the next one is not started
    _warehouse(home, "CREATE OR REPLACE TABLE dim_cases AS SELECT i AS case_id, i % 9 AS age FROM range(5000) r(i)")
    third = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    asked: list[int] = []
    assert pub.complete_parquet(home, give_way=lambda: asked.append(1) or len(asked) > 1) is None
    assert len(asked) == 2 and _set_of(home) == first.version and not list(pub.parquet_sets(home).glob(".*.tmp"))
    assert pub.complete_parquet(home, give_way=lambda: False) == third.version
    assert not pub.parquet_pending(home)
    assert _set_of(home) == third.version
    for t in ("dim_cases", "fct_lab_results", "mart_small"):
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t
    assert _inode(home, "fct_lab_results") == inodes["fct_lab_results"]  # linked from the set shown before
    assert _inode(home, "mart_small") != inodes["mart_small"]
    assert pub.complete_parquet(home) is None  # its own set already

    # a deferred publish, then a normal one: it links the unchanged tables from the set shown (older)
    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 3 AS n")
    fourth = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    assert fourth.parquet_deferred and _set_of(home) == third.version
    dim_cases_before = _inode(home, "dim_cases")
    _warehouse(home, "UPDATE dim_cases SET age = age + 1 WHERE case_id = 3")
    fifth = pub.publish(home, manifest_path=_manifest(home))
    assert not fifth.parquet_deferred and _set_of(home) == fifth.version
    assert _inode(home, "fct_lab_results") == inodes["fct_lab_results"]
    assert _inode(home, "dim_cases") != dim_cases_before
    for t in ("dim_cases", "fct_lab_results", "mart_small"):
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t

    # a version restored from a backup shows its own real folder: a publish does not leave its set
    # for later (shown on from that folder, it would go when the restored version is pruned)
    import shutil

    cur = home.published_current.resolve()
    real = Path(os.path.realpath(cur / "parquet"))
    (cur / "parquet").unlink()
    shutil.copytree(real, cur / "parquet")
    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 4 AS n")
    sixth = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    assert not sixth.parquet_deferred and _set_of(home) == sixth.version
    for t in ("dim_cases", "fct_lab_results", "mart_small"):
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t


def _recorded_writers(monkeypatch) -> list[subprocess.Popen]:
    """The Parquet writer processes started from now on (publish starts them with ``subprocess.Popen``)."""
    started: list[subprocess.Popen] = []
    real = subprocess.Popen

    def popen(*args, **kwargs):
        p = real(*args, **kwargs)
        started.append(p)
        return p

    monkeypatch.setattr(pub.subprocess, "Popen", popen)
    return started


def test_the_idle_parquet_writer_stops_at_once_when_a_case_lands(tmp_path, monkeypatch):
    """The warm builder writes a version's set in a process of its own, asking every few ms whether a
    case has landed: the case no longer waits for the file being written. Stopped, the writer is
    killed and reaped, nothing half-written is left and the version shows the older set."""
    home = _three_tables(tmp_path)
    first = pub.publish(home, manifest_path=_manifest(home))
    _warehouse(home, "CREATE OR REPLACE TABLE dim_cases AS SELECT i AS case_id, i % 11 AS age FROM range(5000) r(i)")
    second = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    started = _recorded_writers(monkeypatch)
    asked: list[int] = []

    def landed() -> bool:  # a case lands once the writer has been started (it is still starting up)
        asked.append(len(started))
        return bool(started)

    assert pub.complete_parquet(home, give_way=landed) is None
    assert asked == [0, 1]  # asked before the writer started, then at once while it ran
    assert len(started) == 1 and started[0].returncode == -signal.SIGKILL  # killed, and reaped
    assert not [p for p in pub.parquet_sets(home).iterdir() if p.name.endswith(".tmp")]  # nor its spill folder
    assert _set_of(home) == first.version and pub.parquet_pending(home)
    # the next idle moment writes it whole, the same tables as the DuckDB file
    assert pub.complete_parquet(home, give_way=lambda: False) == second.version and _set_of(home) == second.version
    assert len(started) == 2 and started[1].returncode == 0
    for t in ("dim_cases", "fct_lab_results", "mart_small"):
        db, pq = _published(home, t)
        assert db == pq == _expected(home, t), t


def test_a_failing_parquet_writer_says_why_in_one_line(tmp_path, monkeypatch):
    home = _three_tables(tmp_path)
    pub.publish(home, manifest_path=_manifest(home))
    db = home.published_current.resolve() / DB_NAME
    out = tmp_path / "set"
    out.mkdir()
    started = _recorded_writers(monkeypatch)
    try:
        pub._write_parquet_set_from_snapshot(db, out, ["no_such_table"], give_way=lambda: False)
    except RuntimeError as exc:
        assert "\n" not in str(exc) and "no_such_table" in str(exc) and "Traceback" not in str(exc)
    else:
        raise AssertionError("a missing table was written")
    assert [p.returncode for p in started] == [1]


def test_a_writer_stopped_from_outside_while_the_builder_gives_way_is_no_failure(tmp_path, monkeypatch):
    """A Ctrl-C or `registry serve`'s stop can end the writer a moment before the builder asks
    whether to give way: that is the stop, not a failure to report."""
    home = _three_tables(tmp_path)
    pub.publish(home, manifest_path=_manifest(home))
    out = tmp_path / "set"
    out.mkdir()
    started = _recorded_writers(monkeypatch)
    stopping: list[int] = []

    def give_way() -> bool:
        if started and not stopping:  # the stop reaches the writer first ...
            started[0].send_signal(signal.SIGTERM)
            started[0].wait()
            stopping.append(1)
            return False
        return bool(stopping)  # ... and the builder sees it at its next question

    assert pub._write_parquet_set_from_snapshot(home.published_current.resolve() / DB_NAME, out, ["dim_cases"], give_way) is False


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_the_parquet_writer_ends_when_its_builder_is_gone(tmp_path):
    """Started by a builder that died meanwhile, it writes nothing; a builder that dies while it
    writes leaves it running for at most a moment."""
    home = _three_tables(tmp_path)
    pub.publish(home, manifest_path=_manifest(home))
    out = tmp_path / "set"
    out.mkdir()
    r = subprocess.run([sys.executable, "-m", "orchestration.warehouse.parquet_child", "--parent", str(os.getpid() + 10**6),
                        "--spill", str(tmp_path / "spill"), str(home.published_current.resolve() / DB_NAME), str(out),
                        "dim_cases"], capture_output=True, text=True)
    assert r.returncode == 2 and not list(out.iterdir()) and "gone" in r.stderr
    # a "builder" that starts a process watching it (as the writer does) and dies at once
    watched = ("import os, sys, time; from orchestration.warehouse import parquet_child as c; "
               "c._exit_when_orphaned(os.getppid(), every_s=0.05); print(os.getpid(), flush=True); time.sleep(60)")
    builder = ("import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', sys.argv[1]], stdout=subprocess.PIPE, "
               "stderr=subprocess.DEVNULL); print(p.stdout.readline().decode().strip())")
    r = subprocess.run([sys.executable, "-c", builder, watched], capture_output=True, text=True, timeout=60)
    pid = int(r.stdout.strip())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_a_backup_with_the_warehouse_copies_a_versions_own_parquet_set_only(tmp_path):
    # the warm builder's first publish leaves its version's Parquet link pointing at a set not written
    # yet: a backup with the warehouse copies the version without it (restored, it is rebuilt)
    from orchestration.services.backup import backup

    home = _three_tables(tmp_path)
    first = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    assert first.parquet_deferred
    backup(home, tmp_path / "bk", with_warehouse=True)
    copied = next((tmp_path / "bk").rglob(f"versions/{first.version}"))
    assert (copied / DB_NAME).is_file() and not (copied / "parquet").exists()
    # nor the older set a version shows until its own is written (restored, it would pass for its own)
    pub.complete_parquet(home)
    _warehouse(home, "CREATE OR REPLACE TABLE mart_small AS SELECT 2 AS n")
    second = pub.publish(home, manifest_path=_manifest(home), leave_parquet=True)
    assert second.parquet_deferred and _set_of(home) == first.version
    backup(home, tmp_path / "bk2", with_warehouse=True)
    copied = next((tmp_path / "bk2").rglob(f"versions/{second.version}"))
    assert (copied / DB_NAME).is_file() and not (copied / "parquet").exists()
    # its own set, once written, goes with it
    pub.complete_parquet(home)
    backup(home, tmp_path / "bk3", with_warehouse=True)
    copied = next((tmp_path / "bk3").rglob(f"versions/{second.version}"))
    assert (copied / "parquet" / "mart_small.parquet").is_file()
