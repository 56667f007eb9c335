"""/submit: placeholder until the submission issue fills it."""

import streamlit as st

from dashboards.lib.ui import ensure_navigation

ensure_navigation()  # keep: runs this page inside app.py on a fresh server (see its docstring)

st.title("Submit cases")
st.info(
    "Submitting case records from the browser is coming with its own issue. Until then, use the command line:\n\n"
    "```\nregistry submit cases.jsonl      # validate and land (or quarantine, with every reason)\n"
    "registry build                   # ingest, dbt build, publish a new snapshot\n```\n\n"
    "The dashboards pick up the new snapshot on their next refresh.",
    icon=":material/construction:",
)
