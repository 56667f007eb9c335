"""Every query and statistic the dashboards show, as plain functions of a DuckDB connection: one module
per page (``overview``, ``mortality``, ``organs``, ``labs``, ``cases``, ``quality``, ``sql``) and what they
share in ``common``.

``con`` is a connection with the published snapshot attached and selected (tables by bare name,
see :func:`orchestration.warehouse.snapshot.connect`); ``f`` is a :class:`~dashboards.lib.cohort.CohortFilter`.
Nothing here imports Streamlit: the pages cache these results (``dashboards.lib.data``, keyed by module and function name), tests and the
benchmark call them directly. Filtering, grouping and counting run in DuckDB, and what reaches Python
is counted (cases per follow-up day and outcome, values per distinct value), never one row per case;
the whole registry (the default cohort) reads the organ marts and ``mart_lab_value_counts``. Every statistic of a filtered cohort (Kaplan–Meier, survival at fixed
days, log-rank, numeric summaries, mortality by stratum) comes from :mod:`orchestration.analytics.stats`,
the implementation the marts use, so the pages agree with ``mart_*`` for the standard strata.

Which page calls what (each ``*_queries`` function returns a dict of DataFrames and numbers):

========== ===================================================================================
page       functions
========== ===================================================================================
(sidebar)  :func:`filter_options`, :func:`cohort_size`, :func:`vocabulary`
overview   :func:`overview_queries` (``f``)
mortality  :func:`mortality_queries` (``f``, ``stratum``)
organs     :func:`organ_queries` (``f``, ``stratum``)
labs       :func:`lab_options`, :func:`lab_queries` (``f``, ``analyte``, ``si``, ``baseline_only``,
           ``stratum``), :func:`capp_queries` (``f``, ``si``)
cases      :func:`case_list` (``f``, ``search``, ``limit``), :func:`case_detail` (``case_id``),
           :func:`default_case` (``f``)
quality    :func:`quality_queries` (not filtered: quarantine and submissions are registry-wide)
========== ===================================================================================

:data:`PAGES` lists, per page, what it runs when it opens with its default settings, each as
``fn(con, cohort_filter)`` (``bench/run.py`` times them).
"""

from __future__ import annotations

from dashboards.queries.cases import case_detail, case_list, cases_page, default_case
from dashboards.queries.common import (
    AT_RISK_DAYS,
    DEFAULT_FILTER,
    SURVIVAL_DAYS,
    cohort_size,
    filter_options,
    level_key,
    sidebar,
    stratum_order,
    vocabulary,
)
from dashboards.queries.labs import capp_queries, histogram, lab_options, lab_queries, labs_page
from dashboards.queries.mortality import DEFAULT_MORTALITY_STRATUM, mortality_page, mortality_queries
from dashboards.queries.organs import DEFAULT_ORGAN_STRATUM, organ_queries, organs_page
from dashboards.queries.overview import overview_queries
from dashboards.queries.quality import completeness, quality_page, quality_queries
from dashboards.queries.sql import sql_schema

#: What each page runs when it opens, as ``fn(con, cohort_filter)`` (read by ``bench/run.py``).
PAGES: dict[str, list] = {
    "sidebar": [sidebar],
    "overview": [overview_queries],
    "mortality": [mortality_page],
    "organs": [organs_page],
    "labs": [labs_page],
    "cases": [cases_page],
    "quality": [quality_page],
}

__all__ = [
    "AT_RISK_DAYS", "DEFAULT_FILTER", "DEFAULT_MORTALITY_STRATUM", "DEFAULT_ORGAN_STRATUM", "PAGES", "SURVIVAL_DAYS",
    "capp_queries", "case_detail", "case_list", "cases_page", "cohort_size", "completeness", "default_case",
    "filter_options", "histogram", "lab_options", "lab_queries", "labs_page", "level_key", "mortality_page",
    "mortality_queries", "organ_queries", "organs_page", "overview_queries", "quality_page", "quality_queries",
    "sidebar", "sql_schema", "stratum_order", "vocabulary",
]
