"""Which cases the data tests of a build must look at (issue 16).

dbt's data tests of an ordinary build need not read a million cases again: a per-case table's rows
of cases no build has changed since the last passing test run passed then, and nothing has touched
them since. So a passing run is recorded in ``raw.data_tests_passed`` with the number of the newest
build whose changes it covered (``raw.case_changes.seq``, see :func:`.ingest.clear_pending`) and the
fingerprint of the reference tables and dbt files it tested with; the next run tests only the cases
changed after that number (``macros/tested_cases.sql``).

The whole suite runs instead when that would not be safe: no passing run on record (a new, restored
or rebuilt warehouse), a different fingerprint (a reference table or a model changed: rows of
unchanged cases may now fail), or a list of changes with a gap (the publisher drops the changes a
snapshot includes, so after a failing test run, the cases it failed on may no longer be listed: the
failure is then never forgotten, the next run tests everything). ``--full-refresh`` builds test
everything before publishing, and the ``registry_data_tests`` schedule runs the whole suite daily.
"""

from __future__ import annotations

import duckdb

from orchestration.config import Home
from orchestration.warehouse.ingest import MEMORY_LIMIT, ensure_schema

WHOLE = "all rows"


def _newest_seq(con: duckdb.DuckDBPyConnection, published: int | None) -> int:
    listed = con.execute("SELECT max(seq) FROM raw.case_changes").fetchone()[0]
    return max(int(listed or 0), int(published or 0))


def changed_after(home: Home, fingerprint: str, published: int | None) -> int | None:
    """The build number after which the changed cases need testing, or None: test every row.
    ``published`` is the build number the current snapshot includes (``published_watermark``)."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        have = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = 'raw' "
            "AND table_name IN ('case_changes', 'data_tests_passed')"
        ).fetchone()[0]
        if have < 2:
            return None
        last = con.execute(
            "SELECT seq, fingerprint FROM raw.data_tests_passed ORDER BY tested_at DESC, seq DESC LIMIT 1"
        ).fetchone()
        if last is None or last[1] != fingerprint:
            return None
        tested, newest = int(last[0]), _newest_seq(con, published)
        if tested == newest:
            return tested  # nothing changed since: only the tables that are not per case
        if tested > newest:
            return None  # an older warehouse than the one tested
        # the changes are numbered without gaps; the next one still listed means every later one is
        listed = con.execute("SELECT count(*) FROM raw.case_changes WHERE seq = ?", [tested + 1]).fetchone()[0]
        return tested if listed else None
    finally:
        con.close()


def record_passed(home: Home, fingerprint: str, published: int | None, scope: str) -> int:
    """Record a passing test run that covered every change up to now; returns that build number."""
    con = duckdb.connect(str(home.warehouse), config={"memory_limit": MEMORY_LIMIT})
    try:
        ensure_schema(con)
        seq = _newest_seq(con, published)
        con.execute("INSERT INTO raw.data_tests_passed VALUES (?, ?, ?, now())", [seq, fingerprint, scope])
        return seq
    finally:
        con.close()
