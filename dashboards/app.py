"""Calciphylaxis registry dashboards: ``registry serve`` (or ``streamlit run dashboards/app.py``).

The entry point only declares the pages (their URL paths are part of the interface), draws the
shared cohort filter in the sidebar of the analysis pages and runs the chosen page. Page files are
thin: their queries live in ``dashboards/queries`` (one module per page), shared widgets and
charts in ``dashboards/lib``, the submission form in ``dashboards/submit``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run dashboards/app.py` from a checkout
    sys.path.insert(0, str(HERE.parent))

import streamlit as st  # noqa: E402

from dashboards.lib import data, ui  # noqa: E402

st.set_page_config(
    page_title="Calciphylaxis Registry",
    page_icon=str(HERE / "static" / "favicon.png"),
    layout="wide",
    initial_sidebar_state="expanded",
    menu_items={"About": "Calciphylaxis case registry: cohort dashboards over the published snapshot."},
)

#: Pages whose figures depend on the cohort filter in the sidebar.
ANALYSIS_PAGES = {"", "mortality", "organs", "labs", "cases", "analysis"}

pages = [
    st.Page(HERE / "app_pages" / "overview.py", title="Overview", url_path="", default=True, icon=":material/dashboard:"),
    st.Page(HERE / "app_pages" / "mortality.py", title="Mortality", url_path="mortality", icon=":material/monitor_heart:"),
    st.Page(HERE / "app_pages" / "organs.py", title="Organs", url_path="organs", icon=":material/pulmonology:"),
    st.Page(HERE / "app_pages" / "labs.py", title="Labs", url_path="labs", icon=":material/biotech:"),
    st.Page(HERE / "app_pages" / "cases.py", title="Cases", url_path="cases", icon=":material/person_search:"),
    st.Page(HERE / "app_pages" / "analysis.py", title="Analysis", url_path="analysis", icon=":material/query_stats:"),
    st.Page(HERE / "app_pages" / "quality.py", title="Data quality", url_path="quality", icon=":material/fact_check:"),
    st.Page(HERE / "app_pages" / "submit.py", title="Submit", url_path="submit", icon=":material/upload_file:"),
    st.Page(HERE / "app_pages" / "sql.py", title="SQL", url_path="sql", icon=":material/terminal:"),
]
page = st.navigation(pages)
st.logo(str(HERE / "static" / "logo.png"), size="large")

snap = data.current_snapshot()  # resolved once per run: the sidebar and the page read the same version
st.session_state[ui.SNAPSHOT_STATE] = snap
if snap is not None and page.url_path in ANALYSIS_PAGES:
    ui.cohort_sidebar(snap)
ui.snapshot_caption(snap)
page.run()
