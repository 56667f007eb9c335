"""Untrusted text stays data: shown in a terminal without its control characters, written to CSV
without a spreadsheet formula.

- :func:`escape_controls` writes C0/C1 control characters, DEL, the Unicode line and paragraph
  separators and the bidirectional overrides as visible escapes (``\\x1b``, ``\\r``, ``\\u202e``),
  so a case id can neither move the cursor, ring the bell nor forge an ``ACCEPTED`` line.
- :func:`safe_csv_cell` / :func:`to_safe_csv` neutralise cells that a spreadsheet would read as a
  formula (OWASP "CSV injection": a leading ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a
  leading ``'``). Numbers, and text that is just a number (``-3.2``), are left as they are.
"""

from __future__ import annotations

import io
import re
from typing import Any

_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group()
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


def escape_controls(value: Any) -> str:
    """``value`` as text safe to print to a terminal (a backslash is doubled only where it would
    make an escape ambiguous: never, since control characters are the only thing rewritten)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # no character of _CONTROLS is printable (categories Cc, Cf, Zl, Zp)
        return text
    return _CONTROLS.sub(_escape, text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_csv_cell(value: Any) -> Any:
    """A cell as written to CSV: text a spreadsheet would run as a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_safe_csv(df) -> str:
    """A pandas DataFrame as CSV text, header and text cells neutralised (numbers untouched)."""
    out = df.copy()
    out.columns = [safe_csv_cell(str(c)) for c in out.columns]
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(safe_csv_cell)
    buf = io.StringIO()
    out.to_csv(buf, index=False)
    return buf.getvalue()
