"""Rewrite the warehouse file so that no freed page still holds deleted rows.

DuckDB reuses freed blocks but does not wipe them: after a consent withdrawal deleted a case, copies
of its free text stay in the file's free pages. :func:`compact` copies every live object into a new
file (``COPY FROM DATABASE``) and swaps it in atomically, under the warehouse lock (the one writer).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from orchestration.config import Home
from orchestration.registry.fsutil import fsync_dir
from orchestration.warehouse.locks import warehouse_lock


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def compact(home: Home) -> int:
    """Rewrite ``home.warehouse``; returns the new file's size in bytes (0 when there is none)."""
    src = home.warehouse
    with warehouse_lock(home):
        if not src.exists():
            return 0
        new = src.with_name(src.name + ".compact")
        for f in (new, _wal(new)):
            f.unlink(missing_ok=True)
        # fold any write-ahead log into the old file first: a .wal left beside the swapped-in file
        # would be replayed onto a database it does not belong to
        con = duckdb.connect(str(src))
        try:
            con.execute("CHECKPOINT")
        finally:
            con.close()
        con = duckdb.connect(":memory:")
        try:
            con.execute(f"ATTACH {_q(src)} AS old (READ_ONLY)")
            con.execute(f"ATTACH {_q(new)} AS new")
            con.execute("COPY FROM DATABASE old TO new")
            con.execute("CHECKPOINT new")
            con.execute("DETACH new")
            con.execute("DETACH old")
        except BaseException:
            con.close()
            for f in (new, _wal(new)):
                f.unlink(missing_ok=True)
            raise
        con.close()
        if _wal(new).exists() or _wal(src).exists():
            raise RuntimeError("warehouse compaction left a write-ahead log behind; the warehouse was not replaced")
        with open(new, "rb") as f:
            os.fsync(f.fileno())
        os.replace(new, src)
        fsync_dir(src.parent)
        return src.stat().st_size
