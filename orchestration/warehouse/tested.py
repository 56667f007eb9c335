"""Which cases the data tests of a build must look at (issue 16).

dbt's data tests of an ordinary build need not read a million cases again: a per-case table's rows
of cases no build has changed since the last passing test run passed then, and nothing the pipeline
does has touched them since. So every test run is recorded in ``raw.data_test_runs``: whether it
passed, the number of the newest build whose changes it covered (``raw.case_changes.seq``, see
:func:`.ingest.clear_pending`; the numbers only grow) and the fingerprint of the reference tables,
dbt files and versions it tested with. The next run tests only the cases changed after that number
(``macros/tested_cases.sql``).

The whole suite runs instead when that would not be safe: no test run on record (a new, restored or
rebuilt warehouse), the last run failed (a failure is never forgotten: every later run tests every
row until one passes), a different fingerprint (a changed reference table or model may fail rows of
unchanged cases), or a list of changes with a gap (``clear_pending`` drops the changes a snapshot
includes, but keeps those after the last passing run, so that the warm builder, which tests when
idle, after one or more builds, leaves none; a run recorded without a build's changes can). Rows changed behind
the pipeline's back are found by the daily full run (job ``registry_data_tests``) and
``registry build --data-tests``; ``--full-refresh`` builds test everything before publishing.
"""

from __future__ import annotations

import duckdb

from orchestration.config import Home
from orchestration.warehouse.ingest import MEMORY_LIMIT, ensure_schema
from orchestration.warehouse.publish import last_test_run, newest_change, raw_tables_exist

WHOLE = "all rows"
KEEP_RUNS = 1000  # the record of older runs is dropped


def changed_after(home: Home, fingerprint: str, published: int | None) -> int | None:
    """The build number after which the changed cases need testing, or None: test every row.
    ``published`` is the build number the current snapshot includes (``published_watermark``).
    The caller holds the warehouse lock until it has recorded the run (:func:`record`)."""
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        if not raw_tables_exist(con, "case_changes", "data_test_runs"):
            return None
        last = last_test_run(con)
        if last is None or not last[0] or last[2] != fingerprint:
            return None
        tested, newest = last[1], newest_change(con, published)
        if tested == newest:
            return tested  # nothing changed since: only the tables that are not per case
        if tested > newest:
            return None  # an older warehouse than the one tested
        # the changes are numbered without gaps; the next one still listed means every later one is
        listed = con.execute("SELECT count(*) FROM raw.case_changes WHERE seq = ?", [tested + 1]).fetchone()[0]
        return tested if listed else None
    finally:
        con.close()


def untested(home: Home, published: int | None) -> bool:
    """Whether a build changed cases after the last passing test run, or the last run failed (the warm
    builder's tests at its start: builds it left untested before it stopped). The caller holds the
    warehouse lock."""
    if not home.warehouse.exists():
        return False
    con = duckdb.connect(str(home.warehouse), read_only=True)
    try:
        if not raw_tables_exist(con, "case_changes", "data_test_runs"):
            return False
        last = last_test_run(con)
        if last is None or not last[0]:
            return True
        return last[1] < newest_change(con, published)
    finally:
        con.close()


def record(home: Home, fingerprint: str, published: int | None, scope: str, *, passed: bool) -> int:
    """Record a test run that covered every change up to now; returns that build number."""
    con = duckdb.connect(str(home.warehouse), config={"memory_limit": MEMORY_LIMIT})
    try:
        ensure_schema(con)
        seq = newest_change(con, published)
        con.execute("BEGIN")
        run = con.execute("SELECT coalesce(max(run), 0) + 1 FROM raw.data_test_runs").fetchone()[0]
        con.execute("INSERT INTO raw.data_test_runs VALUES (?, ?, ?, ?, ?, now())", [run, passed, seq, fingerprint, scope])
        con.execute("DELETE FROM raw.data_test_runs WHERE run <= ?", [run - KEEP_RUNS])
        con.execute("COMMIT")
        return seq
    finally:
        con.close()
