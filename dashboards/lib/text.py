"""Submitted and URL-supplied text on a page is shown as text, never interpreted.

Streamlit renders Markdown (and its own directives such as ``:red[...]`` or ``:material/x:``) in
``st.markdown``, ``st.success``, ``st.info`` and friends: a case id, file name, field name or note
typed by a submitter could otherwise load an image from an outside address (a tracking beacon),
render a link, or style the page. :func:`lit` puts any such value into a Markdown code span, whose
content CommonMark shows verbatim: no emphasis, link, image, HTML or directive inside it.
Tables (``st.dataframe``) and ``st.text``/``st.code`` show text as text already.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

_BACKTICKS = re.compile(r"`+")


def plain(value: Any, *, limit: int = 300) -> str:
    """One line of visible characters: control and format characters (newlines, escape sequences,
    bidirectional overrides) become ``?``, and a long value is cut with an ellipsis."""
    s = "" if value is None else str(value)
    s = "".join("?" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in s)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def lit(value: Any, *, limit: int = 300) -> str:
    """``value`` as a Markdown code span that shows it literally (for f-strings given to Streamlit)."""
    s = plain(value, limit=limit)
    if not s.strip():
        return "` `" if s else "`(empty)`"
    longest = max((len(m) for m in _BACKTICKS.findall(s)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") or (s.startswith(" ") and s.endswith(" ")) else ""
    return f"{fence}{pad}{s}{pad}{fence}"
