"""Dagster's SQLite storages for a registry home, without an fsync per event.

Dagster's SQLite storages (``ConsolidatedSqliteEventLogStorage``, ``SqliteRunStorage``) create a
new SQLAlchemy engine with ``NullPool`` for every read and write: each write is a new SQLite
connection that commits with ``synchronous=FULL`` (an fsync of the write-ahead log) and then closes
as the last connection to the file, which checkpoints the log into the database (more fsyncs).
Measured (issue 16, a one-case build at 100k, 142 events): 356 commits and 405 closes cost ~4 s
of a 17 s ``registry build`` on this machine's disk.

These subclasses keep one engine per storage object, with SQLAlchemy's default pool for SQLite
files (``QueuePool``: connections are reused, so closing a session does not checkpoint), and set
``PRAGMA synchronous=NORMAL`` on each connection. In WAL mode (which Dagster sets on these files)
SQLite documents that a commit with ``synchronous=NORMAL`` is durable across a crash or kill of
the process (the log is in the operating system's cache) and the database always stays
consistent; only a power loss or operating-system crash may roll back the last transactions of
the run history. The registry's own commit points (the audit log, the landing zone, the published
snapshot) do not live here and keep their fsyncs.

The files, their schemas and their locations are Dagster's: a home written by either class is read
by the other, and ``dagster.yaml`` (``services/build.py``) names these classes with Dagster's
documented ``module``/``class``/``config`` form, so the webserver and the daemon use them too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS


def _synchronous_normal(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    try:
        cur.execute("PRAGMA synchronous=NORMAL")
    finally:
        cur.close()


def _engine(conn_string: str, connect_args: dict[str, Any] | None = None) -> db.engine.Engine:
    # SQLAlchemy's default pool for a SQLite file (QueuePool; check_same_thread off): thread-safe
    engine = db.create_engine(conn_string, connect_args=connect_args or {})
    db.event.listen(engine, "connect", _synchronous_normal)
    return engine


class _Engines:
    """One engine per storage object and process, made on first use (never at import)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: db.engine.Engine | None = None
        self._pid: int | None = None

    def get(self, conn_string: str, connect_args: dict[str, Any] | None = None) -> db.engine.Engine:
        with self._lock:
            if self._engine is not None and self._pid != os.getpid():
                self._engine.dispose(close=False)  # a forked child: never close the parent's connections
                self._engine = None
            if self._engine is None:
                self._engine = _engine(conn_string, connect_args)
                self._pid = os.getpid()
            return self._engine

    def dispose(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


class RegistryEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """Dagster's consolidated SQLite event log (one file for all runs), with pooled connections."""

    def __init__(self, base_dir, inst_data=None):  # noqa: ANN001 - Dagster's signature
        self._engines = _Engines()
        self._tables: frozenset[str] = frozenset()
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self) -> Iterator[db.engine.Connection]:
        engine = self._engines.get(self._conn_string, {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        with engine.connect() as conn:
            with conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # asked before every asset event's tags are stored (37 times in a one-case build); a table,
        # once there, stays: the yeses are remembered
        if table_name in self._tables:
            return True
        engine = self._engines.get(self._conn_string, {"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
        with engine.connect() as conn:
            found = bool(engine.dialect.has_table(conn, table_name))
        if found:
            self._tables = self._tables | {table_name}
        return found

    def dispose(self) -> None:
        super().dispose()
        self._engines.dispose()


class RegistryRunStorage(SqliteRunStorage):
    """Dagster's SQLite run storage, with pooled connections."""

    def __init__(self, conn_string, inst_data=None):  # noqa: ANN001 - Dagster's signature
        self._engines = _Engines()
        super().__init__(conn_string, inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # noqa: ANN001 - Dagster's signature
        return cls.from_local(inst_data=inst_data, **config_value)

    @contextmanager
    def connect(self) -> Iterator[db.engine.Connection]:
        with self._engines.get(self._conn_string).connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        super().dispose()
        self._engines.dispose()
