"""The spreadsheet template and the workbook / CSV-sheet converters."""

from __future__ import annotations

import copy
import datetime
import io

import openpyxl
import orjson
import pytest

from orchestration.contract.formats import xlsx
from orchestration.contract.model import REF
from orchestration.contract.validate import validate_record
from orchestration.synthetic.generate import generate_records
from tests.support import MINIMAL, seed_case


def canon(rec) -> bytes:
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)


def _mapped(conv) -> list[str]:
    out = []
    for e in validate_record(conv.record):
        if conv.only_own_errors and e.path not in conv.messages:
            continue
        where, msg = conv.map_error(e.path, e.message)
        out.append(f"{where}: {msg}")
    return out


def test_template_has_a_sheet_per_entity_drop_downs_a_how_to_and_an_example():
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.write_workbook([], example=[seed_case()])))
    assert wb.sheetnames[:2] == ["how to fill", "example"]
    for s in xlsx.SHEETS:
        ws = wb[s]
        assert [c.value for c in ws[1]] == xlsx.columns(s)
        assert ws.max_row == 1  # empty: the example is on its own sheet and is not imported
        if s != "cases":
            assert ws["A1"].value == "case_id"
    assert wb["lists"].sheet_state == "hidden"
    # drop-downs from the vocabularies; units listed per analyte through one defined name each
    cases_dv = {str(dv.sqref).split(":")[0]: dv for dv in wb["cases"].data_validations.dataValidation}
    sex_col = openpyxl.utils.get_column_letter(xlsx.columns("cases").index("sex") + 1)
    dv = cases_dv[f"{sex_col}2"]
    assert dv.type == "list"
    ref = dv.formula1.split("!")[1].replace("$", "")
    values = [c.value for row in wb["lists"][ref] for c in row]
    assert values == list(REF.codes("sex"))
    labs_dv = [dv for dv in wb["labs"].data_validations.dataValidation if "INDIRECT" in (dv.formula1 or "")]
    assert labs_dv and str(labs_dv[0].sqref).startswith("D2")
    assert set(wb.defined_names) >= {f"units_{a}" for a in REF.analytes}
    calcium = wb.defined_names["units_calcium"].attr_text.split("!")[1].replace("$", "")
    assert [c.value for row in wb["lists"][calcium] for c in row] == [u.unit for u in REF.analytes["calcium"].units]
    yes_no = [dv for dv in wb["cases"].data_validations.dataValidation if dv.formula1 == '"yes,no,unknown"']
    assert yes_no
    # the example sheet holds the seed case
    example = [c.value for row in wb["example"].iter_rows() for c in row]
    assert "LIT-AUTOPSY-002" in example and "pthrp" in example
    how = " ".join(str(c.value) for row in wb["how to fill"].iter_rows() for c in row if c.value)
    assert "unknown is not no" in how.lower() and "labs!D7" in how


def test_workbook_and_csv_round_trips_are_exact():
    records = [seed_case(), MINIMAL, *generate_records(200, 5)]
    book = xlsx.read_workbook(xlsx.write_workbook(records))
    assert [canon(c.record) for c in book] == [canon(r) for r in records]
    sheets = xlsx.read_csv_sheets(list(xlsx.write_csv_sheets(records).items()))
    assert [canon(c.record) for c in sheets] == [canon(r) for r in records]


def test_export_never_writes_a_formula():
    rec = copy.deepcopy(MINIMAL)
    rec["citation"] = '=HYPERLINK("http://evil.invalid","x")'
    rec["labs"] = [{"analyte": "calcium", "value": 2.2, "unit": "@mmol/L", "day": 0}]
    others = [("TEST-0002", "+1+1"), ("TEST-0003", "-2+3"), ("TEST-0004", "'=already quoted")]
    records = [rec] + [dict(copy.deepcopy(MINIMAL), case_id=c, citation=t) for c, t in others]
    data = xlsx.write_workbook(records)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", f"{ws.title}!{c.coordinate} is a formula"
                if isinstance(c.value, str) and ws.title in xlsx.SHEETS:
                    assert c.value[:1] not in ("=", "+", "-", "@"), f"{ws.title}!{c.coordinate}: {c.value}"
    back = xlsx.read_workbook(data)
    assert [canon(c.record) for c in back] == [canon(r) for r in records]


def test_control_characters_do_not_break_an_export():
    rec = dict(copy.deepcopy(MINIMAL), citation="bell\x07 and nul\x00")
    (back,) = xlsx.read_workbook(xlsx.write_workbook([rec]))
    assert back.record["citation"] == "bell\ufffd and nul\ufffd"


def _book(records, edit) -> bytes:
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.write_workbook(records)))
    edit(wb)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_errors_name_sheet_and_cell_and_neighbours_are_clean():
    a, b, c = (dict(copy.deepcopy(seed_case()), case_id=f"CASE-{i}") for i in range(3))

    def edit(wb):
        labs = wb["labs"]
        for row in labs.iter_rows(min_row=2):
            if row[0].value == "CASE-1" and row[1].value == "pthrp":
                row[3].value = "pmol/L"
                edit.row = row[3].row
        cases = wb["cases"]
        cases.cell(row=4, column=xlsx.columns("cases").index("age_years") + 1).value = None
        cases.cell(row=4, column=xlsx.columns("cases").index("sex") + 1).value = "robot"

    converted = xlsx.read_workbook(_book([a, b, c], edit))
    assert [x.where for x in converted] == ["cases!row 2", "cases!row 3", "cases!row 4"]
    assert _mapped(converted[0]) == []
    assert _mapped(converted[1]) == [f'labs!D{edit.row}: "pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)']
    age = openpyxl.utils.get_column_letter(xlsx.columns("cases").index("age_years") + 1)
    sex = openpyxl.utils.get_column_letter(xlsx.columns("cases").index("sex") + 1)
    errors = _mapped(converted[2])
    assert f"cases!{age}4: is required but missing" in errors
    assert any(e.startswith(f'cases!{sex}4: "robot" is not an accepted value') for e in errors)


def test_orphan_rows_unknown_columns_and_bad_yes_no():
    def edit(wb):
        wb["labs"].append(["NO-SUCH-CASE", "calcium", 9, "mg/dL", 0])
        cases = wb["cases"]
        cases.cell(row=1, column=cases.max_column + 1).value = "patient_name"
        cases.cell(row=2, column=cases.max_column).value = "Jane Doe"
        cases.cell(row=2, column=xlsx.columns("cases").index("autopsy") + 1).value = "maybe"
        day = xlsx.columns("treatments").index("day") + 1
        wb["treatments"].cell(row=2, column=day).value = datetime.datetime(2024, 3, 7)  # Excel made a date of it

    converted = xlsx.read_workbook(_book([seed_case()], edit))
    assert len(converted) == 2
    errors = _mapped(converted[0])
    assert any("patient_name" in e and "unknown column" in e for e in errors)
    autopsy = openpyxl.utils.get_column_letter(xlsx.columns("cases").index("autopsy") + 1)
    assert f'cases!{autopsy}2: "maybe" is not yes, no or unknown' in errors
    day = openpyxl.utils.get_column_letter(xlsx.columns("treatments").index("day") + 1)
    assert any(e.startswith(f"treatments!{day}2: is a calendar date") for e in errors)
    assert "2024" not in orjson.dumps(converted[0].record).decode()
    orphan = _mapped(converted[1])
    assert len(orphan) == 1 and orphan[0].startswith("labs!A") and "has no row in sheet cases" in orphan[0]


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04 truncated", b"case_id,age\nX,1\n", b"\x00" * 100])
def test_broken_workbooks_are_reported_as_a_whole(data):
    with pytest.raises(xlsx.FileProblem, match="is not a readable XLSX workbook"):
        xlsx.read_workbook(data)


def test_csv_sheets_are_named_by_file():
    assert xlsx.sheet_of("cases.csv") == "cases"
    assert xlsx.sheet_of("site-A-labs.csv") == "labs"
    assert xlsx.sheet_of("notes.csv") is None
    with pytest.raises(xlsx.FileProblem, match="cannot tell which sheet"):
        xlsx.read_csv_sheets([("notes.csv", b"a,b\n")])
