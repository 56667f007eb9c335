"""``registry import fhir BUNDLE.json... --site SITE_ID``: FHIR R4 bundles in, one case each."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import unicodedata
from pathlib import Path

from orchestration.cli.common import UserError, home_from_args, receipt_lines

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _clean(line: str) -> str:
    """Untrusted text (codes and displays from a bundle) without control or format characters."""
    return "".join(ch if unicodedata.category(ch) not in ("Cc", "Cf") else f"\\u{ord(ch):04x}" for ch in line)


def cmd_import_fhir(args: argparse.Namespace) -> int:
    # imported here, as main.py does for every command, so that `registry` starts fast (fhir.resources, pydantic models)
    from orchestration.contract.model import REF  # here: fhir.resources load slowly, other commands start fast
    from orchestration.services.import_fhir import import_bundles  # here: fhir.resources load slowly, other commands start fast

    index_date = None
    if args.index_date is not None:
        try:
            if not _DATE.match(args.index_date):
                raise ValueError
            index_date = dt.date.fromisoformat(args.index_date)
        except ValueError:
            raise UserError(f"--index-date must be a calendar date YYYY-MM-DD, not {json.dumps(args.index_date)}") from None
    if args.case_id is not None and len(args.bundles) > 1:
        raise UserError("--case-id names one case: give it with one bundle only")
    if args.revision < 1:
        raise UserError("--revision must be 1 or more")
    if args.source not in REF.codes("source"):
        raise UserError(f"--source must be one of {', '.join(REF.codes('source'))}")
    bundles = []
    for p in args.bundles:
        path = Path(p)
        if not path.is_file():
            raise UserError(f"{p}: no such file")
        try:
            bundles.append((p, path.read_bytes()))
        except OSError as exc:
            raise UserError(f"{p}: cannot be read ({exc.strerror})") from None
    home = home_from_args(args)
    results = import_bundles(
        home, bundles, site_id=args.site, index_date=index_date, case_id=args.case_id, source=args.source, revision=args.revision
    )
    counts = {"accepted": 0, "duplicate": 0, "quarantined": 0}
    for res in results:
        counts[res.receipt.status] += 1
    if args.format == "json":
        out = []
        for res in results:
            d = res.receipt.as_dict()
            d["input"] = res.given_name
            d["notices"] = res.notices
            out.append(d)
        print(json.dumps(out, ensure_ascii=True))
    else:
        for res in results:
            lines = receipt_lines(res.receipt)
            if res.given_name != res.receipt.file:
                lines[0] += f"  (from {res.given_name})"
            lines += [f"    notice: {n}" for n in res.notices]
            print("\n".join(_clean(ln) for ln in lines))
        total = sum(counts.values())
        print(
            f"{total} bundle{'' if total == 1 else 's'}: {counts['accepted']} accepted, {counts['duplicate']} duplicates, {counts['quarantined']} quarantined",
            file=sys.stderr,
        )
    return 1 if counts["quarantined"] else 0


def register(import_sub) -> None:
    s = import_sub.add_parser(
        "fhir",
        help="import FHIR R4 bundles (collection, transaction or searchset), one case per bundle",
        description="Convert each FHIR R4 Bundle into one de-identified case record and submit it (same checks, "
        "receipts and quarantine as `registry submit`). See docs/import-fhir.md.",
    )
    s.add_argument("bundles", nargs="+", metavar="BUNDLE.json")
    s.add_argument("--site", required=True, metavar="SITE_ID", help="the reporting site's registry code")
    s.add_argument("--index-date", metavar="YYYY-MM-DD", help="day 0 (default: the start of the admission Encounter)")
    s.add_argument("--case-id", metavar="ID", help="the case's registry id (default: a keyed hash of the Patient identifier)")
    s.add_argument("--revision", type=int, default=1, metavar="N",
                   help="the records' revision (default 1): a corrected export of a case already in the registry is its next revision")
    s.add_argument("--source", default="chart_review", metavar="SOURCE", help="record source (default chart_review)")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_import_fhir)
