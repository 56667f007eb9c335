"""Publishing a consistent snapshot for readers (the one-writer rule).

After a build, the analyst-facing tables are copied from the warehouse into a *new* folder
``published/versions/<id>/``: a DuckDB file with the same tables (checkpointed and closed, so no
``.wal`` is left beside it), one Parquet file per table (under ``parquet``, see below), and the data
dictionary (Markdown, and a ``data_dictionary`` table). The folder is complete before the symlink ``published/current`` is
switched to it with one atomic ``rename``; readers therefore see the old snapshot or the new one,
never a mix, and never touch the file the pipeline writes. Older versions are pruned, keeping a few
so that a reader in the middle of a query is not surprised.

Unchanged data is not copied again. Each table's fingerprint (row count, and the sum of a hash of
every row, with the column names and types: one scan, ~0.1 s for all tables at 100k cases) is
recorded in the version's ``snapshot.json``; a table whose fingerprint equals the current version's
is *hard-linked* from it (its Parquet file: a published version is never modified, so sharing the
inode is safe, and pruning the old version leaves the link intact), and when the unchanged and
patchable tables hold most of the rows, the new DuckDB file starts as a copy of the current one.

A changed table with a ``case_id`` column is *patched* in that copy rather than copied whole: the
rows of the cases changed since the current version (``raw.case_changes``, filled by each
successful dbt build with the cases it recomputed, numbered by build; the number the snapshot
includes is its ``changes_seq``) are deleted and the warehouse's rows of those cases inserted. The
list is only a hint: since the fingerprint's sum is additive, the patched table's fingerprint is
known from the old one and the removed and added rows, and the patch is committed only if it equals
the warehouse table's; otherwise (a full refresh, a changed model, a case the list missed) the table
is copied whole. Rows deleted by patches still take room in the copied file, so once they exceed
``REFRESH_AFTER_SHARE`` of all rows, the next publish writes a fresh file; so does a publish
after a consent withdrawal (deleted rows and dropped tables stay in a copy's free pages, and a
withdrawn patient's data must reach no published file). With one new case on
100k, this turns ~0.9 s of rewriting six tables into ~0.1 s of deletes and inserts.

The changed tables' Parquet files cannot be patched (one file per table is the documented layout),
so they are written again: at a million cases that is ~7.5 CPU seconds (most of a one-case publish;
the codec makes little difference: zstd, snappy, lz4 and none were measured within 15 %). So they are
written *after* the switch, from the new (immutable) DuckDB file, as their own set: a version's
``parquet`` is a symbolic link to a folder ``published/parquet-sets/<version>/``. A new version first
shows the previous version's set (complete and consistent, only older), and once its own set is
written whole (changed tables written, unchanged ones hard-linked from the previous set) the link is
switched to it with one atomic ``rename``. A reader of ``current/parquet`` therefore sees one whole
set, old or new, never a mix and never a half-written file; the Parquet set lags the DuckDB file by
the seconds it takes to write (``docs/operations.md``). The first publish, and a publish after a
consent withdrawal (the previous set still holds the withdrawn case), write their set before the
switch instead, beside the DuckDB work, on ``PARQUET_WORKERS`` threads; except the warm builder's
first publish, whose link points at its own set before that is written (readers find no Parquet file
for those seconds, as before any publish). A publish killed between the
two switches leaves its version showing the previous set. Sets no kept version shows are pruned with
the versions.

Each set records the fingerprints of its tables (``.fingerprints.json`` inside it), so a new set
links every table that equals the one in the set the current version *shows*, its own or an older
one. That lets the warm builder leave the set to an idle moment (``leave_parquet``): the version
shows the previous set until :func:`complete_parquet` has written its own, which stops as soon as a
new case lands (at a million cases the set of one new case took ~6 s after the switch, and the next
case waited for it). A hash collision (2^-64 per changed table) is the only way a changed table could be taken
for unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import duckdb

from orchestration.config import DBT_PROJECT_DIR, Home
from orchestration.registry import audit
from orchestration.registry.fsutil import crash_point, fsync_dir, stamp, utcnow
from orchestration.registry.withdrawals import withdrawn_case_ids
from orchestration.warehouse.parquet_child import attach_snapshot, copy_parquet, quote as _q
from orchestration.warehouse.snapshot import DB_NAME

KEEP_VERSIONS = 4
#: The manifest ``registry prepare`` writes; a build passes the one of its own dbt run.
DEFAULT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


class NothingToPublish(RuntimeError):
    """The dbt manifest marks no relation as published."""


def publish_marked(manifest: dict[str, Any]) -> list[str]:
    """The analyst-facing relations: every dbt model and seed whose config says ``meta: {publish: true}``
    (set per folder in ``dbt_project.yml``), so a new model is published by where it lives, not by
    how it is named."""
    out = []
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") not in ("model", "seed"):
            continue
        meta = {**(node.get("meta") or {}), **((node.get("config") or {}).get("meta") or {})}
        if meta.get("publish") is True:
            out.append(node.get("alias") or node["name"])
    return sorted(set(out))


@dataclass
class PublishResult:
    version: str
    path: Path
    tables: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    switched_seconds: float = 0.0  # until readers saw the new DuckDB file (its Parquet set may follow)
    parquet_deferred: bool = False  # left to complete_parquet: the version shows the previous set for now


def published_tables(con: duckdb.DuckDBPyConnection, manifest: dict[str, Any]) -> list[str]:
    """The analyst-facing tables and views present in the warehouse (views are materialised in the
    snapshot), in name order."""
    wanted = set(publish_marked(manifest))
    if not wanted:
        raise NothingToPublish("the dbt manifest marks no model as published (meta: {publish: true})")
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'main' "
        "UNION SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main' "
        "AND NOT internal ORDER BY 1"
    ).fetchall()
    names = [r[0] for r in rows]
    return [n for n in names if n in wanted]


def dictionary_rows(manifest: dict[str, Any] | None, con: duckdb.DuckDBPyConnection, tables: list[str]) -> list[tuple[str, int, str, str, str, str]]:
    """(table, position, column, type, table description, column description) for every published column."""
    docs: dict[str, tuple[str, dict[str, str]]] = {}
    for node in (manifest or {}).get("nodes", {}).values():
        if node.get("resource_type") in ("model", "seed"):
            docs[node["name"]] = (
                (node.get("description") or "").strip(),
                {c: (v.get("description") or "").strip() for c, v in node.get("columns", {}).items()},
            )
    out = []
    for t in tables:
        tdesc, cdocs = docs.get(t, ("", {}))
        cols = con.execute(
            "SELECT column_name, data_type, column_index FROM duckdb_columns() "
            "WHERE database_name = current_database() AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
            [t],
        ).fetchall()
        for name, dtype, pos in cols:
            out.append((t, pos, name, dtype, tdesc, cdocs.get(name, "")))
    return out


def render_dictionary(rows: list[tuple[str, int, str, str, str, str]], version: str) -> str:
    lines = [
        "# Calciphylaxis registry: data dictionary",
        "",
        f"Snapshot `{version}`. Generated from the dbt project's documentation at publish time.",
        "Every table below is in the published DuckDB file and as Parquet beside it (under `registry serve`, the Parquet set may be a few seconds older).",
        "Yes/no columns are tri-state: null means unknown, never no.",
        "",
    ]
    current = None
    for t, _pos, col, dtype, tdesc, cdesc in rows:
        if t != current:
            current = t
            lines += ["", f"## `{t}`", "", tdesc or "_(reference table)_", "", "| column | type | description |", "|---|---|---|"]
        lines.append(f"| `{col}` | {dtype} | {cdesc.replace('|', '/').replace(chr(10), ' ')} |")
    return "\n".join(lines) + "\n"


def _columns(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, str]:
    """Each table's "name type, ..." in column order (one catalog query for all of them)."""
    rows = con.execute(
        "SELECT table_name, string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_index) FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = 'main' AND table_name IN (SELECT unnest(?::VARCHAR[])) "
        "GROUP BY table_name",
        [tables],
    ).fetchall()
    return dict(rows)


def _fingerprints(con: duckdb.DuckDBPyConnection, tables: list[str]) -> dict[str, list[Any]]:
    """Per table, [row count, sum of the rows' hashes, columns and types], all in one query: equal
    fingerprints mean equal contents (up to a 64-bit hash collision), in any row order. The sum is
    additive: removing and adding rows changes it by their own hashes, which is how a patched table
    is verified."""
    if not tables:
        return {}
    cols = _columns(con, tables)
    sql = " UNION ALL ".join(
        f"SELECT {i} AS k, count(*) AS n, coalesce(sum(hash(t)::HUGEINT), 0)::VARCHAR AS h FROM main.\"{t}\" AS t"
        for i, t in enumerate(tables)
    )
    rows = {k: (int(n), h) for k, n, h in con.execute(sql).fetchall()}
    return {t: [rows[i][0], rows[i][1], cols.get(t, "")] for i, t in enumerate(tables)}


def _previous(home: Home) -> tuple[Path | None, dict[str, Any]]:
    """The current version's folder and its ``snapshot.json`` (none before the first publish)."""
    try:
        prev = Path(os.path.realpath(home.published_current)) if home.published_current.exists() else None
        if prev is None or not (prev / DB_NAME).exists():
            return None, {}
        return prev, json.loads((prev / "snapshot.json").read_text())
    except (OSError, ValueError):
        return None, {}


def published_watermark(home: Home) -> int | None:
    """The last ``raw.case_changes`` sequence number the current snapshot includes (None: unknown)."""
    w = _previous(home)[1].get("changes_seq")
    return w if isinstance(w, int) else None


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy is still correct
        shutil.copyfile(src, dst)


def parquet_sets(home: Home) -> Path:
    """Where the Parquet sets live (``published/parquet-sets/<version>/<table>.parquet``); each
    version's ``parquet`` is a symbolic link to one of them."""
    return home.published / "parquet-sets"


def _parquet_set(version_dir: Path | None) -> tuple[Path | None, bool]:
    """The Parquet set a version's ``parquet`` shows (None: none, or a dangling link), and whether
    it is that version's own (False: the link still shows an older set, because the publish that
    wrote the version was killed before its own set was switched in). A version published before
    Parquet sets existed (or restored from a backup) has a real folder: its own."""
    if version_dir is None:
        return None, False
    link = version_dir / "parquet"
    if not link.is_dir():
        return None, False
    if not link.is_symlink():
        return link, True
    target = Path(os.path.realpath(link))
    return target, target.name == version_dir.name


SET_FINGERPRINTS = ".fingerprints.json"


def _set_fingerprints(parquet_set: Path | None, own_fps: dict[str, Any] | None) -> dict[str, Any]:
    """The fingerprints of the tables in ``parquet_set``: recorded in the set, else (a set written
    before they were recorded) its version's own ``own_fps`` when the set is that version's."""
    if parquet_set is None:
        return {}
    try:
        return json.loads((parquet_set / SET_FINGERPRINTS).read_text())
    except (OSError, ValueError):
        return own_fps or {}


def _stage_set(staging: Path, tables: list[str], fps: dict[str, Any], shown: Path | None,
               shown_own_fps: dict[str, Any] | None) -> list[str]:
    """Begin a version's Parquet set in ``staging``: the files of the set ``shown`` (its own or an
    older one) whose table has the same fingerprint are hard-linked; returns the tables still to
    write, largest first. ``shown_own_fps``: see :func:`_set_fingerprints`."""
    staging.mkdir(parents=True)
    shown_fps = _set_fingerprints(shown, shown_own_fps)
    linkable = set() if shown is None else {
        t for t in tables if shown_fps.get(t) == fps[t] and (shown / f"{t}.parquet").exists()}
    for t in linkable:
        _link_or_copy(shown / f"{t}.parquet", staging / f"{t}.parquet")  # type: ignore[operator]
    return _by_size([t for t in tables if t not in linkable], fps)


def _seal_set(staging: Path, final: Path, fps: dict[str, Any], tables: list[str]) -> None:
    """Record the set's fingerprints and rename it into place."""
    (staging / SET_FINGERPRINTS).write_text(json.dumps({t: fps[t] for t in tables}))
    os.rename(staging, final)
    fsync_dir(final.parent)


def _point_parquet_at(link: Path, target: Path) -> None:
    """Make ``link`` (a version's ``parquet``) a relative symbolic link to ``target``, atomically."""
    tmp = link.with_name(f".parquet.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(os.path.relpath(os.path.realpath(target), os.path.realpath(link.parent)), tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def clean_stale_staging(home: Home) -> int:
    """Remove what a killed publish left: staging folders and the temporary ``current`` link. Call
    it holding the warehouse lock (publishes are serialised by it, so none of these is live)."""
    removed = 0
    for stale in [*home.published_versions.glob(".*.tmp"), *parquet_sets(home).glob(".*.tmp")]:
        shutil.rmtree(stale, ignore_errors=True)
        removed += 1
    for link in home.published_versions.glob("*/.parquet.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
            removed += 1
    for link in home.published.glob(".current.*"):
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
            removed += 1
    return removed


def raw_tables_exist(con: duckdb.DuckDBPyConnection, *names: str) -> bool:
    """Whether the warehouse ``con`` is connected to has every one of these tables in ``raw`` (an
    older or a new warehouse may lack some)."""
    n = con.execute(
        "SELECT count(DISTINCT table_name) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'raw' AND table_name IN (SELECT unnest(?::VARCHAR[]))",
        [list(names)],
    ).fetchone()[0]
    return n == len(set(names))


def newest_change(con: duckdb.DuckDBPyConnection, published: int | None) -> int:
    """The number of the newest build that changed cases: the highest in ``raw.case_changes``, and
    never behind ``published``, the number the current snapshot includes (``published_watermark``):
    the list is emptied of what a snapshot includes, and is empty after a build that changed
    nothing. Numbers only grow: ``clear_pending`` numbers the next changes after this one, and
    ``orchestration/warehouse/tested.py`` relies on that."""
    listed = con.execute("SELECT max(seq) FROM raw.case_changes").fetchone()[0]
    return max(int(listed or 0), int(published or 0))


def last_test_run(con: duckdb.DuckDBPyConnection) -> tuple[bool, int, str] | None:
    """The newest data test run on record (``raw.data_test_runs``): whether it passed, the newest
    build it covered, its fingerprint; None without one. Beside :func:`newest_change`, for
    ``tested.py`` and ``ingest.clear_pending`` (which ``tested.py`` imports)."""
    row = con.execute("SELECT passed, seq, fingerprint FROM raw.data_test_runs ORDER BY run DESC LIMIT 1").fetchone()
    return None if row is None else (bool(row[0]), int(row[1]), row[2])


def _changed_cases(con: duckdb.DuckDBPyConnection, since: int | None) -> tuple[int | None, int]:
    """Load the cases changed after sequence number ``since`` into the temporary table
    ``_changed``; returns (the newest sequence number, how many cases), or (None, 0) when the
    warehouse keeps no such list."""
    if not raw_tables_exist(con, "case_changes"):
        return None, 0
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _changed AS SELECT DISTINCT case_id FROM raw.case_changes WHERE seq > ?",
        [since if since is not None else -1],
    )
    n = con.execute("SELECT count(*) FROM temp.main._changed").fetchone()[0]
    return newest_change(con, since), int(n)


def _erases_a_case(con: duckdb.DuckDBPyConnection, home: Home, n_changed: int) -> bool:
    """Whether a changed case was withdrawn. Then the new file is written fresh: rows deleted from a
    copy, and tables dropped from it, still sit in its free pages, and a withdrawn patient's data
    must not reach any published file (the withdrawal then prunes every older version)."""
    gone = sorted({c.lower() for c in withdrawn_case_ids(home)})
    if not gone or not n_changed:
        return False
    return bool(con.execute(
        "SELECT count(*) FROM temp.main._changed WHERE lower(case_id) IN (SELECT unnest(?::VARCHAR[]))", [gone]
    ).fetchone()[0])


def _patch(con: duckdb.DuckDBPyConnection, table: str, old: list[Any], new: list[Any]) -> int | None:
    """Turn ``pub.main.<table>`` (a copy of the previous version's) into the warehouse's table by
    replacing the rows of the changed cases only. Committed only if the result's fingerprint,
    computed from the old one and the removed and added rows, equals the warehouse table's;
    returns the number of rows removed, or None (rolled back) when it does not."""
    q = f'"{table}"'
    where = "WHERE case_id IN (SELECT case_id FROM temp.main._changed)"
    con.execute("BEGIN")
    try:
        rn, rh = con.execute(f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM pub.main.{q} AS t {where}").fetchone()
        an, ah = con.execute(f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM main.{q} AS t {where}").fetchone()
        if old[0] - rn + an != new[0] or int(old[1]) - int(rh) + int(ah) != int(new[1]):
            con.execute("ROLLBACK")
            return None
        if rn:
            con.execute(f"DELETE FROM pub.main.{q} {where}")
        if an:
            con.execute(f"INSERT INTO pub.main.{q} BY NAME SELECT * FROM main.{q} {where}")
        con.execute("COMMIT")
        return int(rn)
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise


#: Patch a changed per-case table (instead of copying it whole) when the changed cases are at most
#: this share of its rows; start a fresh file once the rows removed by patches since the last fresh
#: file exceed this share of all published rows (deleted rows still take space in the copied file).
PATCH_MAX_SHARE = 0.05
REFRESH_AFTER_SHARE = 0.10


#: Parquet files are written by this many threads, beside the DuckDB work of the main thread; a
#: table of fewer than 122,880 rows is one row group, which DuckDB encodes on one thread.
PARQUET_WORKERS = 2


#: How often the warm builder's idle Parquet writing asks whether a case has landed; its writer
#: process is then stopped at once (``parquet_child.py``).
GIVE_WAY_POLL_S = 0.02


def _write_parquet(con: duckdb.DuckDBPyConnection, table: str, folder: Path, schema: str = "main") -> None:
    cur = con.cursor()  # its own connection to the same database instance
    try:
        copy_parquet(cur, table, folder, schema)
    finally:
        cur.close()


def _by_size(tables: list[str], fps: dict[str, list[Any]]) -> list[str]:
    """Largest first, cells as the measure of work, so that the writer threads end together."""
    return sorted(tables, key=lambda t: -fps[t][0] * (fps[t][2].count(",") + 1))  # rows × columns


def _write_parquet_set_from_snapshot(database: Path, folder: Path, tables: list[str],
                                     give_way: Callable[[], bool] | None = None) -> bool:
    """Write ``tables`` of a published DuckDB file (immutable, opened read-only) as Parquet into
    ``folder``, on ``PARQUET_WORKERS`` threads; with ``give_way``, in the given order by a process of
    its own (:func:`_write_in_child`), stopped as soon as ``give_way()`` is true: then returns False
    (some not written, or half-written: the caller removes ``folder``)."""
    if give_way is not None:
        return _write_in_child(database, folder, tables, give_way)
    con = attach_snapshot(database)
    try:
        with ThreadPoolExecutor(max_workers=PARQUET_WORKERS) as writer:
            for f in [writer.submit(_write_parquet, con, t, folder, "snap.main") for t in tables]:
                f.result()
        return True
    finally:
        con.close()


#: the directory holding the ``orchestration`` package: the writer process imports this very code,
#: whatever the caller's current directory or import path
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _write_in_child(database: Path, folder: Path, tables: list[str], give_way: Callable[[], bool]) -> bool:
    """``tables`` written by ``python -m orchestration.warehouse.parquet_child``; ``give_way()`` is
    asked before it starts and every :data:`GIVE_WAY_POLL_S` while it runs, and the process is killed
    as soon as it is true (returns False). Before, a case that landed during a file waited for it:
    ~1-2 s at a million cases. The writer runs in a session of its own (a Ctrl-C or a signal to the
    builder's process group does not reach it: the builder stops it) and spills, if it must, into
    ``<folder>.spill.tmp`` beside ``folder`` (removed here; a killed builder's is removed with the
    other staging folders). A failure of the writer raises its one-line reason."""
    if give_way():
        return False
    spill = folder.with_name(folder.name.removesuffix(".tmp") + ".spill.tmp")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if x))
    try:
        with tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(
                # -P: the current directory is not put before the package root on the import path
                [sys.executable, "-P", "-m", "orchestration.warehouse.parquet_child", "--parent", str(os.getpid()),
                 "--spill", os.path.abspath(spill), os.path.abspath(database), os.path.abspath(folder), *tables],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
            try:
                while proc.poll() is None:
                    if give_way():
                        return False
                    time.sleep(GIVE_WAY_POLL_S)
            finally:
                if proc.poll() is None:  # given way, or interrupted: never leave it writing
                    proc.kill()
                    proc.wait()
            if proc.returncode != 0:
                if give_way():  # it was stopped from outside while the builder was giving way anyway
                    return False
                err.seek(0)
                lines = err.read().decode("utf-8", "replace").strip().splitlines()
                rc = proc.returncode
                why = lines[-1] if lines else (f"killed by signal {-rc}" if rc < 0 else f"exit status {rc}")
                raise RuntimeError(f"writing the Parquet files failed: {why}")
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return True


def publish(home: Home, *, manifest_path: Path | None = None, leave_parquet: bool = False) -> PublishResult:
    """Publish the warehouse's analyst-facing tables as a new version and switch readers to it.
    ``leave_parquet`` (the warm builder): the version's own Parquet set, due after the switch, is left
    to :func:`complete_parquet` (a publish after a withdrawal still writes it before; a first publish
    leaves it too, with no set to show meanwhile)."""
    t0 = time.perf_counter()
    home.ensure()
    clean_stale_staging(home)
    version = stamp()
    staging = home.published_versions / f".{version}.tmp"
    final = home.published_versions / version
    staging.mkdir(parents=True)
    manifest_path = manifest_path if manifest_path and manifest_path.exists() else DEFAULT_MANIFEST
    manifest = json.loads(manifest_path.read_text())
    prev_dir, prev_meta = _previous(home)
    prev_fps: dict[str, Any] = prev_meta.get("fingerprints", {})
    # the current file is copied while the tables are fingerprinted (a second at a million cases);
    # the copy is dropped if the new file is to be written fresh
    copier = ThreadPoolExecutor(max_workers=1)
    spare = staging / f".previous.{DB_NAME}"
    copied = copier.submit(shutil.copyfile, prev_dir / DB_NAME, spare) if prev_dir is not None else None
    copier.shutdown(wait=False)
    try:
        return _publish(home, version, staging, final, manifest, prev_dir, prev_meta, prev_fps, copied, spare, t0, leave_parquet)
    finally:
        if copied is not None:
            copied.exception()  # never leave the copy running, whatever happened
            spare.unlink(missing_ok=True)


def _publish(home: Home, version: str, staging: Path, final: Path, manifest: dict[str, Any], prev_dir: Path | None,
             prev_meta: dict[str, Any], prev_fps: dict[str, Any], copied: Any, spare: Path, t0: float,
             leave_parquet: bool) -> PublishResult:
    target = staging / DB_NAME
    sets = parquet_sets(home)
    sets.mkdir(parents=True, exist_ok=True)
    set_staging = sets / f".{version}.tmp"
    set_final = sets / version
    prev_set, prev_set_own = _parquet_set(prev_dir)
    con = duckdb.connect(str(home.warehouse), read_only=True, config={"memory_limit": "1GB"})
    counts: dict[str, int] = {}
    fps: dict[str, list[Any]] = {}
    reused: list[str] = []
    patched: list[str] = []
    patched_rows = 0
    try:
        tables = published_tables(con, manifest)
        fps = _fingerprints(con, tables)
        counts = {t: fps[t][0] for t in tables}
        unchanged = {t for t in tables if prev_dir is not None and prev_fps.get(t) == fps[t]}
        changed = [t for t in tables if t not in unchanged]
        prev_seq = prev_meta.get("changes_seq") if isinstance(prev_meta.get("changes_seq"), int) else None
        seq, n_changed = _changed_cases(con, prev_seq)
        erases = _erases_a_case(con, home, n_changed)
        # tables that can be patched: same columns as before, a case_id column, few changed cases
        patchable = {
            t for t in changed
            if prev_seq is not None and prev_dir is not None and t in prev_fps and prev_fps[t][2] == fps[t][2]
            and ", case_id " in ", " + fps[t][2] and n_changed <= PATCH_MAX_SHARE * max(prev_fps[t][0], 1)
        }
        total_rows = sum(counts.values()) or 1
        since_fresh = int(prev_meta.get("patched_rows_since_fresh", 0)) if prev_dir is not None else 0
        start_from_previous = (
            prev_dir is not None
            and not erases
            and sum(counts[t] for t in unchanged | patchable) * 2 >= total_rows
            and since_fresh <= REFRESH_AFTER_SHARE * total_rows
        )
        if not start_from_previous:
            patchable = set()
            since_fresh = 0
            if copied is not None:  # not wanted: never let it reach the published folder
                copied.exception()
                spare.unlink(missing_ok=True)
        # The Parquet set is written after the switch (from the new DuckDB file), while readers
        # already see the new snapshot, when there is a previous set to show meanwhile; otherwise
        # (the first publish, or a withdrawal: the previous set holds the withdrawn case) it is written
        # now, beside the DuckDB work, and switched with the snapshot.
        # (A set shown from a version's own folder, restored from a backup or older than Parquet sets,
        # is not shown on: it goes with its version when that is pruned.)
        # Left for later by the warm builder (``leave_parquet``) also when there is no set to show
        # meanwhile (the home's first publish, or one after a version whose set was never written):
        # the version's ``parquet`` then points at its own set before that exists, so readers find
        # no Parquet file for those seconds, as before the first publish, and then the whole set
        # (renamed into place at once). Measured (issue 16, the 100k cohort submitted to ``registry
        # serve`` on a new home): publish step 1.2-1.4 -> 1.1 s, every case visible 10.1-10.7 -> 9.7-10.0 s.
        parquet_later = (prev_set is not None and not erases and prev_set.parent == Path(os.path.realpath(sets))) or (
            leave_parquet and prev_set is None)
        writer = ThreadPoolExecutor(max_workers=PARQUET_WORKERS)
        parquet_done = []
        if not parquet_later:  # (after the switch, complete_parquet stages the set the same way)
            to_write = _stage_set(set_staging, tables, fps, prev_set, prev_fps if prev_set_own else None)
            parquet_done = [writer.submit(_write_parquet, con, t, set_staging) for t in to_write]
        try:
            reused.extend(sorted(unchanged))
            if start_from_previous:
                copied.result()
                os.rename(spare, target)
            con.execute(f"ATTACH {_q(target)} AS pub (READ_WRITE)")
            if start_from_previous:
                keep = unchanged | patchable
                for (name,) in con.execute(
                    "SELECT table_name FROM duckdb_tables() WHERE database_name = 'pub' AND schema_name = 'main'"
                ).fetchall():
                    if name not in keep:
                        con.execute(f'DROP TABLE pub.main."{name}"')
            for t in tables:
                if start_from_previous and t in unchanged:
                    continue
                if t in patchable:
                    removed = _patch(con, t, prev_fps[t], fps[t])
                    if removed is not None:
                        patched.append(t)
                        patched_rows += removed
                        continue
                    con.execute(f'DROP TABLE pub.main."{t}"')
                con.execute(f'CREATE TABLE pub.main."{t}" AS FROM main."{t}"')
            rows = dictionary_rows(manifest, con, tables)
            con.execute(
                "CREATE TABLE pub.main.data_dictionary (table_name VARCHAR, column_position INTEGER, column_name VARCHAR, "
                "data_type VARCHAR, table_description VARCHAR, column_description VARCHAR)"
            )
            if rows:
                con.execute(
                    "INSERT INTO pub.main.data_dictionary SELECT * FROM (VALUES "
                    + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows)) + ")",
                    [v for r in rows for v in r],
                )
            con.execute("CHECKPOINT pub")
            con.execute("DETACH pub")
        finally:
            writer.shutdown(wait=True)
        for f in parquet_done:
            f.result()  # an error writing a Parquet file stops the publish here
    finally:
        con.close()
    if (staging / (DB_NAME + ".wal")).exists():  # a leftover WAL would make the file unopenable elsewhere
        raise RuntimeError("publish: the snapshot still has a write-ahead log after checkpoint; not switching")
    if parquet_later:  # the previous set meanwhile; without one, the version's own set, written next
        _point_parquet_at(staging / "parquet", prev_set if prev_set is not None else set_final)
    else:
        _point_parquet_at(staging / "parquet", set_final)  # first the link, so that prune() keeps the set
        _seal_set(set_staging, set_final, fps, tables)
    (staging / "data_dictionary.md").write_text(render_dictionary(rows, version), encoding="utf-8")
    meta: dict[str, Any] = {
        "version": version, "published_at": utcnow().isoformat(), "tables": counts, "reused": sorted(reused),
        "patched": sorted(patched), "patched_rows_since_fresh": since_fresh + patched_rows, "fingerprints": fps,
    }
    if seq is not None:
        meta["changes_seq"] = seq
    (staging / "snapshot.json").write_text(json.dumps(meta, indent=2))
    crash_point("publish.after_staging")
    os.rename(staging, final)
    fsync_dir(home.published_versions)
    tmp_link = home.published / f".current.{version}"
    os.symlink(Path("versions") / version, tmp_link)
    os.replace(tmp_link, home.published_current)  # the atomic switch
    fsync_dir(home.published)
    switched = time.perf_counter() - t0
    deferred = parquet_later and leave_parquet
    if parquet_later and not deferred:
        crash_point("publish.before_parquet")
        _complete_parquet(home, None)  # the version's own set (what equals the shown set is linked), then its switch
    prune(home)
    audit.event(home, "publish", version=version, tables=counts, **({"parquet": "deferred"} if deferred else {}))
    return PublishResult(version, final, counts, time.perf_counter() - t0, round(switched, 3), parquet_deferred=deferred)


def shows_own_parquet(version_dir: Path) -> bool:
    """Whether a version's ``parquet`` shows its own set (not an older one, nor one not written yet)."""
    return _parquet_set(version_dir)[1]


def parquet_shown(home: Home) -> bool:
    """Whether the current version shows a Parquet set at all (not yet: a new home's first versions
    under the warm builder, until its first idle moment)."""
    cur, _ = _previous(home)
    return cur is not None and _parquet_set(cur)[0] is not None


def parquet_pending(home: Home) -> bool:
    """Whether the current version still shows an older Parquet set than its own (or none yet)."""
    cur, _ = _previous(home)
    return cur is not None and not shows_own_parquet(cur)


def complete_parquet(home: Home, *, give_way: Callable[[], bool] | None = None) -> str | None:
    """Write the current version's own Parquet set when it still shows an older one (its publish gave
    way to a newer case, or was killed between its two switches), and switch its ``parquet`` to it.
    Tables equal to the shown set's are linked; the others are written from the version's (immutable)
    DuckDB file on ``PARQUET_WORKERS`` threads; with ``give_way`` (the warm builder, when idle) one at a
    time, largest first, by a process of its own that is stopped as soon as ``give_way`` is true
    (``parquet_child.py``; it is asked every :data:`GIVE_WAY_POLL_S`): the version then keeps showing
    the older set. Returns the version completed, else None. Call it holding the warehouse lock
    (publishes are serialised by it; each cleans the other's staging)."""
    done = _complete_parquet(home, give_way)
    if done is not None:
        prune(home)  # the set the version showed until now may be shown by none
    return done


def _complete_parquet(home: Home, give_way: Callable[[], bool] | None) -> str | None:
    cur, meta = _previous(home)
    if cur is None:
        return None
    shown, own = _parquet_set(cur)
    fps: dict[str, Any] = meta.get("fingerprints") or {}
    tables = sorted(t for t in (meta.get("tables") or {}) if t in fps)
    if own or not tables:
        return None
    sets = parquet_sets(home)
    staging, final = sets / f".{cur.name}.tmp", sets / cur.name
    shutil.rmtree(staging, ignore_errors=True)
    if not final.exists():
        to_write = _stage_set(staging, tables, fps, shown, None)
        if not _write_parquet_set_from_snapshot(cur / DB_NAME, staging, to_write, give_way):
            shutil.rmtree(staging, ignore_errors=True)
            return None
        _seal_set(staging, final, fps, tables)
    _point_parquet_at(cur / "parquet", final)
    return cur.name


def prune(home: Home, keep: int = KEEP_VERSIONS) -> int:
    """Delete published versions but the newest ``keep`` (never the current one), the Parquet sets
    no remaining version shows, and staging folders abandoned for an hour (a publish in progress
    keeps its own). Returns how many versions went."""
    current = os.path.realpath(home.published_current)
    versions = sorted(p for p in home.published_versions.iterdir() if p.is_dir() and not p.name.startswith("."))
    removed = 0
    for old in versions[: max(len(versions) - keep, 0)]:
        if os.path.realpath(old) != current:
            shutil.rmtree(old, ignore_errors=True)
            removed += 1
    sets = parquet_sets(home)
    if sets.is_dir():
        # a set is kept while a version (or a staging one) shows it, or while its own version exists
        # (between its rename and the switch of its version's link)
        entries = list(home.published_versions.iterdir())
        shown = {os.path.realpath(v / "parquet") for v in entries} | {
            os.path.realpath(sets / v.name) for v in entries if not v.name.startswith(".")}
        for s in sets.iterdir():
            if not s.name.startswith(".") and os.path.realpath(s) not in shown:
                shutil.rmtree(s, ignore_errors=True)
    for stale in [*home.published_versions.glob(".*.tmp"), *sets.glob(".*.tmp")]:
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    return removed
