"""Operations: ``registry verify``, ``registry backup DEST`` and ``registry restore SRC``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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


def cmd_backup(args: argparse.Namespace) -> int:
    from orchestration.services.backup import BackupError, backup

    home = home_from_args(args)
    try:
        res = backup(home, Path(args.dest), with_warehouse=args.with_warehouse)
    except BackupError as exc:
        raise UserError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(res.as_dict()))
    else:
        print(
            f"backed up {home.root} to {res.dest}: {res.files} files, {res.bytes / 1e6:.1f} MB "
            f"({res.counts['landing_batches']} landing batches, {res.counts['quarantine_batches']} quarantine batches); "
            f"checksums in {res.dest / 'manifest.json'}"
        )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from orchestration.services.backup import BackupError, restore

    home = home_from_args(args)
    try:
        n = restore(Path(args.src), home)
    except BackupError as exc:
        raise UserError(str(exc)) from None
    print(f"restored {n} files into {home.root}; every checksum matched. Now run `registry build` to rebuild the warehouse and the marts.")
    return 0


def _printable(s: str) -> str:
    """No raw control character of a submitted id reaches the terminal."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}" for ch in s)


def register(sub) -> None:
    s = sub.add_parser("verify", help="check the landing zone, audit log, quarantine and warehouse against each other")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.add_argument("--no-warehouse", action="store_true", help="skip the warehouse (landing zone, audit and quarantine only)")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("backup", help="copy the landing zone, quarantine, audit log and configuration to DEST (online, consistent)")
    s.add_argument("dest", metavar="DEST", help="a new or empty folder")
    s.add_argument("--with-warehouse", action="store_true", help="also copy the warehouse and the current snapshot (both rebuildable)")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_backup)

    s = sub.add_parser("restore", help="restore a backup into an empty registry home (then run `registry build`)")
    s.add_argument("src", metavar="SRC", help="a folder written by `registry backup`")
    s.set_defaults(func=cmd_restore)
