"""Batch upload on /submit: files of cases, each record with its own result (what ``registry submit FILE…`` does)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards.lib import auth, data, ui
from dashboards.lib import case_form as cf
from dashboards.lib.text import lit
from dashboards.submit.state import S
from orchestration.registry.landing import ACCEPTED, DUPLICATE, QUARANTINED, REFUSED
from orchestration.services import imports
from orchestration.services.import_fhir import import_bundles

# ----------------------------------------------------------------------------- batch upload


@st.cache_data(show_spinner=False)
def _template() -> bytes:
    return imports.template_xlsx()


def _submit_batch() -> None:
    n = S.get("cf_upload_n", 0)
    files = S.get(f"cf_upload_{n}") or []
    if not files:
        return
    uploads = [(f.name, f.getvalue()) for f in files]
    bundles = [(n, d) for n, d in uploads if imports.is_fhir_bundle(n, d)]
    others = [(n, d) for n, d in uploads if not imports.is_fhir_bundle(n, d)]
    allowed, who = auth.submit_sites(), auth.current_email()  # site_staff: another site's record is refused, in every format
    receipts = list(imports.submit_uploads(data.home(), others, allowed_sites=allowed, user=who)) if others else []
    notices: list[str] = []
    if bundles:
        site = (S.get("cf_fhir_site") or "").strip()
        if not site:
            S["cf_batch_msg"] = "FHIR bundles need the site they come from: type your site ID above the uploader."
            return
        for r in import_bundles(data.home(), bundles, site_id=site, allowed_sites=allowed, user=who):
            receipts.append(r.receipt)
            notices += [f"{r.given_name}: {n}" for n in r.notices]
    S["cf_batch_msg"] = None
    S["cf_batch"] = {"files": [f.name for f in files], "rows": cf.batch_rows(receipts), "notices": notices}
    S["cf_upload_n"] = n + 1  # a fresh, empty uploader: the same files are not sent twice by accident


def batch_upload() -> None:
    st.markdown("Upload case files in any of the registry's formats: **`.json`** / **`.jsonl`** case records (contract v1), "
                "a **REDCap** records export (`.csv`), the registry's **spreadsheet** (`.xlsx`, or its sheets as `.csv`), or "
                "**FHIR R4** bundles (`.json`, one per case, de-identified on the way in: only the case record is kept). Every "
                "record is checked and gets its own result; a record that fails does not stop the others. The same as "
                "`registry submit` and `registry import` (see docs/import.md).")
    c = st.columns([1, 1, 2], vertical_alignment="bottom")
    c[0].download_button("Spreadsheet template", _template(), "registry-template.xlsx", icon=":material/download:",
                         mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", key="cf_xlsx_template",
                         help="A sheet per entity, drop-down lists from the vocabularies, a how-to sheet and the seed case as example.")
    c[1].text_input("Site ID for FHIR bundles", key="cf_fhir_site", placeholder="e.g. DE-AAC",
                    help="A FHIR bundle does not name the registry site; the others carry site_id in each record.")
    n = S.get("cf_upload_n", 0)
    files = st.file_uploader("Case files", type=list(imports.UPLOAD_TYPES), accept_multiple_files=True, key=f"cf_upload_{n}",
                             help="Records that fail are quarantined with every reason, never dropped.")
    msg = S.get("cf_batch_msg")
    if msg:
        st.error(msg)
    k = len(files or [])
    st.button(f"Submit {k} file{'s' if k != 1 else ''}" if k else "Submit files", key="cf_batch_submit", type="primary",
              icon=":material/send:", disabled=not k, on_click=_submit_batch)
    res = S.get("cf_batch")
    if not res:
        return
    df = pd.DataFrame(res["rows"], columns=list(cf.BATCH_COLUMNS))
    counts = df["status"].value_counts()
    st.markdown(f"##### Results of {', '.join(lit(f) for f in res['files'])}")
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
                     "automatic rebuild (usually within seconds while `registry serve` runs; a big batch takes longer).")
    refused = df[df["status"] == REFUSED]
    if len(refused):
        st.error(f"{len(refused):,} record{'s were' if len(refused) != 1 else ' was'} refused (neither landed nor quarantined): "
                 + "; ".join(auth.md_escape(str(x)) for x in refused["reasons"].head(3)), icon=":material/block:")
    for line in res.get("notices") or []:
        st.text(f"Not mapped: {line}")
    if counts.get(QUARANTINED, 0):
        st.info("Quarantined records wait in the **Quarantine** tab: open one in the form, fix it, and resubmit.",
                icon=":material/healing:")
