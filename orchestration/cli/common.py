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


def receipt_text(receipts) -> str:
    """The receipts of a chunk as text, a newline after each line. A receipt's first line is its
    status (padded to 12), where the record was (``file:line`` for JSON Lines, ``file[index]``
    otherwise, the file alone for a whole-file error), its case (``-`` when unknown) and ``rN`` for its
    revision; then one indented ``path: message`` line per error; all submitted text escaped
    (:func:`printable`). What repeats (a file's printed name, a status column) is worked out once."""
    where_of: dict[str, tuple[str, str]] = {}
    status_of: dict[str, str] = {}
    out = []
    for r in receipts:
        where = where_of.get(r.file)
        if where is None:
            where = where_of[r.file] = (printable(r.file), ":" if r.file.lower().endswith((".jsonl", ".ndjson")) else "[")
        status = status_of.get(r.status)
        if status is None:
            status = status_of[r.status] = f"{r.status.upper():<12} "
        record = r.record
        place = where[0] if record is None else (f"{where[0]}:{record}" if where[1] == ":" else f"{where[0]}[{record}]")
        case = r.case_id
        case = printable(case) if case else "-"
        rev = r.revision
        out.append(f"{status}{place}  {case}" if rev is None else f"{status}{place}  {case} r{rev}")
        for e in r.errors:
            out.append(f"    {printable(e.path)}: {printable(e.message)}")
    out.append("")
    return "\n".join(out) if len(out) > 1 else ""


def receipt_lines(r) -> list[str]:
    """One receipt's lines: its status, where the record was and its case (and revision), then one
    line per error. The text of :func:`receipt_text`, which formats whole chunks."""
    return receipt_text([r]).split("\n")[:-1]
