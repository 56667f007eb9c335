"""The cohort filter shared by every analysis page (no Streamlit here).

A :class:`CohortFilter` is immutable and hashable, so it can key cached query results. It becomes
SQL with :meth:`CohortFilter.where` (a parameterised ``WHERE`` clause over ``dim_cases``), and a
URL query string with :func:`to_query` / :func:`from_query`.

URL encoding (what a shared link looks like) -- every parameter is optional and a missing one means
"no restriction"; list parameters repeat (``?sex=Female&sex=Male``). Values are the labels the
sidebar shows (Streamlit writes them so); the codes are accepted too, in any case::

    sex=Female            Female, Male, Other, Unknown
    age=70-79             age band: <40, 40-49, 50-59, 60-69, 70-79, 80-89, 90+
    kidney=Dialysis       Dialysis, Transplant, CKD, AKI, Normal, Unknown
    diabetes=Yes          Yes, No or Unknown (tri-state; absent = any)
    warfarin=No           Yes, No or Unknown
    visceral=Yes          Yes or No
    lesions=Central       Central, Peripheral, Mixed, None (lesion distribution)
    site=DE-AAC           site code
    years=2010&years=2020 index-year range, inclusive (cases without a year are then excluded)
    synthetic=false       leave synthetic cases out (default: included, and labelled)

The dashboards bind their sidebar widgets to these same parameter names
(``bind="query-params"``), so the URL of any view reproduces its cohort; :func:`query_string`
builds such a link from a filter.

Default: synthetic cases are **included**. The demo registry is almost entirely synthetic, so
excluding them by default would show an empty registry; instead every page that includes them
says so in a banner with their number, and every chart title says so too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping
from urllib.parse import urlencode

from orchestration.contract.reference import age_bands, vocabulary_labels

TRI_STATE = ("any", "yes", "no", "unknown")
TRI_LABELS = {"any": "Any", "yes": "Yes", "no": "No", "unknown": "Unknown"}
# The coded levels of the filter and their labels come from the reference seeds (``vocabularies`` and
# ``age_bands``), the same tables dbt publishes; the sidebar reads them from the published snapshot.
_VOCAB = vocabulary_labels()
SEXES = tuple(_VOCAB["sex"])
AGE_BANDS = tuple(b.code for b in age_bands())
KIDNEY_STATUSES = tuple(_VOCAB["kidney_status"])
LESION_DISTRIBUTIONS = tuple(_VOCAB["lesion_distribution"])

#: Labels of the coded values (those of the ``vocabularies`` seed); the sidebar shows them, the URL carries them.
OPTION_LABELS: dict[str, dict[str, str]] = {
    "sex": _VOCAB["sex"],
    "kidney_status": _VOCAB["kidney_status"],
    "lesion_distribution": _VOCAB["lesion_distribution"],
    "age_band": {b: _VOCAB.get("age_band", {}).get(b, b) for b in AGE_BANDS},
}


def option_label(name: str, code: str) -> str:
    """The label of a coded filter value (``("kidney_status", "ckd")`` -> "CKD")."""
    if name in _TRI_FIELDS_NAMES:
        return TRI_LABELS.get(code, code)
    return OPTION_LABELS.get(name, {}).get(code, code)


def _code(name: str, value: str) -> str | None:
    """The code of a URL value (a label or a code, any case), or None if unknown."""
    v = str(value).strip()
    if name in _TRI_FIELDS_NAMES:
        choices = {c: TRI_LABELS[c] for c in TRI_STATE}
    elif name in OPTION_LABELS:
        choices = OPTION_LABELS[name]
    else:
        return v
    for code, label in choices.items():
        if v.lower() in (code.lower(), label.lower()):
            return code
    return None


#: Filter attribute -> URL query parameter (also the Streamlit widget key).
PARAMS: dict[str, str] = {
    "sex": "sex",
    "age_band": "age",
    "kidney_status": "kidney",
    "diabetes": "diabetes",
    "warfarin": "warfarin",
    "visceral": "visceral",
    "lesion_distribution": "lesions",
    "site": "site",
    "years": "years",
    "include_synthetic": "synthetic",
}

_LIST_FIELDS = ("sex", "age_band", "kidney_status", "lesion_distribution", "site")
_TRI_FIELDS = {"diabetes": "diabetes", "warfarin": "warfarin", "visceral": "visceral_involvement"}
_TRI_FIELDS_NAMES = frozenset(_TRI_FIELDS)
_LIST_COLUMNS = {"sex": "sex", "age_band": "age_band", "kidney_status": "kidney_status",
                 "lesion_distribution": "lesion_distribution", "site": "site_id"}


@dataclass(frozen=True)
class CohortFilter:
    """Which cases of ``dim_cases`` are in the cohort. Empty tuples and ``"any"`` mean no restriction."""

    sex: tuple[str, ...] = ()
    age_band: tuple[str, ...] = ()
    kidney_status: tuple[str, ...] = ()
    diabetes: str = "any"
    warfarin: str = "any"
    visceral: str = "any"
    lesion_distribution: tuple[str, ...] = ()
    site: tuple[str, ...] = ()
    years: tuple[int, int] | None = None
    include_synthetic: bool = True

    def __post_init__(self) -> None:
        for name in _LIST_FIELDS:
            v = getattr(self, name)
            if isinstance(v, str):
                v = (v,)
            object.__setattr__(self, name, tuple(sorted(dict.fromkeys(str(x) for x in (v or ())))))
        for name in _TRI_FIELDS:
            v = str(getattr(self, name) or "any").lower()
            if v not in TRI_STATE:
                raise ValueError(f"{name} must be one of {', '.join(TRI_STATE)}, not {v!r}")
            object.__setattr__(self, name, v)
        if self.years is not None:
            lo, hi = (int(x) for x in self.years)
            object.__setattr__(self, "years", (min(lo, hi), max(lo, hi)))
        object.__setattr__(self, "include_synthetic", bool(self.include_synthetic))

    # ------------------------------------------------------------------ SQL
    def where(self, alias: str = "") -> tuple[str, list[Any]]:
        """A ``WHERE`` condition over ``dim_cases`` (columns prefixed with ``alias.`` when given) and
        its parameters; ``("TRUE", [])`` when nothing is restricted."""
        p = f"{alias}." if alias else ""
        conds: list[str] = []
        params: list[Any] = []
        for name in _LIST_FIELDS:
            values = getattr(self, name)
            if values:
                conds.append(f"{p}{_LIST_COLUMNS[name]} IN ({', '.join('?' for _ in values)})")
                params.extend(values)
        for name, column in _TRI_FIELDS.items():
            v = getattr(self, name)
            if v == "yes":
                conds.append(f"{p}{column} IS TRUE")
            elif v == "no":
                conds.append(f"{p}{column} IS FALSE")
            elif v == "unknown":
                conds.append(f"{p}{column} IS NULL")
        if self.years is not None:
            conds.append(f"{p}index_year BETWEEN ? AND ?")
            params.extend(self.years)
        if not self.include_synthetic:
            conds.append(f"NOT {p}is_synthetic")
        return (" AND ".join(conds) if conds else "TRUE"), params

    @property
    def is_default(self) -> bool:
        return self == CohortFilter()

    def describe(self, label=None) -> str:
        """One line for captions and chart subtitles: "Sex: Female · Kidney status: Dialysis"."""
        label = label or (lambda column, value: str(value))
        parts = []
        names = {"sex": "Sex", "age_band": "Age", "kidney_status": "Kidney status",
                 "lesion_distribution": "Lesions", "site": "Site"}
        for name in _LIST_FIELDS:
            v = getattr(self, name)
            if v:
                parts.append(f"{names[name]}: " + ", ".join(label(_LIST_COLUMNS[name], x) for x in v))
        for name, title in (("diabetes", "Diabetes"), ("warfarin", "Warfarin"), ("visceral", "Visceral")):
            v = getattr(self, name)
            if v != "any":
                parts.append(f"{title}: {TRI_LABELS[v]}")
        if self.years:
            parts.append(f"Index year {self.years[0]}–{self.years[1]}")
        if not self.include_synthetic:
            parts.append("Real cases only")
        return " · ".join(parts) if parts else "All cases"


DEFAULT = CohortFilter()


# ---------------------------------------------------------------------- URL query string


def to_query(f: CohortFilter) -> dict[str, list[str]]:
    """Query parameters for ``f`` (defaults left out), as lists of strings, as the sidebar writes them."""
    out: dict[str, list[str]] = {}
    for name in _LIST_FIELDS:
        v = getattr(f, name)
        if v:
            out[PARAMS[name]] = [option_label(name, x) for x in v]
    for name in _TRI_FIELDS:
        v = getattr(f, name)
        if v != "any":
            out[PARAMS[name]] = [option_label(name, v)]
    if f.years is not None:
        out[PARAMS["years"]] = [str(f.years[0]), str(f.years[1])]
    if not f.include_synthetic:
        out[PARAMS["include_synthetic"]] = ["false"]
    return out


def query_string(f: CohortFilter) -> str:
    """``"sex=female&years=2010&years=2020"`` (no leading ``?``)."""
    return urlencode([(k, v) for k, vs in to_query(f).items() for v in vs])


def _as_list(v: str | Iterable[str] | None) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v] if v != "" else []
    return [str(x) for x in v if str(x) != ""]


def from_query(params: Mapping[str, str | Iterable[str]]) -> CohortFilter:
    """The filter a query string describes (labels or codes); unknown or malformed values are ignored."""
    kw: dict[str, Any] = {}
    for name in _LIST_FIELDS:
        values = [c for c in (_code(name, v) for v in _as_list(params.get(PARAMS[name]))) if c]
        if values:
            kw[name] = tuple(values)
    for name in _TRI_FIELDS:
        values = [c for c in (_code(name, v) for v in _as_list(params.get(PARAMS[name]))) if c]
        if values:
            kw[name] = values[-1]
    years = _as_list(params.get(PARAMS["years"]))
    if len(years) == 2:
        try:
            kw["years"] = (int(years[0]), int(years[1]))
        except ValueError:
            pass
    syn = _as_list(params.get(PARAMS["include_synthetic"]))
    if syn and syn[-1].lower() in ("false", "0", "no"):
        kw["include_synthetic"] = False
    return CohortFilter(**kw)


def from_widgets(values: Mapping[str, Any], year_bounds: tuple[int, int] | None) -> CohortFilter:
    """The filter from the sidebar widgets' values (keyed by URL parameter name). A year range equal to
    the data's full range is no restriction (so cases without an index year stay in)."""
    kw: dict[str, Any] = {}
    for name, param in PARAMS.items():
        if param not in values or values[param] is None:
            continue
        v = values[param]
        if name == "years":
            if v is None or year_bounds is None:
                continue
            lo, hi = int(v[0]), int(v[1])
            if (lo, hi) != tuple(year_bounds):
                kw["years"] = (lo, hi)
        elif name in _LIST_FIELDS:
            kw[name] = tuple(v)
        else:
            kw[name] = v
    return CohortFilter(**kw)


__all__ = [
    "AGE_BANDS",
    "CohortFilter",
    "DEFAULT",
    "KIDNEY_STATUSES",
    "LESION_DISTRIBUTIONS",
    "OPTION_LABELS",
    "PARAMS",
    "SEXES",
    "TRI_LABELS",
    "TRI_STATE",
    "from_query",
    "from_widgets",
    "option_label",
    "query_string",
    "to_query",
]
