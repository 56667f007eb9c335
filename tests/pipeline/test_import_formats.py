"""`registry import|export|template` for REDCap and spreadsheets, end to end through the real
command line (landing only: no pipeline build is needed)."""

from __future__ import annotations

import csv
import http.server
import io
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import openpyxl
import orjson
import pytest

from orchestration.config import REPO_ROOT, Home
from orchestration.contract.formats import redcap, xlsx
from orchestration.services.imports import current_records
from orchestration.synthetic.generate import generate_records
from tests.support import seed_case, write_jsonl

N_CASES = 300


def cli(home: Home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_HOME": str(home.root), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("REGISTRY_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True, timeout=600)


def canon(records) -> list[bytes]:
    return [orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in records]


@pytest.fixture(scope="module")
def cohort_home(tmp_path_factory) -> Home:
    """A registry home holding the seed case and a synthetic cohort, submitted as JSON."""
    root = tmp_path_factory.mktemp("cohort")
    home = Home(root / "home").ensure()
    f = write_jsonl(root / "cohort.jsonl", [seed_case(), *generate_records(N_CASES, 13)])
    r = cli(home, "submit", str(f))
    assert r.returncode == 0, r.stderr
    return home


@pytest.mark.parametrize("fmt,ext,channel", [("redcap", "csv", "redcap"), ("xlsx", "xlsx", "xlsx")])
def test_export_then_import_gives_identical_records(cohort_home, tmp_path, fmt, ext, channel):
    out = tmp_path / f"export.{ext}"
    r = cli(cohort_home, "export", fmt, str(out))
    assert r.returncode == 0, r.stderr
    assert f"wrote {N_CASES + 1} cases" in r.stderr
    fresh = Home(tmp_path / "fresh").ensure()
    r = cli(fresh, "import", fmt, str(out), "--format", "json")
    assert r.returncode == 0, r.stderr
    receipts = json.loads(r.stdout)
    assert [x["status"] for x in receipts] == ["accepted"] * (N_CASES + 1)
    assert canon(current_records(fresh)) == canon(current_records(cohort_home))
    # the same file into the registry it came from: every record is a duplicate (a no-op)
    r = cli(cohort_home, "import", fmt, str(out))
    assert r.returncode == 0, r.stderr
    assert f"{N_CASES + 1} records: 0 accepted, {N_CASES + 1} duplicates, 0 quarantined" in r.stderr
    channels = {e["channel"] for e in map(json.loads, fresh.audit_log.read_text().splitlines()) if e.get("event") == "submission"}
    assert channels == {channel}


def test_csv_sheets_import_like_the_workbook(tmp_path):
    records = [seed_case(), *generate_records(20, 3)]
    files = []
    for name, data in xlsx.write_csv_sheets(records).items():
        p = tmp_path / name
        p.write_bytes(data)
        files.append(str(p))
    home = Home(tmp_path / "home").ensure()
    r = cli(home, "import", "xlsx", *files)
    assert r.returncode == 0, r.stdout + r.stderr
    assert canon(current_records(home)) == canon(sorted(records, key=lambda x: x["case_id"]))


def _bad_redcap_export(tmp_path: Path) -> tuple[Path, int]:
    rows = []
    for i in range(1, 6):
        rec = dict(seed_case(), case_id=f"RC-{i:03d}")
        for row in redcap.export_rows([rec]):
            row["record_id"] = str(i + 14)
            rows.append(row)
    labs17 = [r for r in rows if r["record_id"] == "17" and r["redcap_repeat_instrument"] == "labs"]
    pthrp = next(r for r in labs17 if r["lab_analyte"] == "pthrp")
    pthrp["lab_unit"] = "pmol_l"  # record 17: a unit not accepted for PTHrP
    case18 = next(r for r in rows if r["record_id"] == "18" and not r["redcap_repeat_instrument"])
    case18["kidney_status"] = "failing"  # record 18: an unknown code
    case18["age_years"] = ""  # and a missing required field
    case18["patient_name"] = "Jane Doe"  # and a column a site added: refused, its value not kept
    p = tmp_path / "export.csv"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=redcap.export_columns() + ["patient_name"], restval="")
    w.writeheader()
    w.writerows(rows)
    p.write_text(buf.getvalue())
    return p, int(pthrp["redcap_repeat_instance"])


def test_bad_redcap_records_are_named_in_redcap_words_and_neighbours_land(tmp_path):
    home = Home(tmp_path / "home").ensure()
    export, instance = _bad_redcap_export(tmp_path)
    r = cli(home, "import", "redcap", str(export))
    assert r.returncode == 1
    assert f'record 17, labs #{instance}, lab_unit: "pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)' in r.stdout
    assert 'record 18, case, kidney_status: "failing" is not an accepted value' in r.stdout
    assert "record 18, case, age_years: is required but missing" in r.stdout
    assert "record 18, case, patient_name: unknown field" in r.stdout
    assert not [p for p in home.root.rglob("*") if p.is_file() and b"Jane Doe" in p.read_bytes()]
    assert "5 records: 3 accepted, 0 duplicates, 2 quarantined" in r.stderr
    assert {x["case_id"] for x in current_records(home)} == {"RC-001", "RC-002", "RC-005"}
    r = cli(home, "import", "redcap", str(export), "--format", "json")
    receipts = json.loads(r.stdout)
    assert [x["where"] for x in receipts] == [f"record {i}" for i in range(15, 20)]
    bad = next(x for x in receipts if x["where"] == "record 17")
    assert bad["errors"][0]["json_path"].startswith("labs[") and bad["errors"][0]["path"].startswith("record 17, labs #")
    quarantine = json.loads(cli(home, "quarantine", "--format", "json").stdout)
    assert {q["case_id"] for q in quarantine} == {"RC-003", "RC-004"}


@pytest.mark.parametrize(
    "fmt,name,data",
    [
        ("redcap", "broken.csv", b"\xff\xfe\x00\x01 not a csv"),
        ("redcap", "people.csv", b"name,dob\nJane Doe,1950-01-01\n"),
        ("redcap", "case.json", json.dumps(seed_case()).encode()),  # never lands by another door
        ("xlsx", "broken.xlsx", b"PK\x03\x04 this is no workbook"),
        ("xlsx", "renamed.xlsx", b"case_id,age\nX,1\n"),
    ],
)
def test_broken_files_are_quarantined_whole_with_a_clear_reason(tmp_path, fmt, name, data):
    home = Home(tmp_path / "home").ensure()
    f = tmp_path / name
    f.write_bytes(data)
    r = cli(home, "import", fmt, str(f))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("QUARANTINED") and "whole file" in lines[0]
    assert lines[1].strip().startswith(f"{f}: ")
    assert current_records(home) == []
    (q,) = json.loads(cli(home, "quarantine", "--format", "json").stdout)
    assert q["case_id"] is None
    kept = b"".join(p.read_bytes() for p in home.root.rglob("*") if p.is_file())
    assert data[:12] not in kept and b"Jane Doe" not in kept  # the unreadable content is not kept


def test_bad_workbook_rows_are_named_by_cell_and_neighbours_land(tmp_path):
    records = [dict(seed_case(), case_id=f"XL-{i}") for i in range(3)]
    wb = openpyxl.load_workbook(io.BytesIO(xlsx.write_workbook(records)))
    bad_row = None
    for row in wb["labs"].iter_rows(min_row=2):
        if row[0].value == "XL-1" and row[1].value == "pthrp":
            row[3].value = "pmol/L"
            bad_row = row[3].row
    for row in wb["organs"].iter_rows(min_row=2):
        if row[0].value == "XL-2":
            row[1].value = "elbow"  # an unknown organ code
            bad_organ = row[1].row
            break
    f = tmp_path / "cases.xlsx"
    wb.save(f)
    home = Home(tmp_path / "home").ensure()
    r = cli(home, "import", "xlsx", str(f))
    assert r.returncode == 1
    assert f'labs!D{bad_row}: "pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)' in r.stdout
    assert f'organs!B{bad_organ}: "elbow" is not an accepted value' in r.stdout
    assert {x["case_id"] for x in current_records(home)} == {"XL-0"}


def test_template_commands(tmp_path):
    home = Home(tmp_path / "home").ensure()
    r = cli(home, "template", "xlsx", str(tmp_path / "t.xlsx"))
    assert r.returncode == 0, r.stderr
    wb = openpyxl.load_workbook(tmp_path / "t.xlsx")
    assert {"cases", "labs", "organs", "lesions", "treatments", "how to fill", "example"} <= set(wb.sheetnames)
    r = cli(home, "template", "redcap")
    assert r.returncode == 0 and r.stdout == redcap.DICTIONARY_PATH.read_text(encoding="utf-8")
    r = cli(home, "import", "redcap", str(tmp_path / "missing.csv"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_shipped_examples_are_the_seed_case(tmp_path):
    examples = REPO_ROOT / "seeds" / "examples"
    assert canon([c.record for c in redcap.read_export((examples / "seed-case.redcap.csv").read_bytes())]) == canon([seed_case()])
    assert canon([c.record for c in xlsx.read_workbook((examples / "seed-case.xlsx").read_bytes())]) == canon([seed_case()])


def test_uploads_on_the_submit_page_are_dispatched_by_kind(tmp_path):
    from orchestration.services.imports import import_uploads, template_xlsx

    home = Home(tmp_path / "home").ensure()
    examples = REPO_ROOT / "seeds" / "examples"
    sheets = xlsx.write_csv_sheets([dict(seed_case(), case_id="CSV-1")])
    files = [
        ("seed-case.redcap.csv", (examples / "seed-case.redcap.csv").read_bytes()),
        ("seed-case.xlsx", (examples / "seed-case.xlsx").read_bytes()),
        *sheets.items(),
        ("notes.txt", b"hello"),
    ]
    receipts = import_uploads(home, files)
    assert [(r.receipt.file, r.status) for r in receipts] == [
        ("seed-case.redcap.csv", "accepted"),
        ("seed-case.xlsx", "duplicate"),
        ("notes.txt", "quarantined"),
        (" + ".join(sheets), "accepted"),
    ]
    from dashboards.lib.case_form import batch_rows  # the /submit page's results table takes these receipts as they are
    from orchestration.services.imports import submit_uploads

    mixed = submit_uploads(home, [("more.json", orjson.dumps(dict(seed_case(), case_id="JSON-1"))), files[0]])
    assert [(r.file, r.status) for r in mixed] == [("more.json", "accepted"), ("seed-case.redcap.csv", "duplicate")]

    rows = batch_rows(receipts)
    assert rows[2]["reasons"].startswith("notes.txt: ") and rows[0]["case_id"] == "LIT-AUTOPSY-002"
    assert "LIT-AUTOPSY-002" in [c.value for row in openpyxl.load_workbook(io.BytesIO(template_xlsx()))["example"].iter_rows() for c in row]


# ----------------------------------------------------------------------------- the REDCap API (PyCap)

TOKEN = "0123456789ABCDEF0123456789ABCDEF"


class _StubRedcap(http.server.BaseHTTPRequestHandler):
    export: bytes = b""
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length", 0))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        type(self).seen.append({k: v[0] for k, v in form.items()})
        if form.get("token", [""])[0] != TOKEN:
            self._reply(403, b'{"error": "You do not have permissions to use the API"}', "application/json")
        elif form.get("content", [""])[0] == "metadata":  # PyCap asks for the fields first, as REDCap serves them
            keys = ["field_name", "form_name", "section_header", "field_type", "field_label", "select_choices_or_calculations",
                    "field_note", "text_validation_type_or_show_slider_number", "text_validation_min", "text_validation_max",
                    "identifier", "branching_logic", "required_field", "custom_alignment", "question_number",
                    "matrix_group_name", "matrix_ranking", "field_annotation"]
            meta = [dict(zip(keys, row.values())) for row in redcap.dictionary_rows()]
            self._reply(200, json.dumps(meta).encode(), "application/json")
        elif form.get("content", [""])[0] == "record" and form.get("format", [""])[0] == "csv":
            self._reply(200, type(self).export, "text/csv")
        else:
            self._reply(400, b'{"error": "not in this stub"}', "application/json")

    def _reply(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def stub_api():
    _StubRedcap.export = redcap.write_export([seed_case(), *generate_records(10, 21)])
    _StubRedcap.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _StubRedcap)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/"
    finally:
        server.shutdown()
        server.server_close()


def test_import_from_the_redcap_api(tmp_path, stub_api):
    home = Home(tmp_path / "home").ensure()
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    r = cli(home, "import", "redcap", "--api-url", stub_api, "--token-file", str(token))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "11 records: 11 accepted" in r.stderr
    assert TOKEN not in r.stdout + r.stderr
    assert _StubRedcap.seen[-1]["content"] == "record" and _StubRedcap.seen[-1]["rawOrLabel"] == "raw"
    assert len(current_records(home)) == 11
    token.write_text("F" * 32)
    r = cli(home, "import", "redcap", "--api-url", stub_api, "--token-file", str(token))
    assert r.returncode == 2 and "permissions" in r.stderr and "F" * 32 not in r.stderr
    r = cli(home, "import", "redcap", "--api-url", "http://redcap.example.org/api/", "--token-file", str(token))
    assert r.returncode == 2 and "https" in r.stderr


def test_export_reads_the_latest_revision_and_skips_withdrawn_cases(tmp_path):
    from orchestration.registry.landing import submit
    from orchestration.services.imports import export_redcap
    from orchestration.services.withdraw import withdraw

    home = Home(tmp_path / "home").ensure()
    first = dict(seed_case(), case_id="REV-1", revision=1)
    second = dict(seed_case(), case_id="REV-1", revision=2, onset_day=-50)
    gone = dict(seed_case(), case_id="GONE-1")
    receipts = submit(home, [("a.json", orjson.dumps([first, gone])), ("b.json", orjson.dumps([second]))])
    assert [r.status for r in receipts] == ["accepted"] * 3
    withdraw(home, "GONE-1", "consent withdrawn", build=False)
    assert canon(current_records(home)) == canon([second])
    data, n = export_redcap(home)
    assert n == 1 and [c.record for c in redcap.read_export(data)] == [second]
