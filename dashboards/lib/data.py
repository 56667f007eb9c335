"""Snapshot access for the dashboards: which snapshot is current, a connection to it, cached results.

Reading safely (the one-writer rule): the dashboards never open the pipeline's warehouse. On every
rerun :func:`current_snapshot` resolves ``published/current`` to the immutable versioned folder it
points at (one ``readlink``); the connection is cached per *versioned* database path (DuckDB keeps
one database instance per path and process, so connecting through the stable ``current`` name would
keep serving the first version ever opened). When a build publishes a new version the next rerun
resolves to it and opens a new connection: no restart. Query results are cached per versioned path
and cohort filter, so they can never mix two versions.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import duckdb
import streamlit as st

from orchestration.config import Home
from orchestration.warehouse import snapshot


@dataclass(frozen=True)
class Snapshot:
    version: str
    database: str  # the versioned path, never .../current
    published_at: str | None


def home() -> Home:
    return Home.from_env()


@lru_cache(maxsize=16)
def _snapshot_meta(version_dir: str) -> tuple[str, str | None]:
    meta = Path(version_dir) / "snapshot.json"
    try:
        d = json.loads(meta.read_text())
        return d.get("version") or Path(version_dir).name, d.get("published_at")
    except (OSError, ValueError):
        return Path(version_dir).name, None


def current_snapshot() -> Snapshot | None:
    """The snapshot ``published/current`` points at now, or ``None`` if nothing is published."""
    try:
        vdir = snapshot.current_version_dir(home())
    except snapshot.NoSnapshot:
        return None
    db = vdir / snapshot.DB_NAME
    if not db.is_file():
        return None
    version, published_at = _snapshot_meta(str(vdir))
    return Snapshot(version=version, database=str(db), published_at=published_at)


def _close(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.close()
    except duckdb.Error:
        pass


_cursor_lock = threading.Lock()


@st.cache_resource(on_release=_close, max_entries=4, show_spinner=False)
def _connection(database: str) -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per published version, with that version attached read-only."""
    con = snapshot.connect(home(), database=Path(database))
    con.execute("SET enable_progress_bar = false")
    return con


def cursor(snap: Snapshot) -> duckdb.DuckDBPyConnection:
    """A cursor of the version's connection for this thread (DuckDB connections are not shared
    between threads), with the snapshot selected."""
    with _cursor_lock:
        cur = _connection(snap.database).cursor()
    cur.execute("USE registry")
    return cur


@st.cache_data(max_entries=256, show_spinner=False, ttl=6 * 3600)
def _cached(module: str, name: str, database: str, args: tuple, kwargs: tuple) -> Any:
    fn = getattr(importlib.import_module(module), name)
    cur = cursor(Snapshot(version="", database=database, published_at=None))
    try:
        return fn(cur, *args, **dict(kwargs))
    finally:
        cur.close()


def run(snap: Snapshot, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(con, *args, **kwargs)``, a query function of :mod:`dashboards.queries` (any module), cached
    per snapshot version, function (keyed explicitly by its module and name) and arguments. Never
    mutate what it returns (it is shared by every session)."""
    if "<" in fn.__qualname__:
        raise ValueError(f"{fn.__qualname__}: only module-level query functions can be cached")
    return _cached(fn.__module__, fn.__qualname__, snap.database, tuple(args), tuple(sorted(kwargs.items())))


def uncached(snap: Snapshot, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(con, ...)`` on a fresh cursor, not cached (for downloads generated on click)."""
    cur = cursor(snap)
    try:
        return fn(cur, *args, **kwargs)
    finally:
        cur.close()
