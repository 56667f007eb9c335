"""Operations: ``registry verify``, ``registry backup DEST`` and ``registry restore SRC``."""

from __future__ import annotations

import argparse
import json
import sys

from orchestration.cli.common import UserError, home_from_args


def cmd_verify(args: argparse.Namespace) -> int:
    from orchestration.services.verify import verify

    home = home_from_args(args)
    rep = verify(home, warehouse=not args.no_warehouse)
    if args.format == "json":
        print(json.dumps(rep.as_dict()))
        return 0 if rep.ok else 1
    for note in rep.notes:
        print(f"registry verify: {note}", file=sys.stderr)
    for p in rep.problems:
        print(_printable(p))
    if rep.ok:
        c = rep.counts
        print(
            f"registry verify: ok ({c.get('landed_records', 0)} landed records in {c.get('landing_batches', 0)} batches, "
            f"{c.get('quarantine_entries', 0)} quarantine entries"
            + (f", {c['warehouse_records']} in the warehouse" if "warehouse_records" in c else "")
            + ")",
            file=sys.stderr,
        )
        return 0
    print(f"registry verify: {len(rep.problems)} problems", file=sys.stderr)
    return 1


def _printable(s: str) -> str:
    """No raw control character of a submitted id reaches the terminal."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}" for ch in s)


def register(sub) -> None:
    s = sub.add_parser("verify", help="check the landing zone, audit log, quarantine and warehouse against each other")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.add_argument("--no-warehouse", action="store_true", help="skip the warehouse (landing zone, audit and quarantine only)")
    s.set_defaults(func=cmd_verify)
    _ = UserError
