"""The quarantine tab of /submit: open entries with every reason, open one in the form, or resolve it with a note."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards.lib import data, ui
from dashboards.lib.text import lit, plain
from dashboards.submit.form import dir_sig, message
from dashboards.submit.state import QUARANTINE_LIMIT, S, open_in_form
from orchestration.config import Home
from orchestration.registry.quarantine import quarantine_entries
from orchestration.services import quarantine as quarantine_service

# ----------------------------------------------------------------------------- quarantine


@st.cache_data(max_entries=8, show_spinner=False, ttl=600)
def _entries(root: str, sig: tuple) -> list[dict[str, Any]]:
    return quarantine_entries(Home(Path(root)), with_payload=True, include_resolved=True)


def _payload(entry: dict[str, Any]) -> tuple[Any, str | None]:
    """(the record as an object when the payload is a JSON object, the payload as text to show)."""
    enc, payload = entry.get("payload_encoding"), entry.get("payload")
    if payload is None:
        return None, None
    if enc == "json":
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):  # kept verbatim: it may be broken or nested beyond reason
            return None, payload
        return (obj if isinstance(obj, dict) else None), json.dumps(obj, ensure_ascii=False, indent=2)
    if enc == "base64":
        raw = base64.b64decode(payload)
        return None, raw[:20_000].decode("utf-8", errors="replace")
    return None, payload


def _pick_entry() -> None:
    rows = S["cf_q_table"].selection.rows
    ids = S.get("_cf_q_ids") or []
    if rows and rows[0] < len(ids):
        S["cf_q_pick"] = ids[rows[0]]


def _resolve(qid: str) -> None:
    note = (S.get("cf_q_note") or "").strip()
    if not note:
        S["cf_q_msg"] = ("err", "Write a note first: why is this entry resolved? (It is kept with the note.)")
        return
    quarantine_service.resolve(data.home(), qid, note)
    S["cf_q_note"] = ""
    S["cf_q_msg"] = ("ok", f"Entry {qid} is marked resolved (it is kept, with your note).")


def quarantine() -> None:
    home = data.home()
    entries = _entries(str(home.root), dir_sig(home.quarantine_batches, home.quarantine_resolutions))
    open_ = [e for e in entries if not e["resolved_at"]]
    n_resolved = len(entries) - len(open_)
    st.markdown("Records that failed a check wait here with every reason: nothing is dropped. Open one in the form to fix and "
                "resubmit it; when the correction is accepted the entry is marked resolved, and kept. Entries that need no "
                "resubmission (a file sent twice, a test) can be resolved with a note.")
    msg = S.pop("cf_q_msg", None)
    if msg:
        (st.success if msg[0] == "ok" else st.error)(msg[1])
    c = st.columns([1, 1, 3], vertical_alignment="center")
    c[0].metric("Open", f"{len(open_):,}", border=True)
    c[1].metric("Resolved (kept)", f"{n_resolved:,}", border=True)
    with c[2]:
        show_resolved = st.toggle("Show resolved entries too", key="cf_q_resolved", disabled=not n_resolved)
    shown = entries if show_resolved else open_
    if not shown:
        st.success("No open quarantine entries: every submitted record was accepted or has been resolved.", icon=":material/verified:")
        return
    shown = sorted(sorted(shown, key=lambda e: e["quarantine_id"]), key=lambda e: e["quarantined_at"], reverse=True)  # newest first
    n_all = len(shown)
    shown = shown[:QUARANTINE_LIMIT]
    table = pd.DataFrame({
        "quarantined_at": [e["quarantined_at"][:19].replace("T", " ") for e in shown],
        "case_id": [e["case_id"] for e in shown],
        "source_file": [e["source_file"] for e in shown],
        "record": [e["record"] for e in shown],
        "n_errors": [len(e["errors"]) for e in shown],
        "reasons": [" | ".join(f"{x['path']}: {x['message']}" for x in e["errors"]) for e in shown],
        "resolved_at": [(e["resolved_at"] or "")[:19].replace("T", " ") for e in shown],
        "quarantine_id": [e["quarantine_id"] for e in shown],
    })
    if not show_resolved:
        table = table.drop(columns=["resolved_at"])
    S["_cf_q_ids"] = [e["quarantine_id"] for e in shown]
    ui.table(table, "quarantine_open", key="cf_q_table", on_select=_pick_entry, selection_mode="single-row",
             height=min(38 + 35 * len(table), 320),
             column_config={"reasons": st.column_config.TextColumn("Reasons", width="large"),
                            "record": st.column_config.NumberColumn("Record", format="%d")},
             caption="Click a row (or pick it below) to see the record and correct it."
                     + (f" Showing the newest {QUARANTINE_LIMIT:,} of {n_all:,}; the Data quality page lists them all." if n_all > QUARANTINE_LIMIT else ""))
    by_id = {e["quarantine_id"]: e for e in shown}
    if S.get("cf_q_pick") not in by_id:
        S["cf_q_pick"] = shown[0]["quarantine_id"]
    qid = st.selectbox("Entry", list(by_id), key="cf_q_pick",
                       format_func=lambda q: f"{q} · {plain(by_id[q]['case_id'] or 'no case ID', limit=80)} · {plain(by_id[q]['source_file'], limit=80)}")
    e = by_id[qid]
    obj, text = _payload(e)
    with st.container(border=True):
        where = lit(e["source_file"]) + ("" if e["record"] is None else f", record {lit(e['record'])}")
        st.markdown(f"##### {lit(e['case_id']) if e['case_id'] else 'Record without a case ID'}  \n{where} · quarantined "
                    f"{e['quarantined_at'][:19].replace('T', ' ')} UTC · {lit(qid)}")
        st.markdown(f"**{len(e['errors'])} reason{'s' if len(e['errors']) != 1 else ''}**")
        for x in e["errors"]:
            message("err", [x["message"]], path=x["path"])
        if e["resolved_at"]:
            st.success(f"Resolved {e['resolved_at'][:19].replace('T', ' ')} UTC: {lit(e['resolution'], limit=1000)}", icon=":material/check_circle:")
        c = st.columns([1.2, 3], gap="medium")
        with c[0]:
            if obj is not None and not e["resolved_at"]:
                st.button("Open in form", key="cf_q_open", type="primary", icon=":material/edit_document:", width="stretch",
                          on_click=open_in_form, args=(e, obj), help="Pre-fill the case report form with this record and its errors.")
            elif not e["resolved_at"]:
                st.caption("This entry is not a case object (the whole file or line could not be read), so it cannot be opened in "
                           "the form: fix the file and upload it again, then resolve this entry with a note.")
            if not e["resolved_at"]:
                st.text_input("Resolution note", key="cf_q_note", placeholder="e.g. file corrected and uploaded again")
                st.button("Mark resolved", key="cf_q_resolve", icon=":material/done_all:", on_click=_resolve, args=(qid,),
                          width="stretch")
        with c[1]:
            if text is None:
                st.caption("The payload was not kept (the case was withdrawn: consent withdrawn)." if e.get("payload_encoding") == "withheld"
                           else "No payload.")
            else:
                st.caption("The record as submitted" if obj is not None else "The payload as submitted")
                st.code(text if len(text) < 20_000 else text[:20_000] + "\n…", language="json" if e.get("payload_encoding") == "json" else None,
                        height=360 if text.count("\n") > 18 else "content")
