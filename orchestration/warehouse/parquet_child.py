"""A published version's Parquet files, written in a process of their own so that the warm builder can
stop the writing at once when a case lands.

The warm builder of ``registry serve`` writes a version's Parquet set when it is idle
(``publish.complete_parquet``). In its own process DuckDB's ``COPY … TO`` a Parquet file cannot be
stopped half-way (interrupting it left the copy waiting forever for its tasks, DuckDB 2.0.0), so a
case that landed while a file was being written waited for that file: measured at a million cases,
cases submitted one after another, each as soon as the one before was visible, waited 2.3-3.3 s
before their build started. Here the builder starts this module (``python -m``), asks every
:data:`~orchestration.warehouse.publish.GIVE_WAY_POLL_S` whether a case has landed, and kills the
process if so; the set's staging folder, with whatever was half-written, is then removed.

Only ``duckdb`` and the standard library are imported (the process starts in ~0.1 s). It reads the
version's DuckDB file read-only (published files never change) and writes into a staging folder no
reader sees (DuckDB's temporary files, if it spills, go beside it). It exits on its own once its
parent is gone (:func:`_exit_when_orphaned`), so a killed builder never leaves it writing."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import duckdb

#: the DuckDB memory of a reader of a published version (this writer, ``publish.py``'s in-process one)
MEMORY_LIMIT = "1GB"


def quote(path: Path | str) -> str:
    """A path as an SQL string literal."""
    return "'" + str(path).replace("'", "''") + "'"


def attach_snapshot(database: Path | str, **config: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the published file ``database`` attached read-only as ``snap``: how
    both this writer and ``publish.py``'s in-process one read a version (``config``: more settings)."""
    con = duckdb.connect(":memory:", config={"memory_limit": MEMORY_LIMIT, **config})
    try:
        con.execute(f"ATTACH {quote(database)} AS snap (READ_ONLY)")
    except BaseException:
        con.close()
        raise
    return con


def copy_parquet(con: duckdb.DuckDBPyConnection, table: str, folder: Path, schema: str = "snap.main") -> None:
    """One table as ``folder/<table>.parquet`` (the published layout: one file per table, zstd)."""
    con.execute(f'COPY {schema}."{table}" TO {quote(folder / (table + ".parquet"))} (FORMAT parquet, COMPRESSION zstd)')


def _exit_when_orphaned(parent: int, every_s: float = 0.2) -> None:
    """End this process once ``parent`` is no longer its parent (it died: the child was re-parented),
    checked at once and then every ``every_s``."""
    def gone() -> bool:
        if os.getppid() == parent:
            return False
        print("the builder that started this writer is gone", file=sys.stderr, flush=True)
        return True

    if gone():
        os._exit(2)

    def watch() -> None:
        while not gone():
            time.sleep(every_s)
        os._exit(2)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


USAGE = "usage: python -m orchestration.warehouse.parquet_child --parent PID --spill DIR DATABASE FOLDER TABLE..."


def main(argv: list[str] | None = None) -> int:
    """``--parent PID --spill DIR DATABASE FOLDER TABLE...``: write the tables, in the order given;
    DuckDB's temporary files, if it spills, go to ``DIR`` (the caller removes it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 7 or args[0] != "--parent" or args[2] != "--spill":
        print(USAGE, file=sys.stderr)
        return 64
    _exit_when_orphaned(int(args[1]))
    spill, database, folder, tables = args[3], args[4], Path(args[5]), args[6:]
    try:
        con = attach_snapshot(database, temp_directory=spill)
        try:
            for t in tables:
                copy_parquet(con, t, folder)
        finally:
            con.close()
    except Exception as exc:  # noqa: BLE001 - one line for the builder's log (DuckDB's messages span several)
        print(f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
