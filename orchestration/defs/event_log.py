"""Dagster's consolidated SQLite event log, with one engine per process and ``synchronous=NORMAL``.

Measured (issue 16, fourth session): Dagster's :class:`ConsolidatedSqliteEventLogStorage` creates a
new SQLAlchemy engine and a new SQLite connection for every write, and SQLite in WAL mode with its
default ``synchronous=FULL`` syncs the file at every commit. One event cost 8.6-9.0 ms on this
machine; a one-case build writes ~140 events, ~40 of them (the planned materializations and the dbt
models' materializations) between the moment a case lands and the moment the snapshot is switched.
With one engine per process (SQLAlchemy's pool: connections reused) and ``synchronous=NORMAL``, the
same event costs 1.1-1.4 ms.

``synchronous=NORMAL`` in WAL mode is SQLite's documented setting for this: the database can never
be corrupted, and a commit is lost only if the *machine* loses power or crashes before the next
checkpoint -- never when a process dies. What could be lost is the tail of Dagster's run history;
the registry's own record of every build is the audit log (``orchestration/registry/audit.py``),
which is synced at every line. The storage is named in each home's ``dagster.yaml``
(``orchestration/services/build.py``), so the daemon, the web server, ``registry build`` and the warm
builder all use it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import sqlalchemy as db
from dagster._core.storage.event_log.sqlite.consolidated_sqlite_event_log import (
    ConsolidatedSqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS


def _tune(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class RegistryEventLogStorage(ConsolidatedSqliteEventLogStorage):
    """:class:`ConsolidatedSqliteEventLogStorage` with a pooled engine per process (see the module)."""

    _engine: Any = None
    _engine_pid: int | None = None
    _tables: frozenset[str] = frozenset()

    def _pooled_engine(self) -> Any:
        if self._engine is None or self._engine_pid != os.getpid():
            if self._engine is not None:
                self._engine.dispose(close=False)  # a forked child: never close the parent's connections
            engine = db.create_engine(self._conn_string, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            db.event.listen(engine, "connect", _tune)
            self._engine, self._engine_pid = engine, os.getpid()
        return self._engine

    def has_table(self, table_name: str) -> bool:
        # asked before every asset event's tags are stored (37 times in a one-case build, each with a
        # new engine in the parent class); a table, once there, stays: remember the yeses
        if table_name in self._tables:
            return True
        with self._pooled_engine().connect() as conn:
            found = bool(conn.dialect.has_table(conn, table_name))
        if found:
            self._tables = self._tables | {table_name}
        return found

    @contextmanager
    def _connect(self) -> Iterator[Any]:
        with self._pooled_engine().connect() as conn:
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        if self._engine is not None and self._engine_pid == os.getpid():
            self._engine.dispose()
        self._engine = None
        super().dispose()
