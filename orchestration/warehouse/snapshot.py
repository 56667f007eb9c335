"""Readers' side of the one-writer rule: the published, consistent snapshot.

Each publish writes an immutable folder ``published/versions/<id>/`` (``registry.duckdb``, Parquet
files, the data dictionary) and then atomically repoints the symlink ``published/current`` at it.
(Its ``parquet`` is a link to a whole Parquet set, switched to the version's own set once that is
written, see ``publish.py``.)
Readers resolve the symlink to the real versioned path *before* connecting. DuckDB keeps one
database instance per path inside a process, so connecting through the stable ``current`` name
would hand back a stale instance; a versioned path never changes content, so it is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from orchestration.config import Home

DB_NAME = "registry.duckdb"


class NoSnapshot(RuntimeError):
    """Nothing has been published yet."""


def current_version_dir(home: Home) -> Path:
    link = home.published_current
    if not link.exists():
        raise NoSnapshot(f"nothing has been published under {home.root} yet: run `registry build` first")
    return Path(os.path.realpath(link))


def current_database(home: Home) -> Path:
    return current_version_dir(home) / DB_NAME


def connect(home: Home, *, database: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection with the current snapshot attached read-only as ``registry`` and
    selected, so tables are reachable by their bare names. The pipeline never writes this file,
    so the connection takes no lock the writer could need."""
    db = database or current_database(home)
    con = duckdb.connect(":memory:")
    con.execute(f"ATTACH '{_sql_str(str(db))}' AS registry (READ_ONLY)")
    con.execute("USE registry")
    return con


def _sql_str(s: str) -> str:
    return s.replace("'", "''")
