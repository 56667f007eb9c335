"""``registry import|export|template`` for REDCap and spreadsheets.

    registry import redcap EXPORT.csv            a REDCap records export (CSV) of the registry's project
    registry import redcap --api-url URL --token-file F
    registry export redcap OUT.csv               the registry's current records, REDCap import format
    registry template redcap OUT.csv             the REDCap Data Dictionary (--write: the committed copy)
    registry import xlsx FILE.xlsx               or cases.csv labs.csv ... (CSV files of the same sheets)
    registry export xlsx OUT.xlsx                the registry's current records as a workbook
    registry template xlsx OUT.xlsx              the empty workbook, with drop-downs and an example sheet

Like ``main.py``, the handlers import the services they run (duckdb, pyarrow, openpyxl, PyCap)
when they run, so that ``registry --help`` and the other commands stay quick.

Imports print the same receipts, summary and exit codes as ``registry submit`` (0 all landed,
1 some quarantined, 2 unreadable input), with errors in the format's coordinates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from orchestration.cli.common import UserError, home_from_args
from orchestration.config import SEED_CASES_DIR


def _lines(r) -> list[str]:
    case = r.receipt.case_id or "-"
    rev = f" r{r.receipt.revision}" if r.receipt.revision is not None else ""
    out = [f"{r.status.upper():<12} {r.receipt.file} {r.where}  {case}{rev}"]
    out += [f"    {_safe(e.path)}: {_safe(e.message)}" for e in r.errors]
    return out


def _safe(s: str) -> str:
    """Untrusted text for a terminal: control characters shown escaped, never interpreted."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(s))


def _report(receipts, fmt: str) -> int:
    from orchestration.services.imports import counts  # here: openpyxl and PyCap load slowly, other commands start fast

    if fmt == "json":
        print(json.dumps([r.as_dict() for r in receipts], ensure_ascii=True))
    else:
        lines = [ln for r in receipts for ln in _lines(r)]
        if lines:
            print("\n".join(lines))
    n = counts(receipts)
    if fmt != "json":
        print(f"{sum(n.values())} records: {n['accepted']} accepted, {n['duplicate']} duplicates, {n['quarantined']} quarantined", file=sys.stderr)
    return 1 if n["quarantined"] else 0


def _read(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None


def _write(path: str, data: bytes) -> None:
    p = Path(path)
    if p.parent and not p.parent.exists():
        raise UserError(f"{path}: folder {p.parent} does not exist")
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, p)


# ----------------------------------------------------------------------------- REDCap


def cmd_import_redcap(args: argparse.Namespace) -> int:
    # heavy imports (duckdb, pyarrow, openpyxl, PyCap) only when the command runs, as in main.py
    from orchestration.services import imports  # here: openpyxl and PyCap load slowly, other commands start fast

    home = home_from_args(args)
    if args.api_url:
        if args.files:
            raise UserError("give either EXPORT.csv files or --api-url, not both")
        if not args.token_file:
            raise UserError("--api-url needs --token-file (a file holding the project's API token)")
        token = _read(args.token_file).decode("utf-8", "replace").strip()
        if not token:
            raise UserError(f"{args.token_file}: the token file is empty")
        try:
            receipts = imports.import_redcap_api(home, args.api_url, token)
        except imports.ImportProblem as exc:
            raise UserError(str(exc)) from None
        return _report(receipts, args.format)
    if not args.files:
        raise UserError("give a REDCap records export (EXPORT.csv) or --api-url URL --token-file F")
    data = [(f, _read(f)) for f in args.files]
    receipts = [r for name, d in data for r in imports.import_redcap(home, name, d)]
    return _report(receipts, args.format)


def cmd_export_redcap(args: argparse.Namespace) -> int:
    from orchestration.services import imports  # here: openpyxl and PyCap load slowly, other commands start fast

    data, n = imports.export_redcap(home_from_args(args))
    _write(args.out, data)
    print(f"wrote {n} cases to {args.out} (REDCap records import format)", file=sys.stderr)
    return 0


def cmd_template_redcap(args: argparse.Namespace) -> int:
    from orchestration.contract.formats import redcap  # here: openpyxl and PyCap load slowly, other commands start fast

    if args.write:
        print(f"wrote {redcap.write_dictionary()}", file=sys.stderr)
        return 0
    if not args.out:
        sys.stdout.write(redcap.render_dictionary())
        return 0
    _write(args.out, redcap.render_dictionary().encode("utf-8"))
    print(f"wrote the REDCap data dictionary to {args.out}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- spreadsheets


def cmd_import_xlsx(args: argparse.Namespace) -> int:
    from orchestration.services import imports  # here: openpyxl and PyCap load slowly, other commands start fast

    home = home_from_args(args)
    books = [f for f in args.files if not f.lower().endswith(".csv")]
    sheets = [f for f in args.files if f.lower().endswith(".csv")]
    if books and sheets:
        raise UserError("give either workbooks (.xlsx) or CSV files of the sheets, not both")
    data = [(f, _read(f)) for f in args.files]  # every file readable before anything lands
    receipts = []
    for f, d in data:
        if f in books:
            receipts += imports.import_xlsx(home, f, d)
    if sheets:
        receipts += imports.import_csv_sheets(home, [(f, d) for f, d in data if f in sheets])
    return _report(receipts, args.format)


def cmd_export_xlsx(args: argparse.Namespace) -> int:
    from orchestration.services import imports  # here: openpyxl and PyCap load slowly, other commands start fast

    data, n = imports.export_xlsx(home_from_args(args))
    _write(args.out, data)
    print(f"wrote {n} cases to {args.out}", file=sys.stderr)
    return 0


def seed_cases() -> list[dict]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(SEED_CASES_DIR.glob("*.json"))]


def cmd_template_xlsx(args: argparse.Namespace) -> int:
    from orchestration.contract.formats import xlsx  # here: openpyxl and PyCap load slowly, other commands start fast

    _write(args.out, xlsx.write_workbook([], example=seed_cases()))
    print(f"wrote the spreadsheet template to {args.out}", file=sys.stderr)
    return 0


# ----------------------------------------------------------------------------- parsers


def register(import_sub, export_sub, template_sub) -> None:
    s = import_sub.add_parser("redcap", help="import a REDCap records export (CSV) of the registry's project, or pull it from the REDCap API")
    s.add_argument("files", nargs="*", metavar="EXPORT.csv")
    s.add_argument("--api-url", metavar="URL", help="the REDCap API URL (https://.../api/)")
    s.add_argument("--token-file", metavar="F", help="a file holding the project's API token")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_import_redcap)

    s = import_sub.add_parser("xlsx", help="import a workbook of the registry's template (or CSV files of its sheets)")
    s.add_argument("files", nargs="+", metavar="FILE", help="FILE.xlsx, or cases.csv labs.csv organs.csv lesions.csv treatments.csv")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_import_xlsx)

    s = export_sub.add_parser("redcap", help="write the registry's current records as a REDCap import file (CSV)")
    s.add_argument("out", metavar="OUT.csv")
    s.set_defaults(func=cmd_export_redcap)

    s = export_sub.add_parser("xlsx", help="write the registry's current records as a workbook of the template")
    s.add_argument("out", metavar="OUT.xlsx")
    s.set_defaults(func=cmd_export_xlsx)

    s = template_sub.add_parser("xlsx", help="write the spreadsheet template (drop-down lists, how to fill, an example)")
    s.add_argument("out", metavar="OUT.xlsx")
    s.set_defaults(func=cmd_template_xlsx)

    s = template_sub.add_parser("redcap", help="write the REDCap Data Dictionary of the registry's project")
    s.add_argument("out", nargs="?", metavar="OUT.csv", help="default: standard output")
    s.add_argument("--write", action="store_true", help="rewrite the committed seeds/redcap dictionary")
    s.set_defaults(func=cmd_template_redcap)
