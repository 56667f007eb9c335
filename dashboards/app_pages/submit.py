"""/submit: registry staff submit cases. A case report form (new cases, edits as the next revision,
corrections of quarantined records), batch upload of .json / .jsonl files, and the open quarantine.

Everything goes through :func:`orchestration.registry.landing.submit` and the one validator, like
``registry submit``; the form's logic (record <-> widgets, errors at their fields, reading the landing
zone) is in :mod:`dashboards.lib.case_form`. The page needs only ``$REGISTRY_HOME``: it works before
anything is published.
"""

from __future__ import annotations

import streamlit as st

from dashboards.lib import auth, ui
from dashboards.submit.batch import batch_upload
from dashboards.submit.form import case_report_form
from dashboards.submit.quarantine import quarantine
from dashboards.submit.state import TABS, restore

ui.ensure_navigation()  # keep: runs this page inside app.py on a fresh server (see its docstring)
auth.guard("submit")
restore()

st.html(
    """<style>
    .cf-msg {font-size: 0.86rem; line-height: 1.35; margin-top: -0.55rem; padding: 0.15rem 0 0.1rem 0;}
    .cf-err {color: #B42318;}
    .cf-warn {color: #8A4B0B;}
    .cf-msg code {font-size: 0.8rem; padding: 0.05rem 0.25rem; border-radius: 0.2rem;}
    .cf-err code {color: #B42318; background: #FEF3F2;}
    .cf-warn code {color: #8A4B0B; background: #FFFAEB;}
    </style>"""
)



st.title("Submit cases")
st.caption("For registry staff: report a case in the form, upload files of cases, and correct quarantined records.")
st.info("Accepted records land in the registry at once and appear in the dashboards usually within seconds, after the automatic "
        "rebuild by `registry serve`'s warm builder (a big batch takes longer; otherwise `registry build` publishes them). "
        "The form, the batch upload and `registry submit` share one validator and one landing zone.",
        icon=":material/info:")

form_tab, batch_tab, q_tab = st.tabs(list(TABS), key="cf_tab", on_change="rerun")
with form_tab:
    case_report_form()
with batch_tab:
    batch_upload()
with q_tab:
    quarantine()
