"""The /sql page's logic, without Streamlit: example questions, the schema browser's contents and
running a query on the shared hardened engine (orchestration.sql.console), exactly as
`registry sql` does: same statement rules, same isolation, same one-line messages."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd

from orchestration.sql import console as sqlconsole

DISPLAY_ROWS = 1_000  # rows drawn on the page
DOWNLOAD_ROWS = int(os.environ.get("REGISTRY_SQL_DOWNLOAD_ROWS", 100_000))  # rows in the CSV download
DEFAULT_TIMEOUT_S = float(os.environ.get("REGISTRY_SQL_TIMEOUT", 30))
MAX_TIMEOUT_S = 120.0

EXAMPLES: list[tuple[str, str]] = [
    (
        "1-year survival by kidney status",
        """SELECT stratum_value AS kidney_status, n_cases, n_known_outcome, n_deaths,
       round(case_fatality, 3) AS case_fatality,
       round(survival_365d, 3) AS survival_1y,
       median_survival_days
FROM mart_mortality
WHERE stratum = 'kidney_status'
ORDER BY n_cases DESC""",
    ),
    (
        "Median PTH by lesion distribution",
        """SELECT c.lesion_distribution,
       count(*) AS n,
       median(l.value) AS median_pth_pg_ml,
       quantile_cont(l.value, [0.25, 0.75]) AS iqr_pg_ml
FROM fct_lab_results AS l
JOIN dim_cases AS c USING (case_id)
WHERE l.analyte = 'pth_intact' AND l.is_baseline
GROUP BY ALL
ORDER BY n DESC""",
    ),
    (
        "Visceral organs most often involved",
        """SELECT organ, n_cases, round(pct_of_cases, 1) AS pct_of_cases
FROM mart_organ_involvement
WHERE organ_group = 'visceral'
ORDER BY n_cases DESC""",
    ),
    (
        "Case fatality by warfarin exposure (unknown kept apart)",
        """SELECT coalesce(warfarin::VARCHAR, 'unknown') AS warfarin,
       count(*) AS cases,
       count(died) AS known_outcome,
       round(avg(died::INTEGER), 3) AS case_fatality
FROM dim_cases
GROUP BY ALL
ORDER BY warfarin""",
    ),
    (
        "Share of cases with Ca × P above 55 mg²/dL², by kidney status",
        """SELECT kidney_status,
       count(calcium_phosphate_product) AS with_both_values,
       round(avg((calcium_phosphate_product > 55)::INTEGER), 3) AS share_above_55
FROM dim_cases
GROUP BY ALL
ORDER BY with_both_values DESC""",
    ),
    (
        "Survival curve of cases with visceral involvement (first 20 days with events)",
        """SELECT day, n_at_risk, n_events, n_censored,
       round(survival, 4) AS survival, round(ci_lower, 4) AS ci_lower, round(ci_upper, 4) AS ci_upper
FROM mart_survival
WHERE stratum = 'visceral_involvement' AND stratum_value = 'true' AND n_events > 0
ORDER BY day
LIMIT 20""",
    ),
    ("Columns of dim_cases", "DESCRIBE dim_cases"),
]


def schema(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every table analysts may query with each column's type and description (from the dbt docs,
    shipped in the snapshot's ``data_dictionary``)."""
    return con.execute(
        """
        SELECT t.table_name, d.table_description, t.column_name, t.data_type, coalesce(d.column_description, '') AS description
        FROM (SELECT table_name, column_name, data_type, column_index FROM duckdb_columns()
              WHERE database_name = current_database() AND schema_name = 'main') AS t
        LEFT JOIN data_dictionary AS d USING (table_name, column_name)
        ORDER BY t.table_name, t.column_index
        """
    ).df()


def run(sql: str, database: str | Path, *, timeout_s: float = DEFAULT_TIMEOUT_S, user: str | None = None) -> sqlconsole.QueryResult:
    """Run one analyst query on the published snapshot. Raises ``sqlconsole.QueryRefused`` with a
    one-line message for anything refused, failed, too slow or too big."""
    timeout_s = max(1.0, min(float(timeout_s), MAX_TIMEOUT_S))
    return sqlconsole.run_query_isolated(sql, database=Path(database), timeout_s=timeout_s, max_rows=DOWNLOAD_ROWS, user=user)
