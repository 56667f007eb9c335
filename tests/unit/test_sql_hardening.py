"""The analysts' SQL console: only reads, never writes, reads files, reaches the network or
changes settings; runaway queries and memory bombs stop with a one-line message."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import duckdb
import pytest

from orchestration.config import Home
from orchestration.sql import console as sqlconsole
from orchestration.sql.console import QueryRefused, classify, format_result, open_console, run_query
from orchestration.warehouse import snapshot
from tests.support import fake_snapshot

# --------------------------------------------------------------------------------------------
# A small fake published snapshot
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home(tmp_path_factory.mktemp("registry_home")).ensure()
    fake_snapshot(h, "v0001", 20)
    return h


@pytest.fixture(scope="module")
def db(home) -> Path:
    return snapshot.current_database(home)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _settings(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT name, value FROM duckdb_settings() ORDER BY name").fetchall())


def _contents(con: duckdb.DuckDBPyConnection) -> list:
    return [
        con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in ("dim_cases", "mart_mortality")
    ] + [con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]


@pytest.fixture(scope="module")
def observers(home, db):
    """Connections that stay open while the hostile statements run: the dashboards' connection
    (``snapshot.connect``), an unrelated in-memory instance and the process-wide default
    connection. None of them may see any change."""
    dash = snapshot.connect(home)
    plain = duckdb.connect(":memory:")
    default = duckdb.default_connection()
    baseline = {
        "sha": hashlib.sha256(db.read_bytes()).hexdigest(),
        "mtime": db.stat().st_mtime_ns,
        "contents": _contents(dash),
        "dash_settings": _settings(dash),
        "plain_settings": _settings(plain),
        "default_settings": _settings(default),
    }
    assert baseline["dash_settings"]["enable_external_access"] == "true"
    yield {"dash": dash, "plain": plain, "default": default, "baseline": baseline}
    dash.close()
    plain.close()


@pytest.fixture
def guard(home, db, observers, tmp_path, monkeypatch):
    """Asserts after the test that nothing changed: the database file's bytes and mtime, the
    tables' contents, the files under the registry home and under the test's tmp_path (also the
    working directory, so a stray spill directory would show), and the settings of every other
    connection."""
    monkeypatch.chdir(tmp_path)
    home_tree, tmp_tree = _tree(home.root), _tree(tmp_path)
    yield tmp_path
    base = observers["baseline"]
    assert hashlib.sha256(db.read_bytes()).hexdigest() == base["sha"]
    assert db.stat().st_mtime_ns == base["mtime"]
    assert _tree(home.root) == home_tree
    assert _tree(tmp_path) == tmp_tree
    assert _contents(observers["dash"]) == base["contents"]
    assert _settings(observers["dash"]) == base["dash_settings"]
    assert _settings(observers["plain"]) == base["plain_settings"]
    assert _settings(observers["default"]) == base["default_settings"]


# --------------------------------------------------------------------------------------------
# Hostile statements: refused by the console, nothing changes
# --------------------------------------------------------------------------------------------

HOSTILE = [
    # file reads, globs, the network
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM read_blob('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "FROM '/etc/passwd'",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM read_parquet('/tmp/*.parquet')",
    "SELECT * FROM parquet_scan('x.parquet')",
    "SELECT * FROM read_json_auto('/etc/passwd')",
    "SELECT * FROM sniff_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('https://example.com/x.csv')",
    "FROM 'https://example.com/x.parquet'",
    "SELECT c.*, f.* FROM dim_cases c, LATERAL (SELECT * FROM read_csv(c.site)) f",
    "SELECT (SELECT count(*) FROM glob('/root/*')) AS n",
    "SELECT 1 UNION ALL SELECT count(*) FROM read_text('/etc/shadow')",
    "SELECT main.read_text('/etc/passwd')",
    "PIVOT read_csv('/etc/passwd') ON column0 USING count(*)",
    "PIVOT (SELECT * FROM \"/etc/passwd\") ON column0 USING count(*)",
    "PIVOT (WITH g AS (DELETE FROM dim_cases RETURNING *) SELECT * FROM g) ON sex USING count(*)",
    "DESCRIBE '/etc/passwd'",
    "SHOW '/etc/passwd'",
    "SUMMARIZE SELECT * FROM read_csv('/etc/passwd')",
    "EXPLAIN SELECT * FROM read_text('/etc/passwd')",
    "SELECT getenv('HOME')",
    "SELECT * FROM query('SELECT 1')",
    # writes to files
    "COPY dim_cases TO '{tmp}/x.csv'",
    "COPY (SELECT 1) TO '{tmp}/y.csv'",
    "COPY dim_cases FROM '/etc/passwd'",
    "EXPORT DATABASE '{tmp}/export'",
    # other databases, extensions
    "ATTACH '{tmp}/x.duckdb' AS y",
    "DETACH registry",
    "INSTALL httpfs",
    "LOAD httpfs",
    "LOAD '{tmp}/evil.duckdb_extension'",
    # settings
    "SET memory_limit = '10GB'",
    "RESET memory_limit",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "SET VARIABLE x = 1",
    "USE memory",
    "PRAGMA enable_profiling",
    "PRAGMA version",
    "CALL pragma_version()",
    "CALL checkpoint()",
    "SELECT * FROM checkpoint()",
    "SELECT * FROM enable_logging()",
    "SELECT write_log('x')",
    # catalog and data changes
    "CREATE TABLE t AS SELECT 1 AS a",
    "CREATE TEMP TABLE t AS SELECT 1 AS a",
    "CREATE VIEW v AS SELECT 1 AS a",
    "CREATE MACRO m() AS 1",
    "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "DROP TABLE dim_cases",
    "ALTER TABLE dim_cases ADD COLUMN x INTEGER",
    "COMMENT ON TABLE dim_cases IS 'x'",
    "INSERT INTO dim_cases (case_id) VALUES ('X')",
    "UPDATE dim_cases SET age = 0",
    "DELETE FROM dim_cases",
    "TRUNCATE dim_cases",
    "MERGE INTO dim_cases USING mart_mortality m ON dim_cases.case_id = m.case_id WHEN MATCHED THEN DELETE",
    "WITH gone AS (DELETE FROM dim_cases RETURNING *) SELECT * FROM gone",
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "BEGIN",
    "COMMIT",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "UPDATE EXTENSIONS",
    # more than one statement, or none
    "SELECT 1; DROP TABLE dim_cases",
    "SELECT 1; SELECT 2",
    "",
    "   ;  ",
    "-- only a comment",
    # EXPLAIN ANALYZE runs its statement
    "EXPLAIN ANALYZE DELETE FROM dim_cases",
    "EXPLAIN DROP TABLE dim_cases",
    "EXPLAIN (ANALYZE) COPY dim_cases TO '{tmp}/z.csv'",
    # garbage
    "SELEC 1",
    "SELECT * FROM no_such_table",
]

RUNAWAY = [
    # (sql, memory_limit): must stop within ~5 s with a clear message
    ("SELECT count(*) FROM range(1000000000000)", "1GB"),
    ("SELECT count(*) FROM range(1000000) a, range(1000000) b WHERE a.range + b.range = -1", "1GB"),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r", "1GB"),
    ("SELECT list(range) FROM range(1000000000)", "256MB"),
    ("SELECT length(string_agg(range::VARCHAR, ',')) FROM range(1000000000)", "256MB"),
]


def _assert_one_line(msg: str) -> None:
    assert msg
    assert "\n" not in msg and "\r" not in msg
    assert "Traceback" not in msg


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_statement_is_refused_and_nothing_changes(sql, db, guard):
    sql = sql.replace("{tmp}", str(guard))
    with pytest.raises(QueryRefused) as info:
        run_query(sql, database=db, timeout_s=5)
    _assert_one_line(str(info.value))


@pytest.mark.parametrize(("sql", "memory_limit"), RUNAWAY)
def test_runaway_query_is_stopped_with_a_clear_message(sql, memory_limit, db, guard):
    assert classify(sql) == "select"  # these are legal reads: the limits stop them
    started = time.monotonic()
    with pytest.raises(QueryRefused) as info:
        run_query(sql, database=db, timeout_s=2, memory_limit=memory_limit)
    assert time.monotonic() - started < 5
    msg = str(info.value)
    _assert_one_line(msg)
    assert msg in (
        "query stopped: it ran longer than the 2 s limit",
        f"query stopped: it needed more than the {memory_limit} memory limit",
    )


def test_hostile_table_is_big_enough():
    assert len(HOSTILE) >= 35


def test_python_variables_are_not_scanned(db, guard):
    import pandas as pd

    secret_df = pd.DataFrame({"password": ["hunter2"]})  # noqa: F841 - the bait
    with pytest.raises(QueryRefused, match="secret_df"):
        run_query("SELECT * FROM secret_df", database=db)


def test_refusal_does_not_need_a_database():
    # classify() refuses on its own, before any connection exists
    for sql in ("COPY dim_cases TO 'x.csv'", "SELECT * FROM read_csv('x')", "SELECT 1; SELECT 2", ""):
        with pytest.raises(QueryRefused):
            classify(sql)
    with pytest.raises(QueryRefused):
        run_query("DROP TABLE dim_cases", database=Path("/nonexistent/registry.duckdb"))


# --------------------------------------------------------------------------------------------
# Layer 2 on its own: the console connection refuses even without classify()
# --------------------------------------------------------------------------------------------

RUNTIME_BLOCKED = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM glob('/*')",
    "FROM '/etc/passwd'",
    "SELECT * FROM read_csv_auto('https://example.com/x.csv')",
    "COPY dim_cases TO '{tmp}/x.csv'",
    "COPY (SELECT 1) TO '{tmp}/y.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "ATTACH '{tmp}/x.duckdb' AS y",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET memory_limit = '10GB'",
    "RESET memory_limit",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "SET temp_directory = '{tmp}'",
    "SET threads = 64",
    "PRAGMA enable_profiling",
    "SELECT * FROM enable_logging()",
    "DROP TABLE dim_cases",
    "CREATE TABLE t AS SELECT 1",
    "INSERT INTO dim_cases (case_id) VALUES ('X')",
    "UPDATE dim_cases SET age = 0",
    "DELETE FROM dim_cases",
    "ALTER TABLE dim_cases ADD COLUMN x INTEGER",
    "DETACH registry",
]


@pytest.mark.parametrize("sql", RUNTIME_BLOCKED)
def test_console_connection_blocks_it_even_unclassified(sql, db, guard):
    con = open_console(db)
    try:
        before = _settings(con)
        with pytest.raises(duckdb.Error):
            con.execute(sql.replace("{tmp}", str(guard)))
        assert _settings(con) == before
    finally:
        con.close()


def test_console_settings_take_effect(db):
    con = open_console(db, memory_limit="512MB", threads=2)
    try:
        s = _settings(con)
        assert s["enable_external_access"] == "false"
        assert s["autoinstall_known_extensions"] == "false"
        assert s["autoload_known_extensions"] == "false"
        assert s["allow_community_extensions"] == "false"
        assert s["python_enable_replacements"] == "false"
        assert s["lock_configuration"] == "true"
        assert s["threads"] == "2"
        assert s["temp_directory"] == ""
        assert s["max_temp_directory_size"] == "0 bytes"
        assert s["memory_limit"] in ("488.2 MiB", "512.0 MiB", "512MB")
        assert con.execute("SELECT current_database()").fetchone()[0] == "registry"
        assert con.execute("SELECT count(*) FROM dim_cases").fetchone()[0] == 20
        # READ_ONLY attach
        ro = con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = 'registry'").fetchone()[0]
        assert ro is True
    finally:
        con.close()
    # a console never changes another instance, e.g. a plain connection opened afterwards
    other = duckdb.connect(":memory:")
    try:
        assert other.execute("SELECT current_setting('enable_external_access')").fetchone()[0] is True
        assert other.execute("SELECT current_setting('lock_configuration')").fetchone()[0] is False
    finally:
        other.close()


def test_console_and_dashboard_connection_coexist(home, db, tmp_path):
    dash = snapshot.connect(home)  # the dashboards' connection, open at the same time
    try:
        res = run_query("SELECT count(*) AS n FROM dim_cases", database=db)
        assert res.table.column("n").to_pylist() == [20]
        probe = tmp_path / "probe.csv"
        probe.write_text("a\n1\n")
        # it may still read files: the console's settings did not leak into it
        assert dash.execute("SELECT count(*) FROM read_csv(?)", [str(probe)]).fetchone()[0] == 1
        assert dash.execute("SELECT count(*) FROM dim_cases").fetchone()[0] == 20
    finally:
        dash.close()


# --------------------------------------------------------------------------------------------
# Ordinary analytic SQL works
# --------------------------------------------------------------------------------------------

ANALYTIC = [
    ("SELECT c.site, count(*) AS n, avg(m.followup_days) AS mean_fu FROM dim_cases c "
     "JOIN mart_mortality m USING (case_id) GROUP BY ALL ORDER BY c.site", "select"),
    ("WITH d AS (SELECT * FROM mart_mortality WHERE died) SELECT count(*) AS deaths FROM d", "select"),
    ("SELECT case_id, age, rank() OVER (PARTITION BY site ORDER BY age DESC) AS r, "
     "avg(age) OVER (ORDER BY diagnosis_date ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS rolling FROM dim_cases", "select"),
    ("DESCRIBE dim_cases", "describe"),
    ("SHOW TABLES", "show"),
    ("SHOW ALL TABLES", "show"),
    ("SUMMARIZE dim_cases", "summarize"),
    ("PIVOT dim_cases ON sex USING count(*) GROUP BY site", "pivot"),
    ("PIVOT dim_cases ON sex IN ('female', 'male') USING avg(age) GROUP BY site", "pivot"),
    ("UNPIVOT (SELECT case_id, age, followup_days FROM dim_cases JOIN mart_mortality USING (case_id)) "
     "ON age, followup_days INTO NAME measure VALUE value", "unpivot"),
    ("EXPLAIN SELECT site, count(*) FROM dim_cases GROUP BY site", "explain"),
    ("EXPLAIN ANALYZE SELECT count(*) FROM dim_cases", "explain"),
    ("SELECT site, count(*) FILTER (WHERE sex = 'female') AS f, median(age), "
     "sum(phosphate) AS p FROM dim_cases GROUP BY ROLLUP (site) ORDER BY site NULLS LAST", "select"),
    ("FROM dim_cases SELECT case_id LIMIT 5", "select"),
    ("TABLE mart_mortality", "select"),
    ("VALUES (1, 'a'), (2, 'b')", "select"),
    ("(SELECT 1 AS x) UNION ALL (SELECT 2)", "select"),
    ("SELECT * FROM information_schema.columns WHERE table_name = 'dim_cases'", "select"),
    ("SELECT * FROM duckdb_tables()", "select"),
    ("-- how many\nSELECT count(*) FROM dim_cases;", "select"),
]


@pytest.mark.parametrize(("sql", "kind"), ANALYTIC)
def test_analytic_sql_works(sql, kind, db, guard):
    assert classify(sql) == kind
    res = run_query(sql, database=db)
    assert res.row_count > 0 and res.table.num_rows == res.row_count
    assert res.columns == res.table.column_names
    assert res.truncated is False
    assert res.elapsed_s >= 0
    text = format_result(res, "table")
    assert res.columns[0] in text.splitlines()[0]
    csv_text = format_result(res, "csv")
    assert csv_text.splitlines()[0].split(",")[0].strip('"') == res.columns[0]
    assert len(csv_text.splitlines()) >= res.row_count + 1
    data = json.loads(format_result(res, "json"))
    assert isinstance(data, list) and len(data) == res.row_count
    assert all(isinstance(r, dict) and list(r) == res.columns for r in data)


def test_row_cap_and_truncation(db):
    res = run_query("SELECT * FROM dim_cases ORDER BY case_id", database=db, max_rows=3)
    assert (res.row_count, res.truncated) == (3, True)
    assert res.table.column("case_id").to_pylist() == ["C0000", "C0001", "C0002"]
    assert "truncated" in format_result(res, "table")
    exact = run_query("SELECT * FROM dim_cases", database=db, max_rows=20)
    assert (exact.row_count, exact.truncated) == (20, False)
    everything = run_query("SELECT * FROM range(250000)", database=db, max_rows=None)
    assert (everything.row_count, everything.truncated) == (250000, False)
    big = run_query("SELECT * FROM range(10000000000)", database=db, max_rows=100_000, timeout_s=10)
    assert (big.row_count, big.truncated) == (100_000, True)
    shown = format_result(big, "table", max_display_rows=10)
    assert len(shown.splitlines()) == 2 + 10 + 1


def test_formats_are_json_safe(db):
    res = run_query(
        "SELECT 1.50::DECIMAL(8, 2) AS d, DATE '2024-02-29' AS day, TIMESTAMP '2024-01-01 10:00' AS ts, "
        "INTERVAL 3 DAY AS iv, [1, 2] AS l, {'k': 'v'} AS s, 'a\nb' AS txt, NULL AS nothing, "
        "'nan'::DOUBLE AS nan, '\\xAA'::BLOB AS b, uuid() AS u, 170141183460469231731687303715884105727::HUGEINT AS h",
        database=db,
    )
    [row] = json.loads(format_result(res, "json"))
    assert row["d"] == 1.5 and row["day"] == "2024-02-29" and row["ts"] == "2024-01-01T10:00:00"
    assert row["iv"] == "3 days" and row["l"] == [1, 2] and row["s"] == {"k": "v"}
    assert row["txt"] == "a\nb" and row["nothing"] is None and row["nan"] is None
    table = format_result(res, "table")
    assert len(table.splitlines()) == 4  # header, rule, one row (newline escaped), footer
    assert "NULL" in table
    csv_text = format_result(res, "csv")
    assert csv_text.startswith("d,day,ts,iv,")
    with pytest.raises(ValueError):
        format_result(res, "xml")


def test_run_query_follows_the_current_symlink(tmp_path):
    h = Home(tmp_path / "home").ensure()
    with pytest.raises(QueryRefused, match="nothing has been published"):
        run_query("SELECT 1", home=h)
    fake_snapshot(h, "v0001", 20)
    assert run_query("SELECT count(*) AS n FROM dim_cases", home=h).table.column("n").to_pylist() == [20]
    fake_snapshot(h, "v0002", 7)
    assert run_query("SELECT count(*) AS n FROM dim_cases", home=h).table.column("n").to_pylist() == [7]


def test_home_from_env(tmp_path, monkeypatch):
    h = Home(tmp_path / "envhome").ensure()
    fake_snapshot(h, "v0001", 5)
    monkeypatch.setenv("REGISTRY_HOME", str(h.root))
    assert run_query("SELECT count(*) AS n FROM dim_cases").table.column("n").to_pylist() == [5]


def test_errors_are_one_line(db):
    for sql, start in (
        ("SELECT * FROM no_such_table", "Catalog Error: "),
        ("SELECT no_such_column FROM dim_cases", "Binder Error: "),
        ("SELEC 1", "Parser Error: "),
        ("SELECT 1/0::INTEGER, 'x'::INTEGER", "Conversion Error: "),
    ):
        with pytest.raises(QueryRefused) as info:
            run_query(sql, database=db)
        _assert_one_line(str(info.value))
        assert str(info.value).startswith(start), str(info.value)


def test_connection_is_not_reused_after_interrupt(db, monkeypatch):
    opened: list[duckdb.DuckDBPyConnection] = []
    real = sqlconsole.open_console

    def spy(*a, **kw):
        con = real(*a, **kw)
        opened.append(con)
        return con

    monkeypatch.setattr(sqlconsole, "open_console", spy)
    with pytest.raises(QueryRefused, match="ran longer"):
        run_query("SELECT count(*) FROM range(1000000000000)", database=db, timeout_s=0.5)
    assert run_query("SELECT 42 AS x", database=db).table.column("x").to_pylist() == [42]
    assert len(opened) == 2 and opened[0] is not opened[1]
    with pytest.raises(duckdb.Error):  # the interrupted one was closed
        opened[0].execute("SELECT 1")
