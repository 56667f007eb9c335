"""``registry disclosure show`` / ``registry disclosure set --min-cell K``: the disclosure policy of a
registry home (``$REGISTRY_HOME/config/disclosure.toml``, see ``docs/disclosure.md``). A change is
written to the audit log."""

from __future__ import annotations

import argparse
import json

from orchestration.cli.common import UserError, home_from_args
from orchestration.registry import audit


def _rules():
    # imported here: the disclosure rules import pandas (~0.35 s), which `registry submit` and the
    # other commands sharing this parser do not need
    from orchestration.analytics import disclosure

    return disclosure


def _load(home):
    disclosure = _rules()
    try:
        return disclosure.load_policy(home)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def cmd_show(args: argparse.Namespace) -> int:
    disclosure = _rules()
    home = home_from_args(args)
    pol = _load(home)
    if args.format == "json":
        print(json.dumps({"min_cell": pol.min_cell, "source": pol.source, "default": pol.source is None}))
    else:
        where = pol.source or f"default (no {disclosure.policy_file(home)})"
        print(f"min_cell = {pol.min_cell}    ({where})")
        print(pol.describe())
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    disclosure = _rules()
    home = home_from_args(args)
    try:
        k = disclosure.validate_min_cell(args.min_cell)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    before = _load(home).min_cell
    pol = disclosure.save_policy(home, k)
    audit.event(home, "disclosure_policy", min_cell=pol.min_cell, previous_min_cell=before)
    if args.format == "json":
        print(json.dumps({"min_cell": pol.min_cell, "previous_min_cell": before, "source": pol.source}))
    else:
        print(f"min_cell = {pol.min_cell} (was {before}); written to {pol.source}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("disclosure", help="show or set the disclosure policy (minimum cell size) of the public figures")
    dsub = s.add_subparsers(dest="disclosure_command", required=True, metavar="ACTION")
    d = dsub.add_parser("show", help="print the policy in force")
    d.add_argument("--format", choices=("text", "json"), default="text")
    d.set_defaults(func=cmd_show)
    d = dsub.add_parser("set", help="set the minimum cell size k (counts of 1..k-1 are suppressed)")
    d.add_argument("--min-cell", required=True, metavar="K", help="whole number from 1 to 1000 (default policy: 5)")
    d.add_argument("--format", choices=("text", "json"), default="text")
    d.set_defaults(func=cmd_set)
