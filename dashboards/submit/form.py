"""The case report form: vocabulary pickers, unit picker limited to the analyte's accepted units, tri-state facts,
errors at their fields in the CLI's words, preview and receipt."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import streamlit as st

from dashboards.lib import case_form as cf
from dashboards.lib import data
from dashboards.lib.text import lit
from dashboards.submit.state import (
    REF,
    S,
    add_row,
    analyte_changed,
    edit_again,
    gather,
    kidney_changed,
    load_existing,
    new_case,
    preview,
    remove_row,
    resubmit_as_next,
    rkey,
    row_ids,
    submit_form,
    vital_changed,
    wkey,
)
from orchestration.config import Home
from orchestration.contract.validate import validate_record
from orchestration.registry.landing import ACCEPTED, DUPLICATE, REFUSED, latest_revision

# ----------------------------------------------------------------------------- inline messages


def message(kind: str, lines: list[str], *, path: str | None = None, show_path: bool = True, at_field: bool = False) -> None:
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
            message("err", errs, path=path, show_path=show_path, at_field=True)
        warns = self.warnings.pop(path, [])
        if warns:
            message("warn", warns, path=path, show_path=show_path, at_field=True)

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
              on_click=remove_row, args=(lst, rid))


def _lab_rows(m: Messages) -> None:
    for i, rid in enumerate(row_ids("labs")):
        vis = "visible" if i == 0 else "collapsed"
        c = st.columns([3.2, 1.5, 1.9, 1.1, 1.3, 1.3, 0.45], vertical_alignment="bottom")
        analyte = S.get(rkey("labs", rid, "analyte"))
        with c[0]:
            st.selectbox("Analyte", _options(list(REF.analytes), analyte), index=None, key=rkey("labs", rid, "analyte"),
                         format_func=cf.analyte_label, placeholder="Choose analyte…", label_visibility=vis, required=True,
                         on_change=analyte_changed, args=(rid,))
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
    for i, rid in enumerate(row_ids("organs")):
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
    for i, rid in enumerate(row_ids("lesions")):
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
    for i, rid in enumerate(row_ids("treatments")):
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
    st.button(label, key=f"cf_add_{lst}", icon=":material/add:", on_click=add_row, args=(lst,))


def _notes_md(notes: list) -> str:
    """What loading a record into the form changed or left out, as a Markdown list."""
    if not notes:
        return ""
    return "\n\nWhat the form could not carry over as it was:\n" + "\n".join(f"- {lit(p)}: {n}" for p, n in notes)


def _mode_banner(mode: dict[str, Any]) -> None:
    kind = mode.get("kind")
    notes = _notes_md(mode.get("notes") or [])
    if kind == "edit":
        st.info(f"**Editing case {lit(mode['case_id'])}.** This form submits **revision {mode['latest'] + 1}**, which replaces "
                f"revision {mode['latest']} everywhere after the next build. Change what needs changing, then submit.{notes}",
                icon=":material/edit_note:")
    elif kind == "correct":
        where = lit(mode.get("source_file")) + ("" if mode.get("record") is None else f", record {lit(mode['record'])}")
        reasons = "\n".join(f"- {lit(e['path'])}: {lit(e['message'], limit=500)}" for e in mode.get("errors") or [])
        st.warning(f"**Correcting quarantined record** {lit(mode['qid'])} from {where}. It was quarantined because:\n\n{reasons}"
                   f"{notes}\n\nFix the fields marked below and submit. When the corrected record is accepted, the quarantine "
                   "entry is marked resolved (it is kept, with the note of this correction).", icon=":material/healing:")


def _receipt(rc: dict[str, Any]) -> None:
    status, cid, rev = rc["status"], rc["case_id"], rc["revision"]
    if status == ACCEPTED:
        resolved = f"\n\nQuarantine entry {lit(rc['resolved'])} is marked resolved." if rc.get("resolved") else ""
        st.success(f"**Accepted**: case {lit(cid)}, revision {rev}, landed in batch {lit(rc['batch_id'])}.\n\n"
                   "It will appear in the dashboards usually within seconds, after the automatic rebuild (while `registry serve` "
                   f"runs; a big batch takes longer; otherwise `registry build` publishes it).{resolved}", icon=":material/task_alt:")
    elif status == DUPLICATE:
        resolved = f" Quarantine entry {lit(rc['resolved'])} is marked resolved." if rc.get("resolved") else ""
        st.info(f"**Duplicate**: case {lit(cid)} revision {rev} is already in the registry with exactly this content, so nothing "
                f"changed.{resolved}", icon=":material/content_copy:")
    elif status == REFUSED:
        st.error(f"**Refused**: case **{cid}** was neither landed nor quarantined, because:", icon=":material/block:")
        for e in rc["errors"]:
            message("err", [e["message"]], path=e["path"])
    else:
        st.error(f"**Quarantined**: case {lit(cid)} revision {rev} was kept in quarantine as {lit(rc['quarantine_id'])}, because:",
                 icon=":material/block:")
        message("err", [e["message"] for e in rc["errors"] if e["path"] == "$"])
        for e in rc["errors"]:
            if e["path"] != "$":
                message("err", [e["message"]], path=e["path"])
    c = st.columns([1, 1, 3])
    if status in (ACCEPTED, DUPLICATE):
        c[0].button(f"Edit {cid} again", key="cf_edit_again", icon=":material/edit:", on_click=edit_again, args=(cid,),
                    help="Load this case's latest revision into the form; it submits the next revision.")
    elif any(e["path"] == "revision" for e in rc["errors"]):
        c[0].button("Submit it as the next revision", key="cf_next_rev", icon=":material/upgrade:", on_click=resubmit_as_next,
                    args=(rc,), type="primary", help="Keep the form as it is and submit it as the next revision of this case.")
    with st.expander("The record as submitted", icon=":material/data_object:"):
        st.code(json.dumps(rc["record"], ensure_ascii=False, indent=2), language="json")


@st.cache_data(max_entries=64, show_spinner=False, ttl=60)
def _latest_revision(root: str, case_id: str, index_sig: tuple) -> int | None:
    return latest_revision(Home(Path(root)), case_id)


def dir_sig(*dirs: Path) -> tuple:
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
        latest = _latest_revision(str(home.root), cid, dir_sig(home.landing_index))
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
    state = gather()
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
            c[1].button("Load", key="cf_btn_load", icon=":material/download:", on_click=load_existing, width="stretch")
            if S.get("cf_load_msg"):
                message("err", [S["cf_load_msg"]])
            st.button("Start a new case", key="cf_btn_new", icon=":material/note_add:", on_click=new_case, type="tertiary",
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
            code_field(m, "kidney.status", "kidney_status", "Kidney status", required=True, on_change=kidney_changed,
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
            code_field(m, "outcome.vital_status", "vital_status", "Vital status", required=True, on_change=vital_changed,
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
    c[0].button("Preview", key="cf_btn_preview", icon=":material/visibility:", on_click=preview, width="stretch",
                help="Check the record against the contract and show it as it will be submitted.")
    c[1].button("Submit", key="cf_btn_submit", icon=":material/send:", type="primary", on_click=submit_form, width="stretch",
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
                    message("err", [e.message], path=e.path)
            else:
                st.success("**Ready to submit**: no problems. This is the record exactly as it will be submitted.",
                           icon=":material/check_circle:")
            st.code(json.dumps(record, ensure_ascii=False, indent=2), language="json", height=480 if len(str(record)) > 900 else "content")
    rc = S.get("cf_receipt")
    if rc:
        _receipt(rc)
        if S.pop("cf_toast", False):
            st.toast(f"{rc['status'].capitalize()}: {lit(rc['case_id'])} r{rc['revision']}",
                     icon=":material/task_alt:" if rc["status"] == ACCEPTED else ":material/info:")

    leftovers = m.leftovers()
    if checked and errors:
        with summary:
            st.error(f"**{len(errors)} problem{'s' if len(errors) != 1 else ''}** — each is marked at its field below."
                     + (" These have no field of their own:" if leftovers else ""), icon=":material/error:")
            message("err", leftovers)
    S["cf_saved"] = gather()
