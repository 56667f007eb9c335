"""/sql: a read-only SQL console over the published snapshot, on the same hardened engine as
`registry sql` (orchestration.sql.console): one read statement at a time, a memory-capped child
process, a timeout, results with row count, time and CSV download; errors as a message."""

import streamlit as st

from dashboards.lib import data, sql_console, ui
from dashboards.queries import sql as sql_queries
from orchestration.sql.console import QueryRefused

ctx = ui.start_page(
    "SQL",
    "Ask the registry what the dashboards do not: read-only SQL (DuckDB dialect) over the published snapshot. "
    "Only SELECT / WITH, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN and PIVOT are allowed, one statement at a time.",
    filtered=False,
)

SQL_KEY = "sql_text"
if SQL_KEY not in st.session_state:
    st.session_state[SQL_KEY] = sql_console.EXAMPLES[0][1]


def _load_example() -> None:
    title = st.session_state.get("sql_example")
    for t, q in sql_console.EXAMPLES:
        if t == title:
            st.session_state[SQL_KEY] = q


editor, browser = st.columns([2.2, 1])

with browser:
    st.subheader("Tables")
    sch = data.run(ctx.snap, sql_queries.sql_schema)
    st.caption(f"{sch['table_name'].nunique()} tables and views. Descriptions come from the dbt documentation.")
    filt = st.text_input("Find a table or column", key="schema_filter", placeholder="e.g. followup, pth, mart_")
    shown = sch
    if filt:
        needle = filt.lower()
        mask = sch["table_name"].str.lower().str.contains(needle, regex=False) | sch["column_name"].str.lower().str.contains(needle, regex=False)
        shown = sch[mask]
    for table_name, cols in shown.groupby("table_name", sort=True):
        with st.expander(f"`{table_name}` · {len(cols)} columns"):
            desc = cols["table_description"].dropna()
            if len(desc) and desc.iloc[0]:
                st.caption(desc.iloc[0])
            st.dataframe(
                cols[["column_name", "data_type", "description"]].rename(
                    columns={"column_name": "Column", "data_type": "Type", "description": "Description"}
                ),
                hide_index=True,
                width="stretch",
            )
    ui.download(sch, "data_dictionary", key="dl-dictionary", label="Download the data dictionary (CSV)")

with editor:
    st.selectbox(
        "Example questions",
        [t for t, _ in sql_console.EXAMPLES],
        index=None,
        placeholder="Pick an example to load it into the editor",
        key="sql_example",
        on_change=_load_example,
    )
    sql = st.text_area("Query", key=SQL_KEY, height=240, help="DuckDB SQL. Tables are reachable by their bare names.")
    c1, c2, c3 = st.columns([1, 1.3, 2.5], vertical_alignment="bottom")
    run_clicked = c1.button("Run", type="primary", icon=":material/play_arrow:", key="sql_run")
    timeout = c2.number_input(
        "Timeout (s)", min_value=1, max_value=int(sql_console.MAX_TIMEOUT_S), value=int(sql_console.DEFAULT_TIMEOUT_S), step=5, key="sql_timeout"
    )
    c3.caption(
        f"Shows up to {sql_console.DISPLAY_ROWS:,} rows; the CSV download has up to {sql_console.DOWNLOAD_ROWS:,}."
    )

    if run_clicked:
        try:
            with st.spinner("Running…"):
                st.session_state["sql_result"] = (sql, sql_console.run(sql, ctx.snap.database, timeout_s=timeout), None)
        except QueryRefused as exc:
            st.session_state["sql_result"] = (sql, None, str(exc))

    last = st.session_state.get("sql_result")
    if last is not None:
        ran_sql, result, error = last
        if error:
            st.error(error, icon=":material/block:")
        else:
            df = result.table.to_pandas()
            more = f" (the first {result.row_count:,}; there are more)" if result.truncated else ""
            st.markdown(f"**{result.row_count:,} rows**{more} · {result.elapsed_s * 1000:,.0f} ms")
            st.dataframe(df.head(sql_console.DISPLAY_ROWS), hide_index=True, width="stretch", key="sql_table")
            if len(df) > sql_console.DISPLAY_ROWS:
                st.caption(f"Showing {sql_console.DISPLAY_ROWS:,} of {len(df):,} rows; download them all as CSV.")
            ui.download(df, "query_result", key="dl-query")
