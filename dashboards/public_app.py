"""The public dashboard: ``registry serve --public`` (or ``streamlit run dashboards/public_app.py``).

Only the aggregate pages are registered (``/``, ``/mortality``, ``/organs``, ``/labs``), so the
case-level pages, the data-quality page, ``/sql`` and ``/submit`` have no URL here at all; there is
no sign-in and no link to the signed-in dashboards. Every figure is under the disclosure policy of
the registry home (``registry disclosure show``; rules in ``docs/disclosure.md``).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # `streamlit run dashboards/public_app.py` from a checkout
    sys.path.insert(0, str(HERE.parent))

import streamlit as st  # noqa: E402

from dashboards.lib import data, public, ui  # noqa: E402

st.set_page_config(
    page_title="Calciphylaxis Registry (public figures)",
    page_icon=str(HERE / "static" / "favicon.png"),
    layout="wide",
    initial_sidebar_state="expanded",
    menu_items={"About": "Calciphylaxis case registry: public aggregate figures under small-cell suppression.",
                "Get help": None, "Report a bug": None},
)

# before any page runs: this session sees figures only under the policy
st.session_state[public.PUBLIC_STATE] = True

pages = [
    st.Page(HERE / "app_pages" / "overview.py", title="Overview", url_path="", default=True, icon=":material/dashboard:"),
    st.Page(HERE / "app_pages" / "mortality.py", title="Mortality", url_path="mortality", icon=":material/monitor_heart:"),
    st.Page(HERE / "app_pages" / "organs.py", title="Organs", url_path="organs", icon=":material/pulmonology:"),
    st.Page(HERE / "app_pages" / "labs.py", title="Labs", url_path="labs", icon=":material/biotech:"),
]
page = st.navigation(pages)
st.logo(str(HERE / "static" / "logo.png"), size="large")

snap = data.current_snapshot()
st.session_state[ui.SNAPSHOT_STATE] = snap
if snap is not None:
    ui.cohort_sidebar(snap)
ui.snapshot_caption(snap)
page.run()
