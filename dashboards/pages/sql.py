"""/sql: placeholder until the SQL console issue fills it."""

import streamlit as st

from dashboards.lib.ui import ensure_navigation

ensure_navigation()  # keep: runs this page inside app.py on a fresh server (see its docstring)

st.title("SQL")
st.info(
    "A read-only SQL console over the published snapshot is coming with its own issue. Until then, use the command line:\n\n"
    "```\nregistry sql \"SELECT kidney_status, count(*) FROM dim_cases GROUP BY ALL\"\n```\n\n"
    "Tables and columns are described in the data dictionary (`data_dictionary` table, and "
    "`published/current/data_dictionary.md`).",
    icon=":material/construction:",
)
