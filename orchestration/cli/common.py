"""What every ``registry`` sub-command shares: the one-line user error, the registry home of a
command line, and how a receipt is printed."""

from __future__ import annotations

import argparse
from pathlib import Path

from orchestration.config import Home
from orchestration.registry.textsafety import escape_controls


class UserError(Exception):
    """A problem the user can fix; printed as one line."""


def home_from_args(args: argparse.Namespace) -> Home:
    """``--home`` when given, else ``$REGISTRY_HOME`` (default ``./data``): resolved once per command,
    then passed on (child processes get it in their own environment, see ``serve``)."""
    if getattr(args, "home", None):
        return Home(Path(args.home).expanduser().resolve())
    return Home.from_env()


def printable(value) -> str:
    """Submitted text as printed by every command: control characters escaped (``\\x1b``, ``\\r``),
    never sent raw to a terminal."""
    return escape_controls(value)


def receipt_lines(r) -> list[str]:
    where = printable(r.file) + ("" if r.record is None else (f":{r.record}" if r.file.lower().endswith((".jsonl", ".ndjson")) else f"[{r.record}]"))
    case = printable(r.case_id) if r.case_id else "-"
    rev = f" r{r.revision}" if r.revision is not None else ""
    lines = [f"{r.status.upper():<12} {where}  {case}{rev}"]
    for e in r.errors:
        lines.append(f"    {printable(e.path)}: {printable(e.message)}")
    return lines
