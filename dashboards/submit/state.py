"""The /submit page's session state: widget keys of the form, loading a record into the form and reading it back,
and the callbacks of the form's buttons (submit, edit an existing case, open a quarantined record)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboards.lib import auth, data
from dashboards.lib import case_form as cf
from orchestration.contract.validate import validate_record
from orchestration.registry.access import AccessDenied
from orchestration.registry.landing import ACCEPTED, DUPLICATE, latest_record, next_revision
from orchestration.registry.withdrawals import is_withdrawn, withdrawn_case_ids
from orchestration.services import quarantine as quarantine_service

TABS = ("Case report form", "Batch upload", "Quarantine")
QUARANTINE_LIMIT = 1000  # entries listed in the Quarantine tab (newest first)
REF = cf.REF
S = st.session_state



# ----------------------------------------------------------------------------- widget state


def wkey(path: str) -> str:
    """Session key of a scalar field's widget (``patient.age_years`` -> ``cf-patient-age_years``)."""
    return "cf-" + path.replace(".", "-")


def rkey(lst: str, rid: int, field: str) -> str:
    """Session key of one field of a row (rows have stable ids, so removing one keeps the others)."""
    return f"cf-{lst}-{field}-{rid}"


def row_ids(lst: str) -> list[int]:
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
        for rid in row_ids(lst):
            for f in fields:
                S.pop(rkey(lst, rid, f), None)
    for path, kind in cf.SCALARS.items():
        v = state.get(path)
        S[wkey(path)] = _empty(kind) if v is None else v
    S["cf_rows"] = {}
    for lst in cf.ROWS:
        for row in state.get(lst) or []:
            rid = _new_row_id()
            row_ids(lst).append(rid)
            _set_row(lst, rid, row)


def gather() -> dict[str, Any]:
    """The form state from the widgets."""
    state: dict[str, Any] = {p: S.get(wkey(p)) for p in cf.SCALARS}
    for lst, fields in cf.ROWS.items():
        state[lst] = [{f: S.get(rkey(lst, rid, f)) for f in fields} for rid in row_ids(lst)]
    return state


def _reset_flags() -> None:
    S["cf_checked"] = False
    S["cf_preview"] = False
    S["cf_blocked"] = 0


def new_case(keep_site: bool = True) -> None:
    """An empty form for the next case; the site and source stay (coordinators enter many in a row)."""
    state = cf.blank_form()
    if keep_site:
        for p in ("site_id", "source"):
            state[p] = S.get(wkey(p)) or state[p]
    _load(state)
    S["cf_mode"] = {"kind": "new"}
    _reset_flags()


def restore() -> None:
    """On every run of the page: on the first visit, or back from another page (Streamlit forgot the
    widgets), put the saved form (or a blank one) back."""
    if wkey("revision") not in S:
        saved = S.get("cf_saved")
        _load(saved if saved else cf.blank_form())
        S.setdefault("cf_mode", {"kind": "new"})


# ----------------------------------------------------------------------------- callbacks


def add_row(lst: str) -> None:
    rid = _new_row_id()
    row_ids(lst).append(rid)
    _set_row(lst, rid, cf.blank_row(lst))


def remove_row(lst: str, rid: int) -> None:
    if rid in row_ids(lst):
        row_ids(lst).remove(rid)
    for f in cf.ROWS[lst]:
        S.pop(rkey(lst, rid, f), None)  # the row's widgets are not drawn again


def analyte_changed(rid: int) -> None:
    analyte = S.get(rkey("labs", rid, "analyte"))
    S[rkey("labs", rid, "unit")] = cf.unit_after_analyte_change(analyte, S.get(rkey("labs", rid, "unit")))


def kidney_changed() -> None:
    if S.get(wkey("kidney.status")) != "dialysis":
        S[wkey("kidney.dialysis_modality")] = None
        S[wkey("kidney.dialysis_vintage_months")] = None


def vital_changed() -> None:
    if S.get(wkey("outcome.vital_status")) != "dead":
        S[wkey("outcome.cause_of_death")] = None


def preview() -> None:
    S["cf_checked"] = True
    S["cf_preview"] = True
    S["cf_blocked"] = 0


def submit_form() -> None:
    """Validate; when the record has no error, land it through the shared writer."""
    record = cf.form_to_record(gather())
    errors = validate_record(record)
    S["cf_checked"] = True
    if errors:
        S["cf_blocked"] = len(errors)
        S["cf_receipt"] = None
        return
    S["cf_blocked"] = 0
    mode = S.get("cf_mode") or {}
    qid = mode["qid"] if mode.get("kind") == "correct" else None
    try:  # site_staff: another site's entry or record is refused by the use case itself
        c = quarantine_service.correct(data.home(), qid, record, channel="form", source=f"form:{record['case_id']}",
                                       allowed_sites=auth.submit_sites(), user=auth.current_email())
    except AccessDenied as exc:
        auth.audit("access_refused", page="/submit", quarantine_id=qid)
        S["cf_receipt"] = {"status": "refused", "case_id": record.get("case_id"), "revision": record.get("revision"),
                           "quarantine_id": None, "errors": [{"path": "site_id", "message": str(exc)}], "record": record,
                           "batch_id": None, "resolved": None}
        return
    r = c.receipt
    S["cf_receipt"] = {
        "status": r.status, "case_id": r.case_id, "revision": r.revision, "quarantine_id": r.quarantine_id,
        "errors": [e.as_dict() for e in r.errors], "record": record, "batch_id": c.batch_id, "resolved": c.resolved,
    }
    S["cf_toast"] = True
    if r.status in (ACCEPTED, DUPLICATE):
        new_case()
    else:
        S["cf_preview"] = False


def load_existing() -> None:
    cid = (S.get("cf_load_id") or "").strip()
    S["cf_load_msg"] = None
    if not cid:
        S["cf_load_msg"] = "Type the ID of a case in the registry."
        return
    home = data.home()
    rec = latest_record(home, cid)
    if rec is not None and not auth.current().may_submit(rec.get("site_id")):  # another site's case: not even shown
        auth.audit("access_refused", page="/submit", case_id=cid)
        S["cf_load_msg"] = f"Case {cid} is not a case of your sites ({', '.join(sorted(auth.submit_sites() or ()))})."
        return
    if rec is None:
        S["cf_load_msg"] = (f"Case {cid} was withdrawn from the registry (consent withdrawn) and cannot be edited."
                            if is_withdrawn(cid, withdrawn_case_ids(home)) else
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


def edit_again(case_id: str) -> None:
    S["cf_load_id"] = case_id
    load_existing()


def open_in_form(entry: dict[str, Any], record: Any) -> None:
    """Pre-fill the form with a quarantined record, with its errors at their fields."""
    state = cf.record_to_form(record)
    notes = list(state.get("_notes") or [])
    cid = record.get("case_id") if isinstance(record, dict) else None
    wanted = state["revision"]
    rev = next_revision(data.home(), cid, wanted) if isinstance(cid, str) else wanted
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


def resubmit_as_next(receipt: dict[str, Any]) -> None:
    """After a revision conflict: the same form as the next revision, resolving the conflict's entry."""
    home = data.home()
    rev = next_revision(home, receipt["case_id"], receipt["revision"])
    S[wkey("revision")] = rev
    S["cf_mode"] = {"kind": "correct", "qid": receipt["quarantine_id"], "source_file": f"form:{receipt['case_id']}", "record": 0,
                    "errors": receipt["errors"], "notes": [("revision", f"set to {rev}, the next revision of case {receipt['case_id']}")]}
    S["cf_receipt"] = None
    S["cf_checked"] = True
