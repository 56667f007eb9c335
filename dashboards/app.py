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

from dashboards.lib import auth, data, ui  # noqa: E402

st.set_page_config(
    page_title="Calciphylaxis Registry",
    page_icon=str(HERE / "static" / "favicon.png"),
    layout="wide",
    initial_sidebar_state="expanded",
    menu_items={"About": "Calciphylaxis case registry: cohort dashboards over the published snapshot."},
)

#: Pages whose figures depend on the cohort filter in the sidebar.
ANALYSIS_PAGES = {"", "mortality", "organs", "labs", "cases", "analysis"}

user = auth.resolve()  # every run: single-user mode, or the signed-in user's grants as they are now


def _visible(path: str) -> str:
    """Pages outside the user's roles are not listed; opening their URL reaches the page's guard."""
    return "visible" if user is not None and user.may_open(path) else "hidden"


pages = [
    st.Page(HERE / "app_pages" / "overview.py", title="Overview", url_path="", default=True, visibility=_visible(""), icon=":material/dashboard:"),
    st.Page(HERE / "app_pages" / "mortality.py", title="Mortality", url_path="mortality", visibility=_visible("mortality"), icon=":material/monitor_heart:"),
    st.Page(HERE / "app_pages" / "organs.py", title="Organs", url_path="organs", visibility=_visible("organs"), icon=":material/pulmonology:"),
    st.Page(HERE / "app_pages" / "labs.py", title="Labs", url_path="labs", visibility=_visible("labs"), icon=":material/biotech:"),
    st.Page(HERE / "app_pages" / "cases.py", title="Cases", url_path="cases", visibility=_visible("cases"), icon=":material/person_search:"),
    st.Page(HERE / "app_pages" / "analysis.py", title="Analysis", url_path="analysis", visibility=_visible("analysis"), icon=":material/query_stats:"),
    st.Page(HERE / "app_pages" / "quality.py", title="Data quality", url_path="quality", visibility=_visible("quality"), icon=":material/fact_check:"),
    st.Page(HERE / "app_pages" / "submit.py", title="Submit", url_path="submit", visibility=_visible("submit"), icon=":material/upload_file:"),
    st.Page(HERE / "app_pages" / "sql.py", title="SQL", url_path="sql", visibility=_visible("sql"), icon=":material/terminal:"),
]
if user is None or not user.has_access:  # sign-in page or "no access": nothing of the registry
    st.navigation(pages, position="hidden")
    auth.refuse_run(user)
page = st.navigation(pages)
st.logo(str(HERE / "static" / "logo.png"), size="large")
auth.identity_line(user)
if not user.may_open(page.url_path):  # a direct URL outside the user's roles: refused before anything is read
    auth.guard(page.url_path)

snap = data.current_snapshot()  # resolved once per run: the sidebar and the page read the same version
st.session_state[ui.SNAPSHOT_STATE] = snap
if snap is not None and page.url_path in ANALYSIS_PAGES:
    ui.cohort_sidebar(snap)
ui.snapshot_caption(snap)
page.run()
