"""The SQL page: the schema browser (every queryable table and column with its description)."""

from __future__ import annotations

import pandas as pd

from dashboards.lib.sql_console import schema
from dashboards.queries.common import Con


def sql_schema(con: Con) -> pd.DataFrame:
    """The /sql page's schema browser: every queryable table and column with its description."""
    return schema(con)
