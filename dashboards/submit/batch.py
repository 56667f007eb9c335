"""Batch upload on /submit: files of cases, each record with its own result (what ``registry submit FILE…`` does)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards.lib import case_form as cf
from dashboards.lib import auth, data, ui
from dashboards.submit.state import S
from orchestration.registry.landing import ACCEPTED, DUPLICATE, QUARANTINED, REFUSED, submit

# ----------------------------------------------------------------------------- batch upload


def _submit_batch() -> None:
    n = S.get("cf_upload_n", 0)
    files = S.get(f"cf_upload_{n}") or []
    if not files:
        return
    receipts = submit(data.home(), [(f.name, f.getvalue()) for f in files], channel="upload",
                      allowed_sites=auth.submit_sites(), user=auth.current_email())  # site_staff: another site's record is refused
    S["cf_batch"] = {"files": [f.name for f in files], "rows": cf.batch_rows(receipts)}
    S["cf_upload_n"] = n + 1  # a fresh, empty uploader: the same files are not sent twice by accident


def batch_upload() -> None:
    st.markdown("Upload one or more **`.json`** files (one case object, or an array of case objects) or **`.jsonl`** files "
                "(JSON Lines: one case per line). Every record is checked and gets its own result; a record that fails does not "
                "stop the others. Exactly what `registry submit FILE…` does.")
    n = S.get("cf_upload_n", 0)
    files = st.file_uploader("Case files", type=["json", "jsonl"], accept_multiple_files=True, key=f"cf_upload_{n}",
                             help="Files are read as UTF-8 JSON. Records that fail are quarantined with every reason, never dropped.")
    k = len(files or [])
    st.button(f"Submit {k} file{'s' if k != 1 else ''}" if k else "Submit files", key="cf_batch_submit", type="primary",
              icon=":material/send:", disabled=not k, on_click=_submit_batch)
    res = S.get("cf_batch")
    if not res:
        return
    df = pd.DataFrame(res["rows"], columns=list(cf.BATCH_COLUMNS))
    counts = df["status"].value_counts()
    st.markdown(f"##### Results of {', '.join(f'`{f}`' for f in res['files'])}")
    c = st.columns(4)
    c[0].metric("Records", f"{len(df):,}", border=True)
    c[1].metric("Accepted", f"{int(counts.get(ACCEPTED, 0)):,}", border=True)
    c[2].metric("Duplicates", f"{int(counts.get(DUPLICATE, 0)):,}", border=True, help="Already in the registry with the same content: no change.")
    c[3].metric("Quarantined", f"{int(counts.get(QUARANTINED, 0)):,}", border=True,
                help="Kept with every reason; correct them in the Quarantine tab.")
    ui.table(df, "submission_results", key="cf_batch_table", csv=df,
             column_config={"reasons": st.column_config.TextColumn("Reasons", width="large"),
                            "record": st.column_config.NumberColumn("Record", format="%d",
                                                                    help="Line number in JSON Lines; position (from 0) in a JSON array")},
             caption="Reasons as `path: message`, separated by ` | `. Accepted records appear in the dashboards after the next "
                     "automatic rebuild (about a minute while `registry serve` runs).")
    refused = df[df["status"] == REFUSED]
    if len(refused):
        st.error(f"{len(refused):,} record{'s were' if len(refused) != 1 else ' was'} refused (neither landed nor quarantined): "
                 + "; ".join(auth.md_escape(str(x)) for x in refused["reasons"].head(3)), icon=":material/block:")
    if counts.get(QUARANTINED, 0):
        st.info("Quarantined records wait in the **Quarantine** tab: open one in the form, fix it, and resubmit.",
                icon=":material/healing:")
