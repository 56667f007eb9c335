"""The logic of the case report form on ``/submit``, with no Streamlit in it (so it is tested directly).

The form's state is a plain dict keyed by the **JSON path** of each field, so that a validator error
lands on its widget without any translation:

* scalars: ``"case_id"``, ``"patient.age_years"``, ``"kidney.status"``, ``"outcome.autopsy"``, ...
* tri-state facts: ``"comorbidities.diabetes"`` -> ``"yes"`` / ``"no"`` / ``"unknown"``
* rows: ``"labs"``, ``"lesions"``, ``"organs"``, ``"treatments"`` -> lists of dicts (one per row, in order,
  so row *i* of the form is ``labs[i]`` of the record and of its errors)

:func:`form_to_record` builds a case record v1 from that state, :func:`record_to_form` goes back
(pre-filling from a quarantined payload or from the latest accepted revision, :func:`latest_record`),
and :func:`errors_by_field` places each error of :func:`orchestration.contract.validate.validate_record`
at its widget. Submitting goes through :func:`orchestration.registry.landing.submit`, the writer that
``registry submit`` and batch upload use too: one validator, one landing zone.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from typing import Any, Iterable

import orjson

from dashboards.lib.labels import value_label
from orchestration.config import REFERENCE_DIR
from orchestration.contract.model import CaseRecord
from orchestration.contract.reference import load, unit_key
from orchestration.contract.validate import Error, show

REF = load()

SUMMARY = "$"  # errors_by_field: errors that have no widget of their own
TRI = ("yes", "no", "unknown")
TRI_LABELS = {"yes": "Yes", "no": "No", "unknown": "Unknown"}

# --------------------------------------------------------------------------- fields

#: Scalar fields in record order: path -> kind. Kinds: text, int, float, tri, or "code:<vocabulary>".
SCALARS: dict[str, str] = {
    "case_id": "text",
    "revision": "int",
    "site_id": "text",
    "source": "code:source",
    "citation": "text",
    "index_year": "int",
    "onset_day": "int",
    "patient.age_years": "int",
    "patient.sex": "code:sex",
    "patient.bmi": "float",
    "kidney.status": "code:kidney_status",
    "kidney.dialysis_modality": "code:dialysis_modality",
    "kidney.dialysis_vintage_months": "int",
    **{f"comorbidities.{c}": "tri" for c in REF.codes("comorbidity")},
    **{f"exposures.{c}": "tri" for c in REF.codes("exposure")},
    "diagnosis.basis": "code:diagnosis_basis",
    "diagnosis.day": "int",
    "outcome.vital_status": "code:vital_status",
    "outcome.followup_days": "int",
    "outcome.cause_of_death": "code:cause_of_death",
    "outcome.autopsy": "tri",
    "outcome.wound_healing": "code:wound_healing",
}

#: Row lists: list -> {field: kind}. Kinds as above, plus "codes:<vocabulary>" (several) and "analyte".
ROWS: dict[str, dict[str, str]] = {
    "lesions": {"site": "code:lesion_site", "laterality": "code:laterality", "features": "codes:lesion_feature"},
    "organs": {"organ": "code:organ", "evidence": "code:evidence"},
    "labs": {"analyte": "analyte", "value": "float", "unit": "unit", "day": "int", "ref_low": "float", "ref_high": "float"},
    "treatments": {"treatment": "code:treatment", "day": "int"},
}

#: Top-level order of a record (the model's), for a tidy preview.
RECORD_ORDER = tuple(CaseRecord.model_fields)
#: Objects the contract requires: always present in a record built by the form, so that a missing
#: field inside them is reported at its own widget (``patient.age_years``), not at the object.
REQUIRED_OBJECTS = ("patient", "kidney", "diagnosis", "outcome")
#: Paths shown as a section of the form (list-level errors such as "must list at least one organ").
SECTIONS = frozenset(ROWS)

_ROW_PATH = re.compile(r"^(lesions|organs|labs|treatments)\[(\d+)\](?:\.([A-Za-z0-9_]+))?(?:\[\d+\])?$")


def tri_paths(group: str) -> list[str]:
    return [p for p in SCALARS if p.startswith(group + ".") and SCALARS[p] == "tri"]


# --------------------------------------------------------------------------- labels

#: Readable names the seed's labels spell awkwardly (acronyms, vitamins); everything else comes from
#: ``seeds/reference/vocabularies.csv`` through :func:`dashboards.lib.labels.value_label`.
_LABEL_FIXES = {
    ("treatment", "iv_hydration"): "IV hydration",
    ("treatment", "vitamin_k"): "Vitamin K",
    ("exposure", "active_vitamin_d"): "Active vitamin D",
    ("exposure", "nutritional_vitamin_d"): "Nutritional vitamin D",
    ("exposure", "calcium_based_binder"): "Calcium-based binder",
    ("comorbidity", "hyperparathyroidism_primary"): "Hyperparathyroidism, primary",
    ("comorbidity", "hyperparathyroidism_secondary"): "Hyperparathyroidism, secondary",
    ("comorbidity", "hyperparathyroidism_tertiary"): "Hyperparathyroidism, tertiary",
    ("kidney_status", "ckd"): "CKD, not on dialysis",
    ("kidney_status", "aki"): "AKI (acute kidney injury)",
    ("kidney_status", "dialysis"): "Dialysis (chronic)",
    ("kidney_status", "transplant"): "Kidney transplant",
}


@functools.lru_cache(maxsize=1)
def vocabulary_labels() -> dict[tuple[str, str], str]:
    with (REFERENCE_DIR / "vocabularies.csv").open(newline="", encoding="utf-8") as f:
        out = {(r["vocabulary"], r["code"]): r["label"] for r in csv.DictReader(f) if r.get("label")}
    out.update(_LABEL_FIXES)
    return out


def code_label(vocabulary: str, code: Any) -> str:
    """The readable label of one code of a vocabulary (a code outside it is shown as typed)."""
    if code is None:
        return "–"
    if vocabulary not in REF.vocab or code not in REF.codes(vocabulary):
        return f"{code} (not accepted)"
    return value_label(vocabulary, code, vocabulary_labels())


def analyte_label(code: Any) -> str:
    a = REF.analytes.get(code) if isinstance(code, str) else None
    return a.label if a else f"{code} (not accepted)"


def units_for(analyte: Any) -> list[str]:
    """The units accepted for an analyte, in the reference's spelling (none for an unknown analyte)."""
    a = REF.analytes.get(analyte) if isinstance(analyte, str) else None
    return [u.unit for u in a.units] if a else []


def display_unit(analyte: Any, unit: Any) -> Any:
    """``unit`` in the reference's spelling when it is accepted for ``analyte`` (``umol/l`` ->
    ``µmol/L``: the same unit by the contract's matching rules), else unchanged."""
    a = REF.analytes.get(analyte) if isinstance(analyte, str) else None
    if a is None or not isinstance(unit, str):
        return unit
    u = a.by_key.get(unit_key(unit))
    return u.unit if u else unit


def unit_after_analyte_change(analyte: Any, unit: Any) -> str | None:
    """The unit to keep when a lab row's analyte changes: the same unit if the new analyte accepts it,
    the only unit if there is one, else none (the coordinator picks the unit the lab reported)."""
    units = units_for(analyte)
    if isinstance(unit, str) and unit:
        shown = display_unit(analyte, unit)
        if shown in units:
            return shown
    return units[0] if len(units) == 1 else None


# --------------------------------------------------------------------------- form <-> record


def blank_form() -> dict[str, Any]:
    """A new, empty case: revision 1, every yes/no fact unknown, one organ row to fill in."""
    state: dict[str, Any] = {p: None for p in SCALARS}
    for p, kind in SCALARS.items():
        if kind == "text":
            state[p] = ""
        elif kind == "tri":
            state[p] = "unknown"
    state["revision"] = 1
    for lst in ROWS:
        state[lst] = []
    state["organs"] = [blank_row("organs")]
    return state


def blank_row(lst: str) -> dict[str, Any]:
    row: dict[str, Any] = {f: ([] if k.startswith("codes:") else None) for f, k in ROWS[lst].items()}
    if lst == "labs":
        row["day"] = 0  # the contract's default
    return row


def _number_out(v: Any) -> Any:
    """A widget's number as it goes into the record: whole floats as integers (JSON has one number
    type, and the strict model wants integers for counts and days)."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def _out(kind: str, v: Any) -> Any:
    if kind in ("text", "unit"):
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v
    if kind in ("int", "float"):
        return _number_out(v)
    if kind == "tri":
        return {"yes": True, "no": False}.get(v) if isinstance(v, str) else v if isinstance(v, bool) else None
    if kind.startswith("codes:"):
        return list(v) if v else None
    return v if v not in ("", None) else None  # code, analyte


def _put(rec: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = rec
    for p in parents:
        node = node.setdefault(p, {})
    node[leaf] = value


def form_to_record(state: dict[str, Any]) -> dict[str, Any]:
    """A case record v1 from the form's values: empty optional fields are left out, a tri-state map
    holds only the facts answered yes or no (unknown = absent), rows become lists in form order.
    Required objects are always present, so a missing field is reported at its own widget."""
    rec: dict[str, Any] = {"schema_version": 1}
    for path, kind in SCALARS.items():
        v = _out(kind, state.get(path))
        if v is not None:
            _put(rec, path, v)
    for obj in REQUIRED_OBJECTS:
        rec.setdefault(obj, {})
    for lst, fields in ROWS.items():
        rows = state.get(lst) or []
        if rows or lst == "organs":  # organs are required: an empty list is reported as such
            out_rows = []
            for row in rows:
                r = {}
                for f, kind in fields.items():
                    v = _out(kind, (row or {}).get(f))
                    if v is not None:
                        r[f] = v
                out_rows.append(r)
            rec[lst] = out_rows
    ordered = {k: rec[k] for k in RECORD_ORDER if k in rec}
    for obj in ("patient", "kidney", "diagnosis", "outcome"):
        sub = CaseRecord.model_fields[obj].annotation.model_fields  # type: ignore[union-attr]
        ordered[obj] = {k: ordered[obj][k] for k in sub if k in ordered[obj]}
    return ordered


def _get(record: Any, path: str) -> tuple[bool, Any]:
    node = record
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _number_in(v: Any, integer: bool) -> tuple[bool, Any, str | None]:
    """(ok, value for the widget, note) for a number read from a record."""
    if isinstance(v, bool):
        return False, None, None
    if isinstance(v, str):
        try:
            f = float(v.strip().replace(",", "."))
        except ValueError:
            return False, None, None
        ok, val, _ = _number_in(f, integer)
        return ok, val, (f"the text {show(v)} was read as the number {show(val)}" if ok else None)
    if isinstance(v, (int, float)):
        if isinstance(v, float) and not math.isfinite(v):
            return False, None, None
        if integer:
            if isinstance(v, int):
                return True, v, None
            if v.is_integer():
                return True, int(v), None
            return False, None, None
        return True, float(v) if isinstance(v, int) and abs(v) < 2**53 else v, None
    return False, None, None


def _in(kind: str, v: Any) -> tuple[bool, Any, str | None]:
    """(ok, value for the widget, note) for one value of a record."""
    if kind in ("int", "float"):
        return _number_in(v, kind == "int")
    if kind == "tri":
        if v is True:
            return True, "yes", None
        if v is False:
            return True, "no", None
        return False, "unknown", None
    if kind.startswith("codes:"):
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            return True, list(dict.fromkeys(v)), None
        return False, [], None
    if isinstance(v, str):  # text, codes (kept even when not accepted: the error is shown at the widget)
        return True, v, None
    if kind == "text" and isinstance(v, (int, float)) and not isinstance(v, bool):
        return True, show(v), f"the number {show(v)} was read as the text {show(show(v))}"
    return False, None, None


def record_to_form(record: Any) -> dict[str, Any]:
    """The form's state for a record (a quarantined payload, or the latest accepted revision).

    Values the form cannot hold (a number for a yes/no fact, a field outside the contract such as
    ``name``) are left out and listed, with their path, under ``"_notes"`` as ``(path, note)``. Codes
    outside a vocabulary and units not accepted for their analyte are kept, so that the form shows
    them with the validator's error beside them."""
    state = blank_form()
    notes: list[tuple[str, str]] = []
    state["organs"] = []
    if not isinstance(record, dict):
        state["organs"] = [blank_row("organs")]
        state["_notes"] = [(SUMMARY, f"the record is {show(record)}, not a case object: the form starts empty")]
        return state
    for path, kind in SCALARS.items():
        present, v = _get(record, path)
        if not present or v is None:
            continue
        ok, val, note = _in(kind, v)
        if ok:
            state[path] = val
            if note:
                notes.append((path, note))
        else:
            notes.append((path, f"{show(v)} cannot be entered in this field; it was left empty"))
    for lst, fields in ROWS.items():
        present, rows = _get(record, lst)
        if not present or rows is None:
            continue
        if not isinstance(rows, list):
            notes.append((lst, f"{show(rows)} is not a list; it was left out"))
            continue
        for i, row in enumerate(rows):
            out = blank_row(lst)
            if lst == "labs":
                out["day"] = None
            if not isinstance(row, dict):
                notes.append((f"{lst}[{i}]", f"{show(row)} is not an object; the row was left empty"))
                state[lst].append(out)
                continue
            for f, kind in fields.items():
                if f not in row or row[f] is None:
                    continue
                ok, val, note = _in(kind if kind not in ("analyte", "unit") else "text", row[f])
                if ok:
                    out[f] = val
                    if note:
                        notes.append((f"{lst}[{i}].{f}", note))
                else:
                    notes.append((f"{lst}[{i}].{f}", f"{show(row[f])} cannot be entered in this field; it was left empty"))
            for f in row:
                if f not in fields:
                    notes.append((f"{lst}[{i}].{f}", "is not a field of case record v1; it was left out"))
            if lst == "labs":
                out["unit"] = display_unit(out["analyte"], out["unit"])
            state[lst].append(out)
    if not state["organs"] and not (isinstance(record.get("organs"), list) and record["organs"] == []):
        state["organs"] = [blank_row("organs")]
    rev = record.get("revision", 1)
    if not (isinstance(rev, int) and not isinstance(rev, bool) and rev >= 1):
        state["revision"] = 1
        notes = [n for n in notes if n[0] != "revision"]
        notes.append(("revision", f"{show(rev)} is not a revision number; the form uses 1"))
    sv = record.get("schema_version")
    if sv != 1:
        notes.append(("schema_version", f"was {show(sv) if 'schema_version' in record else 'missing'}; the form submits version 1"))
    known = set(RECORD_ORDER)
    for k in record:
        if k not in known:
            notes.append((k, "is not a field of case record v1; it was left out"))
    for obj in REQUIRED_OBJECTS + ("comorbidities", "exposures"):
        sub = record.get(obj)
        if isinstance(sub, dict):
            for k in sub:
                if f"{obj}.{k}" not in SCALARS:
                    notes.append((f"{obj}.{k}", "is not a field of case record v1; it was left out"))
    state["_notes"] = notes
    return state


def _normal(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _normal(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_normal(x) for x in v]
    if isinstance(v, float) and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two records say the same thing (``5.0`` is ``5``), whatever their revision numbers."""
    strip = lambda r: orjson.dumps(_normal({k: v for k, v in r.items() if k != "revision"}), option=orjson.OPT_SORT_KEYS)  # noqa: E731
    return strip(a) == strip(b)


# --------------------------------------------------------------------------- errors


def widget_path(path: str) -> str:
    """The form path where an error of the record at ``path`` is shown, or :data:`SUMMARY`."""
    if path in SCALARS or path in SECTIONS:
        return path
    m = _ROW_PATH.match(path)
    if m:
        lst, i, field = m.groups()
        if field is None:
            return f"{lst}[{i}]"
        if field in ROWS[lst]:
            return f"{lst}[{i}].{field}"
    return SUMMARY


def errors_by_field(errors: Iterable[Error]) -> dict[str, list[str]]:
    """Each error's message under the path of its widget (``patient.age_years``, ``labs[2].unit``,
    ``organs`` for the list as a whole, ``labs[2]`` for a row); errors without a widget (``$``,
    unknown fields) under :data:`SUMMARY` as ``"path: message"``, in the command line's words."""
    out: dict[str, list[str]] = {}
    for e in errors:
        where = widget_path(e.path)
        out.setdefault(where, []).append(e.message if where == e.path else str(e))
    return out


def cli_line(path: str, message: str) -> str:
    """An error as ``registry submit`` prints it."""
    return f"{path}: {message}"


# --------------------------------------------------------------------------- batch upload


BATCH_COLUMNS = ("file", "record", "case_id", "revision", "status", "reasons", "quarantine_id")


def batch_rows(receipts: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per submitted record for the results table: reasons as ``path: message`` joined by
    `` | `` (as on the data-quality page)."""
    rows = []
    for r in receipts:
        rows.append({
            "file": r.file,
            "record": r.record,
            "case_id": r.case_id,
            "revision": r.revision,
            "status": r.status,
            "reasons": " | ".join(str(e) for e in r.errors),
            "quarantine_id": r.quarantine_id,
        })
    return rows
