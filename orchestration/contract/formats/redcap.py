"""REDCap: the registry's Data Dictionary, and records exports <-> contract-v1 records.

* :func:`dictionary_rows` / :func:`render_dictionary` build the standard 18-column REDCap Data
  Dictionary of contract v1 from the reference tables (committed as
  ``seeds/redcap/calciphylaxis_registry_dictionary.csv``; a test fails when it is stale, regenerate
  with ``registry template redcap --write``). One instrument ``case``, and the repeating instruments
  ``labs``, ``organs``, ``lesions`` and ``treatments``.
* :func:`read_export` turns REDCap's flat *records* export (CSV, raw or label values) into
  contract-v1 records, each with the way back to REDCap's words:
  ``record 17, labs #3, lab_unit``.
* :func:`write_export` writes records in that same import format, so a site can load its cases back
  into REDCap; reading what it wrote gives the same records.

Pure functions: bytes or records in, rows, records or bytes out; nothing here touches the registry.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from orchestration.config import REPO_ROOT
from orchestration.contract.formats.flat import (
    CHOICE,
    DATE_MESSAGE,
    INTEGER,
    MULTI,
    NUMBER,
    OTHER_UNIT,
    PARTS,
    TEXT,
    UNIT,
    WITHHELD,
    YESNO,
    Cell,
    FlatConversion,
    case_cell,
    case_fields,
    escape_text,
    format_number,
    get_path,
    is_calendar_date,
    item_cell,
    item_fields,
    parse_number,
    set_path,
    split_path,
    unescape_text,
    unit_choices,
)
from orchestration.contract.model import REF
from orchestration.contract.validate import show

DICTIONARY_PATH = REPO_ROOT / "seeds" / "redcap" / "calciphylaxis_registry_dictionary.csv"

DICTIONARY_COLUMNS = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)

CASE_FORM = "case"
RECORD_ID = "record_id"
REPEAT_INSTRUMENT = "redcap_repeat_instrument"
REPEAT_INSTANCE = "redcap_repeat_instance"
EVENT = "redcap_event_name"
DAG = "redcap_data_access_group"
# columns REDCap adds to an export that carry no case data
_ADMIN_COLUMNS = {RECORD_ID, REPEAT_INSTRUMENT, REPEAT_INSTANCE, EVENT, DAG, "redcap_survey_identifier"}
_ADMIN_SUFFIXES = ("_complete", "_timestamp", "_return_code")


# ----------------------------------------------------------------------------- the dictionary


def _bound(v: float | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if float(v).is_integer() else format_number(v)


def _choices(cell: Cell) -> str:
    pairs = unit_choices() if cell.kind == UNIT else cell.choice_labels()
    return " | ".join(f"{code}, {label}" for code, label in pairs)


def _annotation(form: str, cell: Cell) -> str:
    where = ".".join(cell.path) if form == CASE_FORM else f"{form}[].{'.'.join(cell.path)}"
    if cell.kind == UNIT:
        per = "; ".join(f"{a.code}: {a.accepted()}" for a in REF.analytes.values())
        return f"contract-v1: {where}. Accepted units per analyte: {per}"
    return f"contract-v1: {where}"


def _field_type(cell: Cell) -> tuple[str, str]:
    if cell.kind == TEXT:
        return ("notes" if cell.variable == "citation" else "text"), ""
    if cell.kind == INTEGER:
        return "text", "integer"
    if cell.kind == NUMBER:
        return "text", "number"
    if cell.kind == YESNO:
        return "radio", ""
    if cell.kind == MULTI:
        return "checkbox", ""
    return "dropdown", ""  # CHOICE, UNIT


def form_cells() -> list[tuple[str, Cell]]:
    """(form, cell) in dictionary order."""
    out = [(CASE_FORM, c) for c in case_fields()]
    for part in PARTS:
        out += [(part, c) for c in item_fields()[part]]
    return out


def dictionary_rows() -> list[dict[str, str]]:
    rows = [
        dict.fromkeys(DICTIONARY_COLUMNS, "")
        | {
            "Variable / Field Name": RECORD_ID,
            "Form Name": CASE_FORM,
            "Field Type": "text",
            "Field Label": "Record ID",
            "Field Note": "REDCap's record name; exports from the registry use the case ID",
            "Field Annotation": "REDCap record name (not part of the case record)",
        }
    ]
    for form, cell in form_cells():
        ftype, validation = _field_type(cell)
        rows.append(
            dict.fromkeys(DICTIONARY_COLUMNS, "")
            | {
                "Variable / Field Name": cell.variable,
                "Form Name": form,
                "Section Header": cell.section,
                "Field Type": ftype,
                "Field Label": cell.label,
                "Choices, Calculations, OR Slider Labels": _choices(cell) if ftype in ("radio", "dropdown", "checkbox") else "",
                "Field Note": cell.note,
                "Text Validation Type OR Show Slider Number": validation,
                "Text Validation Min": _bound(cell.minimum) if validation else "",
                "Text Validation Max": _bound(cell.maximum) if validation else "",
                "Branching Logic (Show field only if...)": cell.show_if,
                "Required Field?": "y" if cell.required else "",
                "Matrix Group Name": cell.matrix,
                "Field Annotation": _annotation(form, cell),
            }
        )
    return rows


def render_dictionary() -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=DICTIONARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(dictionary_rows())
    return buf.getvalue()


def write_dictionary(path: Path = DICTIONARY_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_dictionary(), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- records export: columns


def _checkbox_column(cell: Cell, code: str) -> str:
    return f"{cell.variable}___{code}"


def export_columns() -> list[str]:
    cols = [RECORD_ID, REPEAT_INSTRUMENT, REPEAT_INSTANCE]
    for _, cell in form_cells():
        if cell.kind == MULTI:
            cols += [_checkbox_column(cell, c) for c in cell.codes]
        else:
            cols.append(cell.variable)
    return cols


def _column_owner() -> dict[str, tuple[str, Cell, str | None]]:
    """export column -> (form, cell, checkbox code)."""
    out: dict[str, tuple[str, Cell, str | None]] = {}
    for form, cell in form_cells():
        if cell.kind == MULTI:
            for code in cell.codes:
                out[_checkbox_column(cell, code)] = (form, cell, code)
        else:
            out[cell.variable] = (form, cell, None)
    return out


# ----------------------------------------------------------------------------- records -> export


_UNIT_CODE = {spelling: code for code, spelling in unit_choices() if code != OTHER_UNIT}


def _encode(cell: Cell, value: Any) -> str:
    if cell.kind == YESNO:
        return "9" if value is None else ("1" if value is True else "0" if value is False else str(value))
    if value is None:
        return ""
    if cell.kind in (INTEGER, NUMBER) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value)
    return escape_text(str(value)) if cell.kind == TEXT else str(value)


def export_rows(records: Iterable[dict[str, Any]]) -> Iterable[dict[str, str]]:
    cells = item_fields()
    for rec in records:
        rid = str(rec.get("case_id", ""))
        row = {RECORD_ID: rid, REPEAT_INSTRUMENT: "", REPEAT_INSTANCE: ""}
        for cell in case_fields():
            present, value = get_path(rec, cell.path)
            if present:
                row[cell.variable] = _encode(cell, value)
        yield row
        for part in PARTS:
            for i, item in enumerate(rec.get(part) or ()):
                row = {RECORD_ID: rid, REPEAT_INSTRUMENT: part, REPEAT_INSTANCE: str(i + 1)}
                for cell in cells[part]:
                    if cell.variable == "lab_unit_other":
                        continue
                    present, value = get_path(item, cell.path)
                    if cell.kind == MULTI:
                        chosen = set(value or ()) if present else set()
                        for code in cell.codes:
                            row[_checkbox_column(cell, code)] = "1" if code in chosen else "0"
                    elif cell.kind == UNIT:
                        if present and value in _UNIT_CODE:
                            row[cell.variable] = _UNIT_CODE[value]
                        elif present and value is not None:
                            row[cell.variable] = OTHER_UNIT
                            row["lab_unit_other"] = escape_text(str(value))
                    elif present:
                        row[cell.variable] = _encode(cell, value)
                yield row


def write_export(records: Iterable[dict[str, Any]]) -> bytes:
    """Records as a REDCap records import/export CSV (raw values, one row per instance)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=export_columns(), lineterminator="\n", restval="")
    w.writeheader()
    w.writerows(export_rows(records))
    return buf.getvalue().encode("utf-8")


# ----------------------------------------------------------------------------- export -> records


class FileProblem(Exception):
    """The file as a whole cannot be read (one clear line)."""


_YES = {"1", "yes", "y", "true", "checked"}
_NO = {"0", "no", "n", "false", "unchecked"}
_UNKNOWN = {"9", "unknown", "unk"}


def _choice_code(cell: Cell, raw: str) -> str:
    t = raw.strip()
    if t in cell.codes:
        return t
    for code, label in cell.choice_labels():  # a "labels" export
        if t.casefold() in (label.casefold(), code.casefold()):
            return code
    return raw


class _Builder:
    """Builds one record from the rows of one REDCap record."""

    def __init__(self, rid: str):
        self.rid = rid
        self.event: str | None = None
        self.record: dict[str, Any] = {"schema_version": 1}
        self.case_seen: dict[str, tuple[str, int]] = {}  # variable -> (raw, line)
        self.items: dict[str, dict[int, tuple[dict[str, Any], int, str | None]]] = {p: {} for p in PARTS}
        self.conv = FlatConversion(where=f"record {rid}", record=self.record, locate=self.locate)
        self.instances: dict[str, list[int]] = {}
        self.unit_vars: list[str | None] = []

    def coord(self, form: str, instance: int | None = None, variable: str | None = None) -> str:
        s = f"record {self.rid}"
        if self.event:
            s += f", event {self.event}"
        s += f", {form}" + (f" #{instance}" if instance is not None else "")
        return s + (f", {variable}" if variable else "")

    def locate(self, path: str) -> str:
        top, idx, rest = split_path(path)
        if top in PARTS:
            if idx is None or idx >= len(self.instances.get(top, ())):
                return self.coord(top)
            uv = self.unit_vars[idx] if top == "labs" and idx < len(self.unit_vars) else None
            cell = item_cell(top, rest, variable_for_unit=uv)
            return self.coord(top, self.instances[top][idx], cell.variable if cell else None)
        if path == "$":
            return f"record {self.rid}"
        cell = case_cell(path)
        if cell is not None:
            return self.coord(CASE_FORM, None, cell.variable)
        return self.coord(CASE_FORM) + ("" if top in ("comorbidities", "exposures") else f" ({path})")

    def decode(self, cell: Cell, raw: str, path_for_error: str, where: str) -> tuple[bool, Any]:
        """A REDCap value -> (present, value). Unreadable values stay as written."""
        if raw == "":
            return False, None
        if is_calendar_date(raw):
            self.conv.problem(where, DATE_MESSAGE)  # a calendar date never lands, not even in quarantine
            return False, None
        if cell.kind == TEXT:
            return True, unescape_text(raw)
        if cell.kind in (INTEGER, NUMBER):
            return True, parse_number(raw, cell.kind)
        if cell.kind == YESNO:
            t = raw.strip().casefold()
            if t in _YES:
                return True, True
            if t in _NO:
                return True, False
            if t in _UNKNOWN:
                return True, None
            self.conv.messages[path_for_error] = f"{show(raw)} is not a choice (1 = yes, 0 = no, 9 = unknown)"
            return True, raw
        if cell.kind == CHOICE:
            return True, _choice_code(cell, raw)
        return True, raw

    def case_row(self, row: dict[str, str], owner, line: int) -> None:
        for col, raw in row.items():
            if col is None or raw is None or raw == "" or col in _ADMIN_COLUMNS or col.endswith(_ADMIN_SUFFIXES):
                continue
            hit = owner.get(col)
            if hit is None:
                self.conv.problem(self.coord(CASE_FORM, None, col), "unknown field (not in the registry's REDCap dictionary; identifiers are not accepted)", WITHHELD)
                continue
            form, cell, _ = hit
            if cell.kind == MULTI and raw.strip().casefold() in ("0", "unchecked"):
                continue  # REDCap exports unchecked boxes of other instruments on every row
            if form != CASE_FORM:
                self.conv.problem(self.coord(CASE_FORM, None, col), f"belongs to the repeating instrument {form}: give it on a row with redcap_repeat_instrument = {form}", raw)
                continue
            prior = self.case_seen.get(col)
            if prior is not None:
                if prior[0] != raw:
                    self.conv.problem(self.coord(CASE_FORM, None, col), f"has two values ({show(prior[0])} on line {prior[1]}, {show(raw)} on line {line})", raw)
                continue
            self.case_seen[col] = (raw, line)
            path = ".".join(cell.path)
            present, value = self.decode(cell, raw, path, self.coord(CASE_FORM, None, cell.variable))
            if present:
                set_path(self.record, cell.path, value)

    def item_row(self, part: str, instance_raw: str, row: dict[str, str], owner, line: int) -> None:
        try:
            instance = int(instance_raw.strip()) if instance_raw.strip() else 1
            if instance < 1:
                raise ValueError
        except ValueError:
            self.conv.problem(self.coord(part), f"redcap_repeat_instance {show(instance_raw)} (line {line}) is not a whole number of 1 or more", instance_raw)
            return
        if instance in self.items[part]:
            self.conv.problem(self.coord(part, instance), f"instance {instance} appears twice (line {self.items[part][instance][1]} and line {line})", True)
            return
        values: dict[str, str] = {}
        for col, raw in row.items():
            if col is None or raw is None or raw == "" or col in _ADMIN_COLUMNS or col.endswith(_ADMIN_SUFFIXES):
                continue
            hit = owner.get(col)
            if hit is not None and hit[0] != part and hit[1].kind == MULTI and raw.strip().casefold() in ("0", "unchecked"):
                continue
            if hit is None:
                self.conv.problem(self.coord(part, instance, col), "unknown field (not in the registry's REDCap dictionary; identifiers are not accepted)", WITHHELD)
            elif hit[0] != part:
                self.conv.problem(self.coord(part, instance, col), f"belongs to the instrument {hit[0]}, not {part}", raw)
            else:
                values[col] = raw
        self.items[part][instance] = (values, line, None)

    def finish(self, owner) -> FlatConversion:
        cells = item_fields()
        for part in PARTS:
            rows = sorted(self.items[part].items())
            if not rows:
                continue
            self.instances[part] = [inst for inst, _ in rows]
            out = []
            for idx, (inst, (values, _line, _)) in enumerate(rows):
                item: dict[str, Any] = {}
                unit_var = None
                for cell in cells[part]:
                    p = f"{part}[{idx}].{cell.path[0]}"
                    if cell.kind == MULTI:
                        chosen = []
                        for code in cell.codes:
                            raw = values.get(_checkbox_column(cell, code), "")
                            t = raw.strip().casefold()
                            if t in ("", "0", "unchecked"):
                                continue
                            if t in ("1", "checked"):
                                chosen.append(code)
                            else:
                                self.conv.problem(self.coord(part, inst, _checkbox_column(cell, code)), f"{show(raw)} is not 1 (checked) or 0 (unchecked)", raw)
                        if chosen:
                            item[cell.path[0]] = chosen
                    elif cell.kind == UNIT:
                        raw = values.get(cell.variable, "")
                        other = values.get("lab_unit_other", "")
                        code = raw.strip()
                        if code == OTHER_UNIT or code == dict(unit_choices())[OTHER_UNIT] or (code == "" and other):
                            if other:
                                item["unit"] = unescape_text(other)
                                unit_var = "lab_unit_other"
                        elif code:
                            spelling = dict(unit_choices()).get(code)
                            if spelling is None:  # a labels export, or a unit typed in
                                spelling = next((s for c, s in unit_choices() if s == code), raw)
                            item["unit"] = spelling
                            if other:
                                self.conv.problem(self.coord(part, inst, "lab_unit_other"), f"is only used when lab_unit is 'other' (lab_unit is {show(code)})", other)
                    elif cell.variable == "lab_unit_other":
                        continue
                    else:
                        present, value = self.decode(cell, values.get(cell.variable, ""), p, self.coord(part, inst, cell.variable))
                        if present:
                            item[cell.path[0]] = value
                if part == "labs":
                    self.unit_vars.append(unit_var)
                out.append(item)
            self.record[part] = out
        return self.conv


def read_export(data: bytes, name: str = "export.csv") -> list[FlatConversion]:
    """REDCap records export (CSV, raw or label values, optionally with events and data access
    groups) -> one :class:`FlatConversion` per REDCap record, in file order.

    Raises :class:`FileProblem` when the file as a whole cannot be read."""
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): export the records from REDCap as CSV") from None
    if not text.strip():
        raise FileProblem("is empty: expected a REDCap records export (CSV) with a record_id column")
    if "\x00" in text:
        raise FileProblem("is not a CSV file (it holds NUL bytes): export the records from REDCap as CSV")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as exc:
        raise FileProblem(f"is not a readable CSV file: {exc}") from None
    if RECORD_ID not in header:
        shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
        raise FileProblem(f"has no record_id column (its columns: {shown}): expected a REDCap records export of the registry's project")
    owner = _column_owner()
    builders: dict[str, _Builder] = {}
    loose: list[FlatConversion] = []
    try:
        for row in reader:
            line = reader.line_num
            rid = (row.get(RECORD_ID) or "").strip()
            if None in row:  # more cells than columns
                extra = row.pop(None)
                if any(str(x).strip() for x in extra):
                    b = builders.setdefault(rid, _Builder(rid)) if rid else None
                    target = b.conv if b else _loose(loose, line)
                    target.problem(f"line {line}", f"has {len(extra)} more cells than the header has columns", True)
            if not rid:
                if any((v or "").strip() for k, v in row.items() if k != RECORD_ID):
                    _loose(loose, line).problem(f"line {line}", "has values but no record_id", True)
                continue
            b = builders.get(rid)
            if b is None:
                b = builders[rid] = _Builder(rid)
            ev = (row.get(EVENT) or "").strip()
            if ev and b.event is None:
                b.event = ev
            instrument = (row.get(REPEAT_INSTRUMENT) or "").strip()
            if not instrument:
                b.case_row(row, owner, line)
            elif instrument in PARTS:
                b.item_row(instrument, row.get(REPEAT_INSTANCE) or "", row, owner, line)
            else:
                b.conv.problem(
                    f"record {rid}, {instrument}",
                    f"unknown repeating instrument {show(instrument)} on line {line} (the registry's are: {', '.join(PARTS)})",
                    instrument,
                )
    except csv.Error as exc:
        raise FileProblem(f"is not a readable CSV file: {exc} (line {reader.line_num})") from None
    out = [b.finish(owner) for b in builders.values()]
    return out + loose


def _loose(loose: list[FlatConversion], line: int) -> FlatConversion:
    c = FlatConversion(where=f"line {line}", record={}, locate=lambda p, line=line: f"line {line}", only_own_errors=True)
    loose.append(c)
    return c
