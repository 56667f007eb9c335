"""/submit: registry staff submit cases. A case report form (new cases, edits as the next revision,
corrections of quarantined records), batch upload of .json / .jsonl files, and the open quarantine.

Everything goes through :func:`orchestration.registry.landing.submit` and the one validator, like
``registry submit``; the form's logic (record <-> widgets, errors at their fields, reading the landing
zone) is in :mod:`dashboards.lib.case_form`. The page needs only ``$REGISTRY_HOME``: it works before
anything is published.
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from dashboards.lib import case_form as cf
from dashboards.lib import auth, data, ui
from orchestration.contract.validate import validate_record
from orchestration.registry.landing import ACCEPTED, DUPLICATE, QUARANTINED, REFUSED, quarantine_entries, resolve_quarantine, submit
from orchestration.config import Home

ui.ensure_navigation()  # keep: runs this page inside app.py on a fresh server (see its docstring)
USER = auth.guard("submit")
MY_SITES = USER.sites_submittable()  # None: any site (coordinator); site_staff: their sites, enforced by submit()

TABS = ("Case report form", "Batch upload", "Quarantine")
QUARANTINE_LIMIT = 1000  # entries listed in the Quarantine tab (newest first)
REF = cf.REF
S = st.session_state

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


# ----------------------------------------------------------------------------- widget state


def wkey(path: str) -> str:
    """Session key of a scalar field's widget (``patient.age_years`` -> ``cf-patient-age_years``)."""
    return "cf-" + path.replace(".", "-")


def rkey(lst: str, rid: int, field: str) -> str:
    """Session key of one field of a row (rows have stable ids, so removing one keeps the others)."""
    return f"cf-{lst}-{field}-{rid}"


def _rows(lst: str) -> list[int]:
    return S.setdefault("cf_rows", {}).setdefault(lst, [])


def _new_row_id() -> int:
    S["cf_next_row"] = S.get("cf_next_row", 0) + 1
    return S["cf_next_row"]


def _empty(kind: str) -> Any:
    """A widget's empty value. Widgets are emptied by assigning it: deleting the key from the session
    would leave the browser showing the old value."""
    return "" if kind == "text" else "unknown" if kind == "tri" else [] if kind.startswith("codes:") else None


def _set_row(lst: str, rid: int, row: dict[str, Any]) -> None:
    for f, kind in cf.ROWS[lst].items():
        v = row.get(f)
        S[rkey(lst, rid, f)] = _empty(kind) if v is None else v


def _load(state: dict[str, Any]) -> None:
    """Put a form state (see :mod:`dashboards.lib.case_form`) into the widgets. Only called before the
    widgets are drawn: at the top of a run or from a callback."""
    for lst, fields in cf.ROWS.items():  # old rows' widgets go away with their rows
        for rid in _rows(lst):
            for f in fields:
                S.pop(rkey(lst, rid, f), None)
    for path, kind in cf.SCALARS.items():
        v = state.get(path)
        S[wkey(path)] = _empty(kind) if v is None else v
    S["cf_rows"] = {}
    for lst in cf.ROWS:
        for row in state.get(lst) or []:
            rid = _new_row_id()
            _rows(lst).append(rid)
            _set_row(lst, rid, row)


def _gather() -> dict[str, Any]:
    """The form state from the widgets."""
    state: dict[str, Any] = {p: S.get(wkey(p)) for p in cf.SCALARS}
    for lst, fields in cf.ROWS.items():
        state[lst] = [{f: S.get(rkey(lst, rid, f)) for f in fields} for rid in _rows(lst)]
    return state


def _reset_flags() -> None:
    S["cf_checked"] = False
    S["cf_preview"] = False
    S["cf_blocked"] = 0


def _new_case(keep_site: bool = True) -> None:
    """An empty form for the next case; the site and source stay (coordinators enter many in a row)."""
    state = cf.blank_form()
    if keep_site:
        for p in ("site_id", "source"):
            state[p] = S.get(wkey(p)) or state[p]
    _load(state)
    S["cf_mode"] = {"kind": "new"}
    _reset_flags()


if wkey("revision") not in S:  # first visit, or back from another page (Streamlit forgot the widgets)
    saved = S.get("cf_saved")
    _load(saved if saved else cf.blank_form())
    S.setdefault("cf_mode", {"kind": "new"})


# ----------------------------------------------------------------------------- callbacks


def _add_row(lst: str) -> None:
    rid = _new_row_id()
    _rows(lst).append(rid)
    _set_row(lst, rid, cf.blank_row(lst))


def _remove_row(lst: str, rid: int) -> None:
    if rid in _rows(lst):
        _rows(lst).remove(rid)
    for f in cf.ROWS[lst]:
        S.pop(rkey(lst, rid, f), None)  # the row's widgets are not drawn again


def _analyte_changed(rid: int) -> None:
    analyte = S.get(rkey("labs", rid, "analyte"))
    S[rkey("labs", rid, "unit")] = cf.unit_after_analyte_change(analyte, S.get(rkey("labs", rid, "unit")))


def _kidney_changed() -> None:
    if S.get(wkey("kidney.status")) != "dialysis":
        S[wkey("kidney.dialysis_modality")] = None
        S[wkey("kidney.dialysis_vintage_months")] = None


def _vital_changed() -> None:
    if S.get(wkey("outcome.vital_status")) != "dead":
        S[wkey("outcome.cause_of_death")] = None


def _preview() -> None:
    S["cf_checked"] = True
    S["cf_preview"] = True
    S["cf_blocked"] = 0


def _submit() -> None:
    """Validate; when the record has no error, land it through the shared writer."""
    record = cf.form_to_record(_gather())
    errors = validate_record(record)
    S["cf_checked"] = True
    if errors:
        S["cf_blocked"] = len(errors)
        S["cf_receipt"] = None
        return
    S["cf_blocked"] = 0
    home = data.home()
    body = json.dumps(record, ensure_ascii=False, indent=2).encode("utf-8")
    mode = S.get("cf_mode") or {}
    if mode.get("kind") == "correct" and not _may_correct(mode.get("qid")):
        S["cf_receipt"] = None
        S["cf_q_msg"] = ("err", "This quarantine entry is not one of your sites' records.")
        return
    (r,) = submit(home, [(f"form:{record['case_id']}", body)], channel="form", allowed_sites=MY_SITES, user=USER.email)
    receipt = {
        "status": r.status, "case_id": r.case_id, "revision": r.revision, "quarantine_id": r.quarantine_id,
        "errors": [e.as_dict() for e in r.errors], "record": record, "batch_id": None, "resolved": None,
    }
    if r.status == ACCEPTED:
        receipt["batch_id"] = cf.batch_of(home, r.case_id, r.revision)
    if mode.get("kind") == "correct" and r.status in (ACCEPTED, DUPLICATE):
        note = f"corrected and resubmitted as {r.case_id} r{r.revision}" + (" (identical to the accepted record)" if r.status == DUPLICATE else "")
        resolve_quarantine(home, mode["qid"], note=note)
        receipt["resolved"] = mode["qid"]
    S["cf_receipt"] = receipt
    S["cf_toast"] = True
    if r.status in (ACCEPTED, DUPLICATE):
        _new_case()
    else:
        S["cf_preview"] = False


def _load_existing() -> None:
    cid = (S.get("cf_load_id") or "").strip()
    S["cf_load_msg"] = None
    if not cid:
        S["cf_load_msg"] = "Type the ID of a case in the registry."
        return
    home = data.home()
    rec = cf.latest_record(home, cid)
    if rec is not None and not USER.may_submit(rec.get("site_id")):  # another site's case: not even shown
        auth.audit("access_refused", page="/submit", case_id=cid)
        S["cf_load_msg"] = f"Case {cid} is not a case of your sites ({', '.join(sorted(MY_SITES or ()))})."
        return
    if rec is None:
        from orchestration.services.withdraw import withdrawn_case_ids

        S["cf_load_msg"] = (f"Case {cid} was withdrawn from the registry (consent withdrawn) and cannot be edited."
                            if cid in withdrawn_case_ids(home) else
                            f"There is no accepted case {cid} in the registry (case IDs are case-sensitive).")
        return
    state = cf.record_to_form(rec)
    latest = rec["revision"]
    state["revision"] = latest + 1
    _load(state)
    S["cf_mode"] = {"kind": "edit", "case_id": cid, "latest": latest, "baseline": cf.form_to_record(cf.record_to_form(rec)),
                    "notes": state.get("_notes") or []}
    _reset_flags()
    S["cf_receipt"] = None
    S["cf_load_id"] = ""


def _edit_again(case_id: str) -> None:
    S["cf_load_id"] = case_id
    _load_existing()


def _open_in_form(entry: dict[str, Any], record: Any) -> None:
    """Pre-fill the form with a quarantined record, with its errors at their fields."""
    state = cf.record_to_form(record)
    notes = list(state.get("_notes") or [])
    cid = record.get("case_id") if isinstance(record, dict) else None
    wanted = state["revision"]
    rev = cf.next_revision(data.home(), cid, wanted) if isinstance(cid, str) else wanted
    if rev != wanted:
        notes.append(("revision", f"set to {rev}: the registry already holds revision {rev - 1} of case {cid}"))
        state["revision"] = rev
    _load(state)
    S["cf_mode"] = {"kind": "correct", "qid": entry["quarantine_id"], "source_file": entry.get("source_file"),
                    "record": entry.get("record"), "errors": entry.get("errors") or [], "notes": notes}
    S["cf_checked"] = True
    S["cf_preview"] = False
    S["cf_blocked"] = 0
    S["cf_receipt"] = None
    S["cf_tab"] = TABS[0]


def _resubmit_as_next(receipt: dict[str, Any]) -> None:
    """After a revision conflict: the same form as the next revision, resolving the conflict's entry."""
    home = data.home()
    rev = cf.next_revision(home, receipt["case_id"], receipt["revision"])
    S[wkey("revision")] = rev
    S["cf_mode"] = {"kind": "correct", "qid": receipt["quarantine_id"], "source_file": f"form:{receipt['case_id']}", "record": 0,
                    "errors": receipt["errors"], "notes": [("revision", f"set to {rev}, the next revision of case {receipt['case_id']}")]}
    S["cf_receipt"] = None
    S["cf_checked"] = True


# ----------------------------------------------------------------------------- inline messages


def _msg(kind: str, lines: list[str], *, path: str | None = None, show_path: bool = True, at_field: bool = False) -> None:
    """Messages, each as ``path: message`` like ``registry submit`` prints them. Under a single widget
    (``at_field`` without ``show_path``) the path is left out of the text: it is in ``data-path`` (which
    marks the message as the field's) and in a tooltip."""
    icon = "⚠"
    for line in lines:
        text = html.escape(line, quote=False)
        if path and show_path and not line.startswith(path):  # (errors_by_field names a sub-path itself)
            body = f"<code>{html.escape(path, quote=False)}</code>: {text}"
        else:
            body = text
        attrs = f' data-path="{html.escape(path)}" title="{html.escape(path)}"' if path and at_field else ""
        st.markdown(f'<div class="cf-msg cf-{kind}"{attrs}>{icon} {body}</div>', unsafe_allow_html=True)


class Messages:
    """The errors (and warnings) of the current record, handed out to the widgets as they are drawn;
    what no widget took ends in the summary box at the top of the form."""

    def __init__(self, errors: dict[str, list[str]], warnings: dict[str, list[str]]):
        self.errors = {k: list(v) for k, v in errors.items()}
        self.warnings = {k: list(v) for k, v in warnings.items()}

    def show(self, path: str, *, show_path: bool = False) -> None:
        errs = self.errors.pop(path, [])
        if errs:
            _msg("err", errs, path=path, show_path=show_path, at_field=True)
        warns = self.warnings.pop(path, [])
        if warns:
            _msg("warn", warns, path=path, show_path=show_path, at_field=True)

    def has(self, path: str) -> bool:
        return path in self.errors or path in self.warnings

    def leftovers(self) -> list[str]:
        out = []
        for path, msgs in self.errors.items():
            out += [m if path == cf.SUMMARY else cf.cli_line(path, m) for m in msgs]
        return out


# ----------------------------------------------------------------------------- widgets


def text_field(m: Messages, path: str, label: str, *, required: bool = False, help: str | None = None,
               placeholder: str | None = None, disabled: bool = False, area: bool = False) -> None:
    if area:
        st.text_area(label, key=wkey(path), help=help, placeholder=placeholder, disabled=disabled, height=68, required=required)
    else:
        st.text_input(label, key=wkey(path), help=help, placeholder=placeholder, disabled=disabled, required=required)
    m.show(path)


def int_field(m: Messages, path: str, label: str, *, required: bool = False, help: str | None = None,
              placeholder: str | None = None, disabled: bool = False) -> None:
    st.number_input(label, key=wkey(path), value=None, step=1, format="%d", help=help, placeholder=placeholder,
                    disabled=disabled, required=required)
    m.show(path)


def float_field(m: Messages, path: str, label: str, *, help: str | None = None, placeholder: str | None = None) -> None:
    st.number_input(label, key=wkey(path), value=None, step=0.1, format="%g", help=help, placeholder=placeholder)
    m.show(path)


def _options(codes: list[str] | tuple[str, ...], current: Any) -> list[Any]:
    """A picker's options: the vocabulary, plus the current value when it is outside it (from a
    pre-filled record), so that it is shown with its error instead of vanishing."""
    opts = list(codes)
    if current is not None and current not in opts:
        opts.append(current)
    return opts


def code_field(m: Messages, path: str, vocabulary: str, label: str, *, required: bool = False, help: str | None = None,
               on_change=None, placeholder: str = "Choose…") -> None:
    opts = _options(REF.codes(vocabulary), S.get(wkey(path)))
    st.selectbox(label, opts, index=None, key=wkey(path), format_func=lambda c: cf.code_label(vocabulary, c),
                 help=help, placeholder=placeholder, on_change=on_change, required=required)
    m.show(path)


def tri_field(m: Messages, path: str, label: str, *, help: str | None = None) -> None:
    if S.get(wkey(path)) not in cf.TRI:
        S[wkey(path)] = "unknown"
    st.segmented_control(label, list(cf.TRI), key=wkey(path), format_func=cf.TRI_LABELS.get, required=True, help=help)
    m.show(path)


def section(title: str, icon: str, caption: str | None = None):
    box = st.container(border=True)
    box.markdown(f"##### {icon} {title}")
    if caption:
        box.caption(caption)
    return box


# ----------------------------------------------------------------------------- the form


DAY_HELP = "Whole days relative to day 0 (the first presentation to your centre for this illness); negative before day 0."


def _row_messages(m: Messages, lst: str, i: int) -> None:
    m.show(f"{lst}[{i}]", show_path=True)
    for f in cf.ROWS[lst]:
        m.show(f"{lst}[{i}].{f}", show_path=True)


def _remove_button(lst: str, rid: int, what: str) -> None:
    st.button("", key=f"cf_rm_{lst}_{rid}", icon=":material/delete:", help=f"Remove this {what}", type="tertiary",
              on_click=_remove_row, args=(lst, rid))


def _lab_rows(m: Messages) -> None:
    rows = _rows("labs")
    for i, rid in enumerate(rows):
        vis = "visible" if i == 0 else "collapsed"
        c = st.columns([3.2, 1.5, 1.9, 1.1, 1.3, 1.3, 0.45], vertical_alignment="bottom")
        analyte = S.get(rkey("labs", rid, "analyte"))
        with c[0]:
            st.selectbox("Analyte", _options(list(REF.analytes), analyte), index=None, key=rkey("labs", rid, "analyte"),
                         format_func=cf.analyte_label, placeholder="Choose analyte…", label_visibility=vis, required=True,
                         on_change=_analyte_changed, args=(rid,))
        with c[1]:
            st.number_input("Value", key=rkey("labs", rid, "value"), value=None, step=0.1, format="%g", label_visibility=vis, required=True,
                            placeholder="as reported", help="As reported by the laboratory, in the unit beside it." if i == 0 else None)
        with c[2]:
            unit = S.get(rkey("labs", rid, "unit"))
            accepted = cf.units_for(analyte)
            st.selectbox("Unit", _options(accepted, unit), index=None, key=rkey("labs", rid, "unit"),
                         placeholder="unit as reported" if analyte else "choose the analyte first",
                         disabled=analyte is None and unit is None, label_visibility=vis, required=True,
                         help="Only the units accepted for this analyte are offered." if i == 0 else None)
        with c[3]:
            st.number_input("Day", key=rkey("labs", rid, "day"), value=None, step=1, format="%d", label_visibility=vis,
                            placeholder="0", help=DAY_HELP + " Empty means day 0." if i == 0 else None)
        with c[4]:
            st.number_input("Ref. low", key=rkey("labs", rid, "ref_low"), value=None, step=0.1, format="%g", label_visibility=vis,
                            placeholder="optional", help="The laboratory's reference range, in the same unit. Empty: the analyte's default range is used." if i == 0 else None)
        with c[5]:
            st.number_input("Ref. high", key=rkey("labs", rid, "ref_high"), value=None, step=0.1, format="%g", label_visibility=vis,
                            placeholder="optional")
        with c[6]:
            _remove_button("labs", rid, "lab value")
        _row_messages(m, "labs", i)


def _organ_rows(m: Messages) -> None:
    for i, rid in enumerate(_rows("organs")):
        vis = "visible" if i == 0 else "collapsed"
        c = st.columns([3, 3, 0.45], vertical_alignment="bottom")
        with c[0]:
            st.selectbox("Organ", _options(REF.codes("organ"), S.get(rkey("organs", rid, "organ"))), index=None, required=True,
                         key=rkey("organs", rid, "organ"), format_func=lambda v: cf.code_label("organ", v), placeholder="Choose organ…",
                         label_visibility=vis)
        with c[1]:
            st.selectbox("Evidence", _options(REF.codes("evidence"), S.get(rkey("organs", rid, "evidence"))), index=None,
                         key=rkey("organs", rid, "evidence"), format_func=lambda v: cf.code_label("evidence", v),
                         placeholder="optional", label_visibility=vis)
        with c[2]:
            _remove_button("organs", rid, "organ")
        _row_messages(m, "organs", i)


def _lesion_rows(m: Messages) -> None:
    for i, rid in enumerate(_rows("lesions")):
        vis = "visible" if i == 0 else "collapsed"
        c = st.columns([2.2, 1.6, 4, 0.45], vertical_alignment="bottom")
        with c[0]:
            st.selectbox("Body site", _options(REF.codes("lesion_site"), S.get(rkey("lesions", rid, "site"))), index=None, required=True,
                         key=rkey("lesions", rid, "site"), format_func=lambda v: cf.code_label("lesion_site", v),
                         placeholder="Choose site…", label_visibility=vis,
                         help="Central: abdomen, breast, buttock, thigh, trunk. Peripheral: upper limb, hand, lower leg, foot, penis, face." if i == 0 else None)
        with c[1]:
            st.selectbox("Laterality", _options(REF.codes("laterality"), S.get(rkey("lesions", rid, "laterality"))), index=None,
                         key=rkey("lesions", rid, "laterality"), format_func=lambda v: cf.code_label("laterality", v),
                         placeholder="optional", label_visibility=vis)
        with c[2]:
            cur = S.get(rkey("lesions", rid, "features")) or []
            opts = list(REF.codes("lesion_feature")) + [x for x in cur if x not in REF.codes("lesion_feature")]
            st.multiselect("Features", opts, key=rkey("lesions", rid, "features"), format_func=lambda v: cf.code_label("lesion_feature", v),
                           placeholder="optional", label_visibility=vis)
        with c[3]:
            _remove_button("lesions", rid, "lesion")
        _row_messages(m, "lesions", i)


def _treatment_rows(m: Messages) -> None:
    for i, rid in enumerate(_rows("treatments")):
        vis = "visible" if i == 0 else "collapsed"
        c = st.columns([4, 1.5, 0.45], vertical_alignment="bottom")
        with c[0]:
            st.selectbox("Treatment", _options(REF.codes("treatment"), S.get(rkey("treatments", rid, "treatment"))),
                         index=None, required=True, key=rkey("treatments", rid, "treatment"), format_func=lambda v: cf.code_label("treatment", v),
                         placeholder="Choose treatment…", label_visibility=vis)
        with c[1]:
            st.number_input("Start day", key=rkey("treatments", rid, "day"), value=None, step=1, format="%d", label_visibility=vis,
                            placeholder="unknown", help=DAY_HELP if i == 0 else None)
        with c[2]:
            _remove_button("treatments", rid, "treatment")
        _row_messages(m, "treatments", i)


def _add_button(lst: str, label: str) -> None:
    st.button(label, key=f"cf_add_{lst}", icon=":material/add:", on_click=_add_row, args=(lst,))


def _notes_md(notes: list) -> str:
    """What loading a record into the form changed or left out, as a Markdown list."""
    if not notes:
        return ""
    return "\n\nWhat the form could not carry over as it was:\n" + "\n".join(f"- `{p}`: {n}" for p, n in notes)


def _mode_banner(mode: dict[str, Any]) -> None:
    kind = mode.get("kind")
    notes = _notes_md(mode.get("notes") or [])
    if kind == "edit":
        st.info(f"**Editing case {mode['case_id']}.** This form submits **revision {mode['latest'] + 1}**, which replaces "
                f"revision {mode['latest']} everywhere after the next build. Change what needs changing, then submit.{notes}",
                icon=":material/edit_note:")
    elif kind == "correct":
        where = f"`{mode.get('source_file')}`" + ("" if mode.get("record") is None else f", record {mode['record']}")
        reasons = "\n".join(f"- `{e['path']}`: {e['message']}" for e in mode.get("errors") or [])
        st.warning(f"**Correcting quarantined record `{mode['qid']}`** from {where}. It was quarantined because:\n\n{reasons}"
                   f"{notes}\n\nFix the fields marked below and submit. When the corrected record is accepted, the quarantine "
                   "entry is marked resolved (it is kept, with the note of this correction).", icon=":material/healing:")


def _receipt(rc: dict[str, Any]) -> None:
    status, cid, rev = rc["status"], rc["case_id"], rc["revision"]
    if status == ACCEPTED:
        resolved = f"\n\nQuarantine entry `{rc['resolved']}` is marked resolved." if rc.get("resolved") else ""
        st.success(f"**Accepted**: case **{cid}**, revision {rev}, landed in batch `{rc['batch_id']}`.\n\n"
                   "It will appear in the dashboards within about a minute, after the automatic rebuild (while `registry serve` "
                   f"runs; otherwise `registry build` publishes it).{resolved}", icon=":material/task_alt:")
    elif status == DUPLICATE:
        resolved = f" Quarantine entry `{rc['resolved']}` is marked resolved." if rc.get("resolved") else ""
        st.info(f"**Duplicate**: case **{cid}** revision {rev} is already in the registry with exactly this content, so nothing "
                f"changed.{resolved}", icon=":material/content_copy:")
    elif status == REFUSED:
        st.error(f"**Refused**: case **{cid}** was neither landed nor quarantined, because:", icon=":material/block:")
        for e in rc["errors"]:
            _msg("err", [e["message"]], path=e["path"])
    else:
        st.error(f"**Quarantined**: case **{cid}** revision {rev} was kept in quarantine as `{rc['quarantine_id']}`, because:",
                 icon=":material/block:")
        _msg("err", [e["message"] for e in rc["errors"] if e["path"] == "$"])
        for e in rc["errors"]:
            if e["path"] != "$":
                _msg("err", [e["message"]], path=e["path"])
    c = st.columns([1, 1, 3])
    if status in (ACCEPTED, DUPLICATE):
        c[0].button(f"Edit {cid} again", key="cf_edit_again", icon=":material/edit:", on_click=_edit_again, args=(cid,),
                    help="Load this case's latest revision into the form; it submits the next revision.")
    elif any(e["path"] == "revision" for e in rc["errors"]):
        c[0].button("Submit it as the next revision", key="cf_next_rev", icon=":material/upgrade:", on_click=_resubmit_as_next,
                    args=(rc,), type="primary", help="Keep the form as it is and submit it as the next revision of this case.")
    with st.expander("The record as submitted", icon=":material/data_object:"):
        st.code(json.dumps(rc["record"], ensure_ascii=False, indent=2), language="json")


@st.cache_data(max_entries=64, show_spinner=False, ttl=60)
def _latest_revision(root: str, case_id: str, index_sig: tuple) -> int | None:
    return cf.latest_revision(Home(Path(root)), case_id)


def _dir_sig(*dirs: Path) -> tuple:
    out = []
    for d in dirs:
        try:
            with os.scandir(d) as it:
                out += sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in it if e.is_file())
        except FileNotFoundError:
            pass
    return tuple(out)


def _warnings(home: Home, record: dict[str, Any], mode: dict[str, Any]) -> dict[str, list[str]]:
    """Not errors (they do not block), but worth knowing before submitting."""
    out: dict[str, list[str]] = {}
    cid, rev = record.get("case_id"), record.get("revision", 1)
    if isinstance(cid, str) and cid and isinstance(rev, int):
        latest = _latest_revision(str(home.root), cid, _dir_sig(home.landing_index))
        if latest is not None and rev <= latest:
            out["revision"] = [f"case {cid} already has revision {latest} in the registry: submitting revision {rev} is a duplicate if "
                               f"nothing differs, otherwise it is quarantined as a conflict. To change the case, load it with "
                               f"*Edit an existing case*: the form then submits revision {latest + 1}."]
    if mode.get("kind") == "edit" and cf.same_content(record, mode["baseline"]):
        out.setdefault("revision", []).append(f"nothing has changed since revision {mode['latest']} yet")
    return out


def case_report_form() -> None:
    home = data.home()
    mode = S.get("cf_mode") or {"kind": "new"}
    state = _gather()
    record = cf.form_to_record(state)
    errors = validate_record(record)
    checked = bool(S.get("cf_checked"))
    m = Messages(cf.errors_by_field(errors) if checked else {}, _warnings(home, record, mode) if checked else {})

    top = st.columns([3, 2], gap="medium")
    with top[0]:
        if mode.get("kind") == "new":
            st.markdown("**New case.** Fields marked *(required)* must be filled in; everything else is optional, and *unknown* "
                        "is always an answer. No names, record numbers or dates: every time is a number of days relative to "
                        "day 0, the first presentation to your centre for this illness.")
        _mode_banner(mode)
    with top[1]:
        with st.container(border=True):
            c = st.columns([3, 1.3], vertical_alignment="bottom")
            c[0].text_input("Edit an existing case", key="cf_load_id", placeholder="Case ID, e.g. LIT-AUTOPSY-002",
                            help="Loads the latest accepted revision into the form; submitting it adds the next revision.")
            c[1].button("Load", key="cf_btn_load", icon=":material/download:", on_click=_load_existing, width="stretch")
            if S.get("cf_load_msg"):
                _msg("err", [S["cf_load_msg"]])
            st.button("Start a new case", key="cf_btn_new", icon=":material/note_add:", on_click=_new_case, type="tertiary",
                      help="Empties the form (the site and source stay).")
    summary = st.container()

    editing = mode.get("kind") == "edit"
    with section("Case", ":material/badge:", "Who reports the case, and where it comes from."):
        c = st.columns([2, 1, 2, 2])
        with c[0]:
            text_field(m, "case_id", "Case ID", required=True, disabled=editing, placeholder="e.g. DE-AAC-0042",
                       help="Your site's stable ID for this case: 3 to 64 letters, digits, '.', '_' or '-'. Never a name or a record number.")
        with c[1]:
            int_field(m, "revision", "Revision", disabled=True,
                      help="Set for you: 1 for a new case, the latest revision + 1 when you edit a case or correct a conflict.")
        with c[2]:
            text_field(m, "site_id", "Site", required=True, placeholder="e.g. DE-AAC",
                       help="Your site's code: 2 to 32 capital letters, digits, '_' or '-'.")
        with c[3]:
            code_field(m, "source", "source", "Source", required=True,
                       help="Registry enrollment, chart review, a published case report, an autopsy report, or synthetic test data.")
        c = st.columns([1, 1, 4])
        with c[0]:
            int_field(m, "index_year", "Index year", placeholder="e.g. 2024", help="Calendar year of day 0 (the only date the registry keeps).")
        with c[1]:
            int_field(m, "onset_day", "Symptom onset (day)", placeholder="e.g. -30", help="Day of the first symptom, relative to day 0 (0 or negative).")
        with c[2]:
            text_field(m, "citation", "Citation", placeholder="For a published case report: authors, journal, year, DOI",
                       help="Up to 500 characters.")

    with section("Patient and kidney", ":material/person:"):
        status = S.get(wkey("kidney.status"))
        show_dialysis = status == "dialysis" or any(S.get(wkey(p)) is not None or m.has(p)
                                                    for p in ("kidney.dialysis_modality", "kidney.dialysis_vintage_months"))
        c = st.columns([1.25, 1.1, 1, 0.1, 1.5, 1.4, 1.2])
        with c[0]:
            int_field(m, "patient.age_years", "Age (years)", required=True, help="Age at day 0, whole years (0–120). Published as 90 for 90 or more.")
        with c[1]:
            code_field(m, "patient.sex", "sex", "Sex", required=True)
        with c[2]:
            float_field(m, "patient.bmi", "BMI (kg/m²)", placeholder="optional", help="Body-mass index, 10–90.")
        with c[4]:
            code_field(m, "kidney.status", "kidney_status", "Kidney status", required=True, on_change=_kidney_changed,
                       help="Dialysis: chronic dialysis for end-stage disease. Emergency dialysis for AKI is a treatment, not a status.")
        if show_dialysis:
            with c[5]:
                code_field(m, "kidney.dialysis_modality", "dialysis_modality", "Dialysis modality", placeholder="optional")
            with c[6]:
                int_field(m, "kidney.dialysis_vintage_months", "Vintage (months)", placeholder="optional",
                          help="Months on dialysis before day 0.")
        else:
            with c[5]:
                st.caption("Dialysis modality and vintage are asked when the kidney status is *Dialysis*.")

    for group, vocab, title, icon, caption in (
        ("comorbidities", "comorbidity", "Comorbidities", ":material/medical_information:",
         "Yes, no, or unknown for each: unknown is not no. Only the answered ones are submitted."),
        ("exposures", "exposure", "Exposures before day 0", ":material/medication:",
         "Drugs and treatments the patient received before day 0. Yes, no, or unknown for each."),
    ):
        with section(title, icon, caption):
            m.show(group)
            paths = cf.tri_paths(group)
            cols = st.columns(4)
            for i, p in enumerate(paths):
                with cols[i % 4]:
                    tri_field(m, p, cf.code_label(vocab, p.split(".", 1)[1]))

    with section("Diagnosis and skin lesions", ":material/stethoscope:"):
        c = st.columns([1, 1, 2])
        with c[0]:
            code_field(m, "diagnosis.basis", "diagnosis_basis", "Basis of diagnosis", required=True,
                       help="Biopsy, autopsy, or clinical (without histology).")
        with c[1]:
            int_field(m, "diagnosis.day", "Diagnosis day", placeholder="optional", help=DAY_HELP)
        st.markdown("**Skin lesions**")
        m.show("lesions")
        _lesion_rows(m)
        _add_button("lesions", "Add lesion")

    with section("Organs with calcific vasculopathy", ":material/pulmonology:",
                 "At least one. Cutaneous: skin, subcutaneous fat, skeletal muscle; everything else is visceral. Each organ once."):
        m.show("organs")
        _organ_rows(m)
        _add_button("organs", "Add organ")

    with section("Laboratory values", ":material/biotech:",
                 "Values and units as the laboratory reported them: the unit picker offers the units accepted for the analyte; "
                 "conversion to the canonical unit happens in the registry."):
        m.show("labs")
        _lab_rows(m)
        _add_button("labs", "Add lab value")

    with section("Treatments", ":material/vaccines:"):
        m.show("treatments")
        _treatment_rows(m)
        _add_button("treatments", "Add treatment")

    with section("Outcome", ":material/monitor_heart:"):
        vital = S.get(wkey("outcome.vital_status"))
        show_cause = vital == "dead" or S.get(wkey("outcome.cause_of_death")) is not None or m.has("outcome.cause_of_death")
        c = st.columns(3)
        with c[0]:
            code_field(m, "outcome.vital_status", "vital_status", "Vital status", required=True, on_change=_vital_changed,
                       help="At the last contact (or death).")
        with c[1]:
            int_field(m, "outcome.followup_days", "Follow-up (days)", placeholder="required unless unknown",
                      help="Day 0 to death or last contact. Required unless the vital status is unknown.")
        with c[2]:
            if show_cause:
                code_field(m, "outcome.cause_of_death", "cause_of_death", "Cause of death", placeholder="optional")
            else:
                st.caption("The cause of death is asked when the vital status is *Dead*.")
        c = st.columns(3)
        with c[0]:
            tri_field(m, "outcome.autopsy", "Autopsy", help="Was an autopsy performed?")
        with c[1]:
            code_field(m, "outcome.wound_healing", "wound_healing", "Wound healing", placeholder="optional",
                       help="Healing of the calciphylaxis wounds at the last contact.")

    # ---- preview, submit, receipt
    st.markdown("")
    c = st.columns([1, 1, 4], vertical_alignment="center")
    c[0].button("Preview", key="cf_btn_preview", icon=":material/visibility:", on_click=_preview, width="stretch",
                help="Check the record against the contract and show it as it will be submitted.")
    c[1].button("Submit", key="cf_btn_submit", icon=":material/send:", type="primary", on_click=_submit, width="stretch",
                help="Validate and land the record (the same checks and landing zone as `registry submit`).")
    if checked:
        c[2].caption(f":red[**{len(errors)} problem{'s' if len(errors) != 1 else ''}**]: submitting is blocked until they are fixed."
                     if errors else ":green[**No problems.**] The record passes the same checks as `registry submit`.")
    if S.get("cf_blocked"):
        st.error(f"**Not submitted**: fix the {S['cf_blocked']} problem{'s' if S['cf_blocked'] != 1 else ''} marked in the form. "
                 "Nothing was sent to the registry.", icon=":material/block:")
    if S.get("cf_preview"):
        with st.container(border=True):
            st.markdown("##### :material/preview: Preview")
            if errors:
                st.error(f"**{len(errors)} problem{'s' if len(errors) != 1 else ''}**, in the words of `registry submit` "
                         "(each is also marked at its field):", icon=":material/error:")
                for e in errors:
                    _msg("err", [e.message], path=e.path)
            else:
                st.success("**Ready to submit**: no problems. This is the record exactly as it will be submitted.",
                           icon=":material/check_circle:")
            st.code(json.dumps(record, ensure_ascii=False, indent=2), language="json", height=480 if len(str(record)) > 900 else "content")
    rc = S.get("cf_receipt")
    if rc:
        _receipt(rc)
        if S.pop("cf_toast", False):
            st.toast(f"{rc['status'].capitalize()}: {rc['case_id']} r{rc['revision']}",
                     icon=":material/task_alt:" if rc["status"] == ACCEPTED else ":material/info:")

    leftovers = m.leftovers()
    if checked and errors:
        with summary:
            st.error(f"**{len(errors)} problem{'s' if len(errors) != 1 else ''}** — each is marked at its field below."
                     + (" These have no field of their own:" if leftovers else ""), icon=":material/error:")
            _msg("err", leftovers)
    S["cf_saved"] = _gather()


# ----------------------------------------------------------------------------- batch upload


def _submit_batch() -> None:
    n = S.get("cf_upload_n", 0)
    files = S.get(f"cf_upload_{n}") or []
    if not files:
        return
    receipts = submit(data.home(), [(f.name, f.getvalue()) for f in files], channel="upload", allowed_sites=MY_SITES, user=USER.email)
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
        st.error(f"**{len(refused):,} record{'s were' if len(refused) != 1 else ' was'} refused** (neither landed nor quarantined): "
                 + "; ".join(str(x) for x in refused["reasons"].head(3)), icon=":material/block:")
    if counts.get(QUARANTINED, 0):
        st.info("Quarantined records wait in the **Quarantine** tab: open one in the form, fix it, and resubmit.",
                icon=":material/healing:")


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
        except ValueError:
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


def _may_correct(qid: str | None) -> bool:
    """May this user see and correct quarantine entry ``qid`` (its record's site is one of theirs)?"""
    if MY_SITES is None:
        return True
    home = data.home()
    entries = _entries(str(home.root), _dir_sig(home.quarantine_batches, home.quarantine_resolutions))
    return any(e["quarantine_id"] == qid and USER.may_correct(e) for e in entries)


def _resolve(qid: str) -> None:
    if not _may_correct(qid):
        S["cf_q_msg"] = ("err", "This quarantine entry is not one of your sites' records.")
        return
    note = (S.get("cf_q_note") or "").strip()
    if not note:
        S["cf_q_msg"] = ("err", "Write a note first: why is this entry resolved? (It is kept with the note.)")
        return
    resolve_quarantine(data.home(), qid, note=note)
    S["cf_q_note"] = ""
    S["cf_q_msg"] = ("ok", f"Entry {qid} is marked resolved (it is kept, with your note).")


def quarantine() -> None:
    home = data.home()
    entries = _entries(str(home.root), _dir_sig(home.quarantine_batches, home.quarantine_resolutions))
    if MY_SITES is not None:  # site_staff: only the records of their sites (read from each record's site_id)
        entries = [e for e in entries if USER.may_correct(e)]
        st.caption(f"Quarantined records of your sites: {', '.join(sorted(MY_SITES))}.")
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
                       format_func=lambda q: f"{q} · {by_id[q]['case_id'] or 'no case ID'} · {by_id[q]['source_file']}")
    e = by_id[qid]
    obj, text = _payload(e)
    with st.container(border=True):
        where = f"`{e['source_file']}`" + ("" if e["record"] is None else f", record {e['record']}")
        st.markdown(f"##### {e['case_id'] or 'Record without a case ID'}  \n{where} · quarantined "
                    f"{e['quarantined_at'][:19].replace('T', ' ')} UTC · `{qid}`")
        st.markdown(f"**{len(e['errors'])} reason{'s' if len(e['errors']) != 1 else ''}**")
        for x in e["errors"]:
            _msg("err", [x["message"]], path=x["path"])
        if e["resolved_at"]:
            st.success(f"Resolved {e['resolved_at'][:19].replace('T', ' ')} UTC: {e['resolution']}", icon=":material/check_circle:")
        c = st.columns([1.2, 3], gap="medium")
        with c[0]:
            if obj is not None and not e["resolved_at"]:
                st.button("Open in form", key="cf_q_open", type="primary", icon=":material/edit_document:", width="stretch",
                          on_click=_open_in_form, args=(e, obj), help="Pre-fill the case report form with this record and its errors.")
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


# ----------------------------------------------------------------------------- page

st.title("Submit cases")
st.caption("For registry staff: report a case in the form, upload files of cases, and correct quarantined records.")
st.info("Accepted records land in the registry at once and appear in the dashboards within about a minute, after the automatic "
        "rebuild that the Dagster sensor starts while `registry serve` runs (otherwise `registry build` publishes them). "
        "The form, the batch upload and `registry submit` share one validator and one landing zone.",
        icon=":material/info:")

form_tab, batch_tab, q_tab = st.tabs(list(TABS), key="cf_tab", on_change="rerun")
with form_tab:
    case_report_form()
with batch_tab:
    batch_upload()
with q_tab:
    quarantine()
