"""The /sql page: examples answer, results show their row count, time and CSV download; hostile or
broken SQL is refused with a message (never an exception); the schema browser lists every table
with the dbt descriptions."""

from __future__ import annotations

import pytest

from dashboards.lib import sql_console
from orchestration.config import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboards")]

PAGE = str(REPO_ROOT / "dashboards" / "app_pages" / "sql.py")


@pytest.fixture
def app(built, monkeypatch):  # noqa: F811
    # The page file itself (its logic is what is tested here); tests/browser/test_browser.py opens /sql
    # through the app's navigation in Chromium.
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("REGISTRY_HOME", str(built.root))
    return AppTest.from_file(PAGE, default_timeout=120)


def open_page(at, page: str):
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def run_sql(at, sql: str):
    at.text_area(key="sql_text").set_value(sql)
    at.button(key="sql_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_default_example_answers(app):
    at = open_page(app, "sql")
    at.button(key="sql_run").click().run()
    assert not at.exception
    assert any("rows" in m.value and "ms" in m.value for m in at.markdown)
    assert len(at.get("download_button")) >= 2  # the result's CSV and the data dictionary


@pytest.mark.parametrize("title,sql", sql_console.EXAMPLES, ids=[t for t, _ in sql_console.EXAMPLES])
def test_every_example_query_answers(built, title, sql):  # noqa: F811 - the fixture
    from orchestration.warehouse import snapshot

    res = sql_console.run(sql, snapshot.current_database(built), timeout_s=30)
    assert res.row_count > 0, title


@pytest.mark.parametrize(
    "sql,words",
    [
        ("COPY dim_cases TO '/tmp/stolen.csv'", "COPY"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("DROP TABLE dim_cases", "only read statements"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELEC nonsense", "Parser Error"),
        ("SELECT no_such_column FROM dim_cases", "Binder Error"),
    ],
)
def test_refusals_and_errors_are_messages(app, sql, words):
    at = run_sql(open_page(app, "sql"), sql)
    assert at.error and words in at.error[0].value


def test_schema_browser_lists_tables_with_descriptions(app):
    at = open_page(app, "sql")
    labels = [e.label for e in at.expander]
    for t in ("dim_cases", "fct_lab_results", "mart_mortality", "mart_survival", "data_dictionary"):
        assert any(f"`{t}`" in lbl for lbl in labels), t


def test_picking_an_example_loads_it(app):
    at = open_page(app, "sql")
    title, sql = sql_console.EXAMPLES[2]
    at.selectbox(key="sql_example").select(title).run()
    assert at.text_area(key="sql_text").value == sql
