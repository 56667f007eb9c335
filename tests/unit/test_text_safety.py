"""Untrusted text stays data: no raw control characters from submitted ids, field names or
messages in `registry submit`, `quarantine` and `audit`; no spreadsheet formula in a CSV export."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pyarrow as pa
import pytest

from orchestration.registry.textsafety import escape_controls, safe_csv_cell, to_safe_csv
from orchestration.sql.console import QueryResult, format_result
from tests.support import record, run_cli

RAW = ("\x1b", "\r", "\x07", "\x9b", "\u2028", "\u202e")


def test_escape_controls():
    assert escape_controls("a\x1b[2Kb\rc\x07\n\t\u202e") == "a\\x1b[2Kb\\rc\\x07\\n\\t\\u202e"
    assert escape_controls("Müller µmol/L ✓") == "Müller µmol/L ✓"


def test_submit_quarantine_and_audit_never_print_raw_control_characters(home, tmp_path):
    forged = "X\r\x1b[2KACCEPTED    evil.jsonl:1  FAKE-0001\x07"
    rec = record(case_id=forged, **{"bad\x1b]0;title\x07field": 1})
    f = tmp_path / "c\x1b[31m.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    outputs = []
    p = run_cli("submit", str(f), home=home)
    assert p.returncode == 1
    outputs.append(p.stdout + p.stderr)
    outputs.append(run_cli("quarantine", home=home).stdout)
    outputs.append(run_cli("audit", home=home).stdout)
    for out in outputs:
        assert not any(c in out for c in RAW), repr(out)
        assert "\\x1b" in out
    assert "X\\r\\x1b[2KACCEPTED" in outputs[0]
    assert sum(1 for ln in outputs[0].splitlines() if ln.startswith("ACCEPTED")) == 0


@pytest.mark.parametrize("cell", ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-1+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1"])
def test_formula_cells_are_neutralised(cell):
    assert safe_csv_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["-3.2", "+4", "1e5", "plain", "", "mg/dL"])
def test_ordinary_cells_are_kept(cell):
    assert safe_csv_cell(cell) == cell


def test_dataframe_csv_keeps_numbers_and_neutralises_text():
    df = pd.DataFrame({"value": [-3.2, 4.0], "case_id": ["=HYPERLINK(1)", "A-1"], "=cmd": [1, 2]})
    rows = list(csv.reader(io.StringIO(to_safe_csv(df))))
    assert rows == [["value", "case_id", "'=cmd"], ["-3.2", "'=HYPERLINK(1)", "1"], ["4.0", "A-1", "2"]]


def test_sql_console_csv_is_neutralised():
    t = pa.table({"x": [-3.2], "s": ["@SUM(A1)"], "n": [-5]})
    out = format_result(QueryResult(["x", "s", "n"], t, 0.0, False, 1), "csv")
    assert list(csv.reader(io.StringIO(out))) == [["x", "s", "n"], ["-3.2", "'@SUM(A1)", "-5"]]


def test_sql_console_table_escapes_control_characters():
    t = pa.table({"s": ["a\x1b[31mb\r\nc\x07"]})
    out = format_result(QueryResult(["s"], t, 0.0, False, 1), "table")
    assert not any(c in out for c in RAW) and "a\\x1b[31mb\\r\\nc\\x07" in out
