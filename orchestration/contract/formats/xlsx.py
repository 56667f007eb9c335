"""Spreadsheets: the XLSX template, and workbooks (or CSV files of the same sheets) <-> records.

A workbook has a sheet per entity, keyed by ``case_id``: ``cases`` (one row per case) and
``labs``, ``organs``, ``lesions``, ``treatments`` (one row per item, in record order). Yes/no facts
are ``yes``, ``no`` or ``unknown`` (a blank cell is "not recorded", and unknown is not no); lesion
features are codes separated by commas. The template adds drop-down lists from the vocabularies
(units listed per analyte), a "how to fill" sheet and the seed case as an example sheet.

Written with openpyxl: it writes data validations, defined names and number formats (python-calamine
reads faster but cannot write, and one library for both directions keeps the two in step). Text
that a spreadsheet would run as a formula (``= + - @``, tab, carriage return at the start) is written
with a leading apostrophe and read back without it, so an export never holds a formula. An error
names the sheet and cell: ``labs!D7``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Iterable

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.datavalidation import DataValidation

from orchestration.contract.formats.flat import (
    CHOICE,
    DATE_MESSAGE,
    INTEGER,
    MULTI,
    NUMBER,
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
    units_of,
)
from orchestration.contract.model import REF
from orchestration.contract.validate import show

CASES = "cases"
SHEETS = (CASES, *PARTS)
HOW_TO = "how to fill"
EXAMPLE = "example"
LISTS = "lists"
TEMPLATE_ROWS = 2000  # rows of the template that get drop-down lists


class FileProblem(Exception):
    """The file as a whole cannot be read (one clear line)."""


def columns(sheet: str) -> list[str]:
    if sheet == CASES:
        return [c.column for c in case_fields()]
    return ["case_id"] + [c.column for c in item_fields()[sheet] if c.column]


def cells_of(sheet: str) -> dict[str, Cell]:
    cells = case_fields() if sheet == CASES else [c for c in item_fields()[sheet] if c.column]
    return {c.column: c for c in cells}


# ----------------------------------------------------------------------------- records -> rows


def _cell_value(cell: Cell, value: Any) -> Any:
    if cell.kind == YESNO:
        return "unknown" if value is None else "yes" if value is True else "no" if value is False else str(value)
    if value is None:
        return None
    if cell.kind == MULTI:
        return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if cell.kind in (INTEGER, NUMBER) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return escape_text(str(value))


def sheet_rows(records: Iterable[dict[str, Any]]) -> dict[str, list[list[Any]]]:
    """Records as the rows of each sheet (values typed as the cells will hold them)."""
    out: dict[str, list[list[Any]]] = {s: [] for s in SHEETS}
    for rec in records:
        cid = escape_text(str(rec.get("case_id", "")))
        row = []
        for cell in case_fields():
            present, value = get_path(rec, cell.path)
            row.append(_cell_value(cell, value) if present else None)
        out[CASES].append(row)
        for part in PARTS:
            cells = [c for c in item_fields()[part] if c.column]
            for item in rec.get(part) or ():
                row = [cid]
                for cell in cells:
                    present, value = get_path(item, cell.path) if isinstance(item, dict) else (False, None)
                    row.append(_cell_value(cell, value) if present else None)
                out[part].append(row)
    return out


# ----------------------------------------------------------------------------- writing a workbook


def _lists_sheet(wb) -> dict[str, str]:
    """The hidden sheet of vocabularies; returns vocabulary -> absolute range, and defines one
    name per analyte (``units_calcium``) for the unit drop-down of each lab row."""
    ws = wb.create_sheet(LISTS)
    ranges: dict[str, str] = {}
    col = 1
    vocabularies = sorted({c.vocabulary for c in case_fields() if c.vocabulary} | {c.vocabulary for p in PARTS for c in item_fields()[p] if c.vocabulary and c.kind != MULTI})
    for vocab in vocabularies:
        codes = tuple(REF.analytes) if vocab == "analyte" else REF.codes(vocab)
        ws.cell(row=1, column=col, value=vocab)
        for i, code in enumerate(codes):
            ws.cell(row=2 + i, column=col, value=code)
        letter = get_column_letter(col)
        ranges[vocab] = f"{LISTS}!${letter}$2:${letter}${1 + len(codes)}"
        col += 1
    for a in REF.analytes.values():
        ws.cell(row=1, column=col, value=f"units_{a.code}")
        for i, u in enumerate(a.units):
            ws.cell(row=2 + i, column=col, value=u.unit)
        letter = get_column_letter(col)
        wb.defined_names[f"units_{a.code}"] = DefinedName(f"units_{a.code}", attr_text=f"{LISTS}!${letter}$2:${letter}${1 + len(a.units)}")
        col += 1
    ws.sheet_state = "hidden"
    return ranges


def _validations(ws, sheet: str, ranges: dict[str, str], last_row: int) -> None:
    cols = columns(sheet)
    cells = cells_of(sheet)
    for j, name in enumerate(cols, start=1):
        cell = cells.get(name)
        if cell is None:
            continue
        letter = get_column_letter(j)
        sqref = f"{letter}2:{letter}{last_row}"
        dv = None
        if cell.kind == YESNO:
            dv = DataValidation(type="list", formula1='"yes,no,unknown"', allow_blank=True)
            dv.prompt = "yes, no or unknown (unknown is not no; leave blank if not recorded)"
        elif cell.kind == CHOICE:
            dv = DataValidation(type="list", formula1=ranges[cell.vocabulary], allow_blank=True)
        elif cell.kind == UNIT:
            analyte_col = get_column_letter(cols.index("analyte") + 1)
            dv = DataValidation(type="list", formula1=f'INDIRECT("units_"&${analyte_col}2)', allow_blank=True)
            dv.errorStyle = "warning"
            dv.error = "Not a listed unit for this analyte. Another spelling of a listed unit (case, spaces, u/µ) is accepted."
            dv.prompt = "the unit as printed on the report; the list shows the units accepted for the analyte"
        elif cell.kind == MULTI:
            dv = DataValidation(type="textLength", operator="greaterThanOrEqual", formula1="0", allow_blank=True)
            dv.prompt = "codes separated by commas: " + ", ".join(cell.codes)
        elif cell.kind in (INTEGER, NUMBER) and (cell.minimum is not None or cell.maximum is not None):
            kind = "whole" if cell.kind == INTEGER else "decimal"
            lo, hi = cell.minimum, cell.maximum
            if lo is not None and hi is not None:
                dv = DataValidation(type=kind, operator="between", formula1=format_number(lo), formula2=format_number(hi), allow_blank=True)
            elif lo is not None:
                dv = DataValidation(type=kind, operator="greaterThanOrEqual", formula1=format_number(lo), allow_blank=True)
            else:
                dv = DataValidation(type=kind, operator="lessThanOrEqual", formula1=format_number(hi), allow_blank=True)
            dv.error = f"{cell.label}: " + ("a whole number" if kind == "whole" else "a number") + f" from {format_number(lo) if lo is not None else '-'} to {format_number(hi) if hi is not None else '-'}"
        if dv is None:
            continue
        dv.showInputMessage = bool(dv.prompt)
        dv.showErrorMessage = True
        dv.promptTitle = name[:32]
        ws.add_data_validation(dv)
        dv.add(sqref)


def _write_sheet(ws, sheet: str, rows: list[list[Any]], *, italic: bool = False) -> None:
    cols = columns(sheet)
    cells = cells_of(sheet)
    ws.append(cols)
    for c in ws[1]:
        c.font = Font(bold=True)
    ws.freeze_panes = "B2"
    kinds = [cells[c].kind if c in cells else TEXT for c in cols]
    font = Font(italic=True, color="666666") if italic else None
    for r, values in enumerate(rows, start=2):
        for j, v in enumerate(values, start=1):
            if v is None:
                continue
            c = ws.cell(row=r, column=j)
            if isinstance(v, str) and ILLEGAL_CHARACTERS_RE.search(v):
                v = ILLEGAL_CHARACTERS_RE.sub("\ufffd", v)  # XLSX cannot hold control characters
            c.value = v
            if isinstance(v, str):
                c.data_type = "s"  # never a formula
            elif isinstance(v, float) and kinds[j - 1] == NUMBER and v.is_integer():
                c.number_format = "0.0"  # 9.0 stays a decimal when read back
            if font is not None:
                c.font = font
    for j, name in enumerate(cols, start=1):
        dim = ws.column_dimensions[get_column_letter(j)]
        dim.width = max(10, min(len(name) + 2, 32))
        if kinds[j - 1] in (TEXT, CHOICE, UNIT, MULTI):
            dim.number_format = "@"  # text: a case ID typed as 0017 stays 0017


def _how_to(ws, *, example: bool) -> None:
    lines: list[tuple[str, ...]] = [
        ("How to fill this workbook (calciphylaxis case registry, case record version 1)",),
        ("",),
        ("One row per case in the sheet cases; one row per lab, organ, lesion and treatment in its own sheet, keyed by case_id.",),
        ("De-identified by construction: no names, hospital numbers, addresses or calendar dates. Every time is a whole number of days relative to day 0 (the first presentation to the reporting centre for this illness); only the year of day 0 is kept (index_year).",),
        ("Yes/no facts: yes, no or unknown. Unknown is not no. Leave a cell blank when the fact was not recorded.",),
        ("Labs: the value and unit as the laboratory printed them; the unit must be one accepted for the analyte (the drop-down lists them; other spellings of the same unit are fine).",),
        ("Lesion features: codes separated by commas, e.g. livedo, ulcer.",),
        ("Every case needs at least one row in organs (the organs with calcific vasculopathy; skin for cutaneous calciphylaxis).",),
        ("The sheet example holds the registry's seed case; it is not imported." if example else "",),
        ("Import: registry import xlsx FILE.xlsx (or the CSV files cases.csv, labs.csv, ... of these sheets). An error names the sheet and cell, e.g. labs!D7.",),
        ("",),
        ("sheet", "column", "required", "what to enter"),
    ]
    for sheet in SHEETS:
        for name in columns(sheet):
            cell = cells_of(sheet).get(name)
            if cell is None:
                lines.append((sheet, name, "yes", "the case's case_id (as in the sheet cases)"))
                continue
            what = cell.label
            if cell.kind == YESNO:
                what += ": yes, no or unknown"
            elif cell.kind == CHOICE:
                what += ": one of " + ", ".join(cell.codes)
            elif cell.kind == MULTI:
                what += ": codes separated by commas, from " + ", ".join(cell.codes)
            elif cell.kind == UNIT:
                what += ": accepted per analyte: " + "; ".join(f"{a}: {', '.join(units_of(a))}" for a in REF.analytes)
            elif cell.kind in (INTEGER, NUMBER):
                what += ": " + ("a whole number" if cell.kind == INTEGER else "a number")
                if cell.minimum is not None or cell.maximum is not None:
                    what += f" from {format_number(cell.minimum) if cell.minimum is not None else '-'} to {format_number(cell.maximum) if cell.maximum is not None else '-'}"
            if cell.note:
                what += f" ({cell.note})"
            lines.append((sheet, name, "yes" if cell.required else "", what))
    for line in lines:
        ws.append([escape_text(x) for x in line])
    ws["A1"].font = Font(bold=True, size=13)
    for c in ws[12]:
        c.font = Font(bold=True)
    for letter, width in (("A", 14), ("B", 36), ("C", 9), ("D", 120)):
        ws.column_dimensions[letter].width = width


def _example(ws, records: list[dict[str, Any]]) -> None:
    rows = sheet_rows(records)
    for sheet in SHEETS:
        ws.append([f"{sheet} (example, not imported)"])
        ws.cell(row=ws.max_row, column=1).font = Font(bold=True)
        ws.append(columns(sheet))
        for values in rows[sheet]:
            ws.append(values)
            for c in ws[ws.max_row]:
                if isinstance(c.value, str):
                    c.data_type = "s"
        ws.append([])


def write_workbook(records: Iterable[dict[str, Any]], *, example: list[dict[str, Any]] | None = None) -> bytes:
    """A workbook of ``records`` (the template when there are none), with drop-down lists, the
    how-to sheet and, when given, example records on a sheet that is not imported."""
    rows = sheet_rows(records)
    wb = Workbook()
    wb.remove(wb.active)
    ranges = _lists_sheet(wb)
    for sheet in SHEETS:
        ws = wb.create_sheet(sheet)
        _write_sheet(ws, sheet, rows[sheet])
        _validations(ws, sheet, ranges, max(TEMPLATE_ROWS, len(rows[sheet]) + 1 + 500))
    _how_to(wb.create_sheet(HOW_TO, 0), example=bool(example))
    if example:
        _example(wb.create_sheet(EXAMPLE, 1), example)
    wb.move_sheet(LISTS, len(wb.sheetnames))
    wb.active = 0
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------- reading


@dataclass
class _Sheet:
    name: str  # the sheet's name as shown in coordinates
    header: dict[str, int]  # column name -> 1-based column number
    rows: list[tuple[int, list[tuple[Any, str]]]]  # (row number, [(value, number_format)])
    unknown: list[str] = field(default_factory=list)


def _letter(col: int) -> str:
    return get_column_letter(col)


def _norm_header(v: Any) -> str:
    return str(v).strip().lower() if v is not None else ""


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "")


def _from_rows(name: str, raw_rows: Iterable[tuple[int, list[tuple[Any, str]]]]) -> _Sheet:
    it = iter(raw_rows)
    header: dict[str, int] = {}
    for _rownum, values in it:
        if all(_blank(v) for v, _ in values):
            continue
        for j, (v, _) in enumerate(values, start=1):
            h = _norm_header(v)
            if h and h not in header:
                header[h] = j
        break
    rows = [(r, vals) for r, vals in it if not all(_blank(v) for v, _ in vals)]
    return _Sheet(name, header, rows)


def read_workbook_sheets(data: bytes) -> dict[str, _Sheet]:
    try:
        wb = load_workbook(io.BytesIO(bytes(data)), read_only=True, data_only=True)
    except Exception as exc:  # a zip that is no workbook, a truncated file, a CSV renamed .xlsx ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileProblem(f"is not a readable XLSX workbook ({first})") from None
    out: dict[str, _Sheet] = {}
    try:
        for ws in wb.worksheets:
            key = ws.title.strip().lower()
            if key not in SHEETS:
                continue
            raw = (
                (r[0].row if r and hasattr(r[0], "row") else i + 1, [(c.value, getattr(c, "number_format", "General") or "General") for c in r])
                for i, r in enumerate(ws.iter_rows())
            )
            out[key] = _from_rows(key, _numbered(raw))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileProblem(f"is not a readable XLSX workbook ({first})") from None
    finally:
        wb.close()
    if not out:
        raise FileProblem(f"has none of the sheets {', '.join(SHEETS)}: start from `registry template xlsx`")
    return out


def _numbered(raw):
    # read-only rows may start with EmptyCells that carry no row number: count rows ourselves
    n = 0
    for r, vals in raw:
        n = r if isinstance(r, int) and r > n else n + 1
        yield n, vals


def sheet_of(filename: str) -> str | None:
    stem = PurePath(filename).stem.strip().lower()
    if stem in SHEETS:
        return stem
    for s in SHEETS:
        if re.search(rf"(^|[-_. ]){re.escape(s)}$", stem):
            return s
    return None


def read_csv_sheet(data: bytes, filename: str) -> tuple[str, _Sheet]:
    sheet = sheet_of(filename)
    if sheet is None:
        raise FileProblem(f"cannot tell which sheet it is: name it {', '.join(s + '.csv' for s in SHEETS)} (or end its name with -labs.csv and so on)")
    try:
        text = bytes(data).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}): save it as \"CSV UTF-8\"") from None
    if "\x00" in text:
        raise FileProblem("is not a CSV file (it holds NUL bytes)")
    try:
        rows = [(i, [(v, "General") for v in r]) for i, r in enumerate(csv.reader(io.StringIO(text, newline="")), start=1)]
    except csv.Error as exc:
        raise FileProblem(f"is not a readable CSV file: {exc}") from None
    s = _from_rows(sheet, rows)
    if not s.header:
        raise FileProblem("is empty: expected a header row with the sheet's columns")
    return sheet, s


# ----------------------------------------------------------------------------- sheets -> records


_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}
_UNKNOWN = {"unknown", "unk", "9"}


def _as_text(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else format_number(v)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    return str(v)


def _decode(cell: Cell, v: Any, fmt: str, conv: FlatConversion, path: str, where: str) -> tuple[bool, Any]:
    if _blank(v):
        return False, None
    if isinstance(v, (_dt.datetime, _dt.date)) or (isinstance(v, str) and is_calendar_date(v)):
        conv.problem(where, DATE_MESSAGE)  # a calendar date never lands, not even in quarantine
        return False, None
    if cell.kind == TEXT:
        return True, unescape_text(v) if isinstance(v, str) else _as_text(v)
    if cell.kind in (INTEGER, NUMBER):
        if isinstance(v, bool):
            return True, v
        if isinstance(v, int):
            return True, float(v) if cell.kind == NUMBER and "." in fmt else v
        if isinstance(v, float):
            return True, int(v) if cell.kind == INTEGER and v.is_integer() else v
        if isinstance(v, str):
            return True, parse_number(v, cell.kind)
        return True, _as_text(v)
    if cell.kind == YESNO:
        if isinstance(v, bool):
            return True, v
        t = _as_text(v).strip().casefold()
        if t in _YES:
            return True, True
        if t in _NO:
            return True, False
        if t in _UNKNOWN:
            return True, None
        conv.messages[path] = f"{show(_as_text(v))} is not yes, no or unknown"
        return True, _as_text(v)
    if cell.kind == MULTI:
        codes = [x.strip() for x in re.split(r"[,;]", unescape_text(_as_text(v))) if x.strip()]
        return (True, codes) if codes else (False, None)
    if cell.kind == UNIT:
        return True, unescape_text(_as_text(v).strip())
    # CHOICE
    t = unescape_text(_as_text(v).strip())
    if t in cell.codes:
        return True, t
    for code, label in cell.choice_labels():
        if t.casefold() in (code.casefold(), label.casefold()):
            return True, code
    return True, _as_text(v)


class _Case:
    def __init__(self, sheets: dict[str, _Sheet], case_row: int | None, cid: str):
        self.sheets = sheets
        self.case_row = case_row
        self.cid = cid
        self.rows: dict[str, list[int]] = {p: [] for p in PARTS}
        self.record: dict[str, Any] = {"schema_version": 1}
        where = f"{CASES}!row {case_row}" if case_row is not None else f"case {cid}"
        self.conv = FlatConversion(where=where, record=self.record, locate=self.locate)

    def cell_coord(self, sheet: str, row: int, column: str | None) -> str:
        s = self.sheets.get(sheet)
        if column is None:
            return f"{sheet}!row {row}"
        if s is None or column not in s.header:
            return f"{sheet}!row {row} (no column {column})"
        return f"{sheet}!{_letter(s.header[column])}{row}"

    def locate(self, path: str) -> str:
        top, idx, rest = split_path(path)
        if top in PARTS:
            rows = self.rows[top]
            if idx is None or idx >= len(rows):
                return f"{top} (rows of case {self.cid})" if rows else f"{top} (no row for case {self.cid})"
            cell = item_cell(top, rest)
            return self.cell_coord(top, rows[idx], cell.column if cell else None)
        if self.case_row is None:
            return f"{CASES} (no row for case {self.cid})"
        cell = case_cell(path)
        return self.cell_coord(CASES, self.case_row, cell.column if cell and path != "$" else None)


def records_from_sheets(sheets: dict[str, _Sheet]) -> list[FlatConversion]:
    """Sheets -> one :class:`FlatConversion` per row of ``cases`` (plus one per case_id that only
    child sheets name, reported as such)."""
    out: list[FlatConversion] = []
    by_id: dict[str, _Case] = {}
    loose: list[FlatConversion] = []
    cases = sheets.get(CASES)
    known_case = {c.column for c in case_fields()}
    if cases is not None:
        if "case_id" not in cases.header:
            raise FileProblem("sheet cases has no case_id column in its first row")
        for rownum, vals in cases.rows:
            c = _Case(sheets, rownum, "")
            for name, j in cases.header.items():
                v, fmt = vals[j - 1] if j - 1 < len(vals) else (None, "General")
                if name not in known_case:
                    if not _blank(v):
                        c.conv.problem(f"{CASES}!{_letter(j)}{rownum}", f"unknown column {show(name)} (not part of case record v1; identifiers are not accepted)", WITHHELD)
                    continue
                cell = cells_of(CASES)[name]
                present, value = _decode(cell, v, fmt, c.conv, ".".join(cell.path), f"{CASES}!{_letter(j)}{rownum}")
                if present:
                    set_path(c.record, cell.path, value)
            cid = c.record.get("case_id")
            c.cid = cid if isinstance(cid, str) else _as_text(cid) if cid is not None else ""
            if c.cid and c.cid in by_id:
                first = by_id[c.cid].case_row
                c.conv.problem(f"{CASES}!A{rownum}", f"case {show(c.cid)} has two rows in sheet cases (rows {first} and {rownum}); its labs, organs, lesions and treatments go with row {first}")
            elif c.cid:
                by_id[c.cid] = c
            out.append(c.conv)
    orphans: dict[str, list[str]] = {}
    for part in PARTS:
        s = sheets.get(part)
        if s is None:
            continue
        if "case_id" not in s.header:
            conv = FlatConversion(where=part, record={}, locate=lambda p, part=part: part, only_own_errors=True)
            conv.problem(part, f"sheet {part} has no case_id column in its first row", True)
            loose.append(conv)
            continue
        cells = cells_of(part)
        for rownum, vals in s.rows:
            j = s.header["case_id"]
            v = vals[j - 1][0] if j - 1 < len(vals) else None
            cid = "" if _blank(v) else (unescape_text(v) if isinstance(v, str) else _as_text(v))
            owner = by_id.get(cid)
            if owner is None:
                if not cid:
                    conv = FlatConversion(where=f"{part}!row {rownum}", record={}, locate=lambda p, part=part, r=rownum: f"{part}!row {r}", only_own_errors=True)
                    conv.problem(f"{part}!{_letter(j)}{rownum}", "has values but no case_id", True)
                    loose.append(conv)
                else:
                    orphans.setdefault(cid, []).append(f"{part}!{_letter(j)}{rownum}")
                continue
            item: dict[str, Any] = {}
            idx = len(owner.rows[part])
            owner.rows[part].append(rownum)
            for name, jj in s.header.items():
                if name == "case_id":
                    continue
                v, fmt = vals[jj - 1] if jj - 1 < len(vals) else (None, "General")
                cell = cells.get(name)
                if cell is None:
                    if not _blank(v):
                        owner.conv.problem(f"{part}!{_letter(jj)}{rownum}", f"unknown column {show(name)} (not part of case record v1; identifiers are not accepted)", WITHHELD)
                    continue
                present, value = _decode(cell, v, fmt, owner.conv, f"{part}[{idx}].{cell.path[0]}", f"{part}!{_letter(jj)}{rownum}")
                if present:
                    item[cell.path[0]] = value
            owner.record.setdefault(part, []).append(item)
    for cid, places in orphans.items():
        conv = FlatConversion(where=f"case {cid}", record={"case_id": cid}, locate=lambda p, cid=cid: f"case {cid}", only_own_errors=True)
        shown = ", ".join(places[:5]) + (f" and {len(places) - 5} more" if len(places) > 5 else "")
        conv.problem(places[0], f"case {show(cid)} has no row in sheet cases (rows: {shown})", True)
        loose.append(conv)
    return out + loose


def read_workbook(data: bytes) -> list[FlatConversion]:
    return records_from_sheets(read_workbook_sheets(data))


def read_csv_sheets(files: list[tuple[str, bytes]]) -> list[FlatConversion]:
    """CSV files of the sheets (``cases.csv``, ``labs.csv``, ...) -> records. Raises
    :class:`FileProblem` naming the file that cannot be read."""
    sheets: dict[str, _Sheet] = {}
    for name, data in files:
        try:
            sheet, s = read_csv_sheet(data, name)
        except FileProblem as exc:
            raise FileProblem(f"{name} {exc}") from None
        if sheet in sheets:
            raise FileProblem(f"{name}: sheet {sheet} was given twice")
        sheets[sheet] = s
    return records_from_sheets(sheets)


def write_csv_sheets(records: Iterable[dict[str, Any]]) -> dict[str, bytes]:
    """Records as CSV files of the sheets (text values, formula-safe)."""
    rows = sheet_rows(records)
    out = {}
    for sheet in SHEETS:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns(sheet))
        for r in rows[sheet]:
            w.writerow(["" if v is None else format_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in r])
        out[f"{sheet}.csv"] = buf.getvalue().encode("utf-8")
    return out
