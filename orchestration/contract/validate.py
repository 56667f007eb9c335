"""The one validator. The web form, ``registry submit`` and ingestion all call :func:`validate_record`
and :func:`parse_submission`, so every user sees the same rules in the same words.

Each broken rule yields one :class:`Error` naming the JSON path (``labs[3].unit``) and the rule in
words a registry coordinator understands. Structure and types are checked by the pydantic model
(:mod:`.model`); the rules that relate fields to each other or units to analytes are checked here,
defensively, so that one record reports all of its problems at once.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import functools
import json
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import orjson
import typing_extensions
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from orchestration.contract.model import REF, CaseRecord, int_field_names, whole_number
from orchestration.contract.reference import unit_key


@dataclass(frozen=True)
class Error:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


# Field names that identify a person. Any unknown field is refused; these get a sharper message.
IDENTIFIER_FIELDS = {
    "name", "first_name", "firstname", "last_name", "lastname", "given_name", "family_name", "surname",
    "full_name", "patient_name", "initials", "mrn", "medical_record_number", "record_number",
    "hospital_number", "patient_id", "nhs_number", "ssn", "social_security_number", "insurance_number",
    "health_insurance_number", "passport", "dob", "date_of_birth", "birth_date", "birthdate",
    "address", "street", "city", "postcode", "postal_code", "zip", "zip_code", "phone", "telephone",
    "mobile", "email", "e_mail", "admission_date", "discharge_date", "death_date", "date_of_death",
}

_PATTERN_HELP = {
    "case_id": "must be 3 to 64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
    "site_id": "must be 2 to 32 characters: capital letters, digits, '_' or '-', starting with a capital letter or digit",
}

_TRI_STATE = {"comorbidities": "comorbidity", "exposures": "exposure"}


def path_of(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "$"


def show(value: Any) -> str:
    """A value as a coordinator would type it in JSON."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.10g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _num(v: float) -> str:
    return f"{v:.6g}"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _looks_like_date(v: Any) -> bool:
    return isinstance(v, str) and re.match(r"^\d{4}-\d{2}-\d{2}", v) is not None


def _unknown_field(loc: tuple[Any, ...], value: Any) -> str:
    name = str(loc[-1])
    parent = loc[-2] if len(loc) >= 2 else None
    if parent in _TRI_STATE and len(loc) == 2:
        codes = REF.codes(_TRI_STATE[parent])
        return f"unknown {_TRI_STATE[parent]} {json.dumps(name)} (accepted: {', '.join(codes)})"
    low = name.lower()
    if low in IDENTIFIER_FIELDS or "name" in low or low.endswith("_number"):
        return "unknown field (identifiers are not accepted)"
    if "date" in low or _looks_like_date(value):
        return "unknown field (calendar dates are not accepted: give days relative to day 0 and index_year)"
    return "unknown field (not part of case record v1)"


def _translate(err: dict[str, Any]) -> Error:
    loc = tuple(err["loc"])
    path = path_of(loc)
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    leaf = loc[-1] if loc else None
    if kind == "missing":
        msg = "is required but missing"
    elif kind == "extra_forbidden":
        msg = _unknown_field(loc, value)
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        msg = f"must be a whole number, not {show(value)}"
    elif kind in ("float_type", "float_parsing"):
        msg = f"must be a number, not {show(value)}"
    elif kind == "finite_number":
        msg = f"must be a finite number, not {show(value)} (NaN and Infinity are not accepted)"
    elif kind == "string_type":
        msg = f"must be text, not {show(value)}"
    elif kind in ("bool_type", "bool_parsing"):
        msg = f"must be true, false or null (unknown), not {show(value)}"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        msg = f"must be an object, not {show(value)}"
    elif kind == "list_type":
        msg = f"must be a list, not {show(value)}"
    elif kind == "literal_error":
        if leaf == "schema_version":
            msg = f"must be 1 (this is case record version 1), not {show(value)}"
        else:
            accepted = ", ".join(s.strip().strip("'") for s in re.split(r",| or ", ctx.get("expected", "")) if s.strip())
            msg = f"{show(value)} is not an accepted value (accepted: {accepted})"
    elif kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        msg = f"{show(value)} is below the minimum {bound}"
    elif kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        msg = f"{show(value)} is above the maximum {bound}"
    elif kind == "string_pattern_mismatch":
        # the value is not repeated: what fails an identifier's pattern may be a name typed in the wrong field
        msg = _PATTERN_HELP.get(str(leaf), "does not have the required form")
    elif kind == "string_too_long":
        msg = f"is longer than the maximum of {ctx.get('max_length')} characters"
    elif kind == "string_too_short":
        msg = "must not be empty"
    elif kind == "too_short":
        msg = "must list at least one organ" if leaf == "organs" else "must not be empty"
    else:  # pragma: no cover - a message we did not anticipate still names the path
        msg = err.get("msg", "is not valid")
    return Error(path, msg)


def _semantic(obj: dict[str, Any]) -> list[Error]:
    """Rules that relate fields to each other. Each check looks only at values of the right type,
    so a value already reported by the model is not reported twice."""
    errors: list[Error] = []
    add = lambda p, m: errors.append(Error(p, m))  # noqa: E731

    year = obj.get("index_year")
    this_year = _dt.date.today().year
    if _is_int(year) and year > this_year:
        add("index_year", f"{year} is after the current year {this_year}")

    kidney = obj.get("kidney")
    if isinstance(kidney, dict):
        status = kidney.get("status")
        if isinstance(status, str) and status in REF.codes("kidney_status") and status != "dialysis":
            for f in ("dialysis_modality", "dialysis_vintage_months"):
                if kidney.get(f) is not None:
                    add(f"kidney.{f}", f"is only allowed when kidney.status is \"dialysis\" (it is {show(status)})")

    followup = None
    outcome = obj.get("outcome")
    if isinstance(outcome, dict):
        vs = outcome.get("vital_status")
        fu = outcome.get("followup_days")
        if vs in ("alive", "dead") and "followup_days" in outcome and fu is None:
            add("outcome.followup_days", f"is required when vital status is {show(vs)} (give days from day 0 to {'death' if vs == 'dead' else 'last contact'})")
        elif vs in ("alive", "dead") and "followup_days" not in outcome:
            add("outcome.followup_days", f"is required when vital status is {show(vs)} (give days from day 0 to {'death' if vs == 'dead' else 'last contact'})")
        if outcome.get("cause_of_death") is not None and isinstance(vs, str) and vs in REF.codes("vital_status") and vs != "dead":
            add("outcome.cause_of_death", f"is only allowed when vital status is \"dead\" (it is {show(vs)})")
        if _is_int(fu) and fu >= 0:
            followup = fu

    # an onset_day that is itself invalid (after day 0) is reported once, not again at every day
    onset = obj.get("onset_day") if _is_int(obj.get("onset_day")) and obj.get("onset_day") <= 0 else None

    def check_day(path: str, day: Any, before_onset_rule: bool) -> None:
        if not _is_int(day):
            return
        if followup is not None and day > followup:
            add(path, f"day {day} is after the end of follow-up (outcome.followup_days is {followup})")
        if before_onset_rule and onset is not None and day < onset:
            add(path, f"day {day} is before symptom onset (onset_day is {onset})")

    diagnosis = obj.get("diagnosis")
    if isinstance(diagnosis, dict):
        check_day("diagnosis.day", diagnosis.get("day"), before_onset_rule=False)

    labs = obj.get("labs")
    if isinstance(labs, list):
        for i, lab in enumerate(labs):
            if not isinstance(lab, dict):
                continue
            p = f"labs[{i}]"
            check_day(f"{p}.day", lab.get("day", 0), before_onset_rule=True)
            analyte = REF.analytes.get(lab.get("analyte")) if isinstance(lab.get("analyte"), str) else None
            unit = lab.get("unit")
            if analyte is not None and isinstance(unit, str) and unit != "":
                # an exact lookup in seeds/reference/unit_spellings.csv, the table dbt joins
                u = analyte.by_key.get(unit_key(unit) or "")
                if u is None:
                    add(f"{p}.unit", f"{show(unit)} is not accepted for {analyte.code} (accepted: {analyte.accepted()})")
                else:
                    value = lab.get("value")
                    if _is_num(value):
                        canon = value * u.factor
                        if canon < analyte.hard_min or canon > analyte.hard_max:
                            shown = f"{_num(value)} {unit}" + ("" if u.factor == 1 else f" ({_num(canon)} {analyte.canonical_unit})")
                            if canon < analyte.hard_min:
                                add(f"{p}.value", f"{shown} is below the physiologically possible minimum of {_num(analyte.hard_min)} {analyte.canonical_unit} for {analyte.code}")
                            else:
                                add(f"{p}.value", f"{shown} is above the physiologically possible maximum of {_num(analyte.hard_max)} {analyte.canonical_unit} for {analyte.code}")
            lo, hi = lab.get("ref_low"), lab.get("ref_high")
            if _is_num(lo) and _is_num(hi) and lo > hi:
                add(f"{p}.ref_low", f"{_num(lo)} is above ref_high {_num(hi)} (the reference range must run from low to high)")

    treatments = obj.get("treatments")
    if isinstance(treatments, list):
        for i, t in enumerate(treatments):
            if isinstance(t, dict):
                check_day(f"treatments[{i}].day", t.get("day"), before_onset_rule=True)

    organs = obj.get("organs")
    if isinstance(organs, list):
        seen: dict[str, int] = {}
        for i, o in enumerate(organs):
            name = o.get("organ") if isinstance(o, dict) else None
            if isinstance(name, str):
                if name in seen:
                    add(f"organs[{i}].organ", f"{show(name)} is listed twice (first at organs[{seen[name]}]); list each organ once")
                else:
                    seen[name] = i
    return errors


def _model_of(tp: Any) -> tuple[str, Any] | None:
    """('obj', model) or ('list', model) for a field holding a sub-model or a list of them."""
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "obj", tp
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        for a in typing.get_args(tp):
            if (m := _model_of(a)) is not None:
                return m
    if origin is list:
        inner = _model_of(typing.get_args(tp)[0])
        if inner is not None and inner[0] == "obj":
            return "list", inner[1]
    return None


@functools.cache
def _int_fields(model: type[BaseModel]) -> tuple[tuple[str, Any], ...]:
    """The integer fields of ``model`` (spec True) and its sub-models (spec (kind, model))."""
    out: list[tuple[str, Any]] = []
    for name, f in model.model_fields.items():
        if name in int_field_names(model):
            out.append((name, True))
        elif (m := _model_of(f.annotation)) is not None and _int_fields(m[1]):
            out.append((name, m))
    return tuple(out)


def _whole_numbers(obj: Any, model: type[BaseModel] = CaseRecord) -> bool:
    """Replace, in place, whole-number floats in the record's integer fields by ints (``40.0`` ->
    ``40``), as the model reads them: what lands is what was validated. True when anything changed."""
    if not isinstance(obj, dict):
        return False
    changed = False
    for name, spec in _int_fields(model):
        v = obj.get(name)
        if spec is True:
            if type(v) is float:
                w = whole_number(v)
                if w is not v:
                    obj[name] = w
                    changed = True
        elif spec[0] == "obj":
            changed = _whole_numbers(v, spec[1]) or changed
        elif isinstance(v, list):
            for x in v:
                changed = _whole_numbers(x, spec[1]) or changed
    return changed


def validate_record(obj: Any) -> list[Error]:
    """All errors of one record (empty when the record is valid). Whole-number floats in integer
    fields (``40.0``) are replaced by ints in ``obj`` first, as JSON Schema counts them integers."""
    return _validate(obj)[0]


def _typed_dict(model: type[BaseModel], cache: dict[type, Any]) -> Any:
    """``model`` as a TypedDict with the very same field types and constraints (sub-models too)."""
    if model not in cache:
        def conv(tp: Any) -> Any:
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                return _typed_dict(tp, cache)
            origin = typing.get_origin(tp)
            if origin is typing.Union:
                return typing.Union[tuple(conv(a) for a in typing.get_args(tp))]
            if origin is list:
                return list[conv(typing.get_args(tp)[0])]  # type: ignore[misc]
            return tp

        fields = {}
        for name, f in model.model_fields.items():
            tp = conv(f.annotation)
            tp = typing.Annotated[(tp, *f.metadata)] if f.metadata else tp
            fields[name] = typing_extensions.Required[tp] if f.is_required() else typing_extensions.NotRequired[tp]
        td = typing_extensions.TypedDict(f"{model.__name__}Check", fields)  # type: ignore[operator]
        td.__pydantic_config__ = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)  # type: ignore[attr-defined]
        cache[model] = td
    return cache[model]


# The model's verdict without building its (frozen) instances: the same fields, types and
# constraints as a TypedDict (about 18 instead of 30 µs a record). Used as a gate only: when it
# passes, the model passes too and the record's errors are the cross-field rules'; when it fails,
# the model itself is asked, for its errors. tests/unit/test_validate_fast.py holds the two together.
FAST_MODEL_CHECK = True


@functools.cache
def _model_check() -> TypeAdapter:
    return TypeAdapter(_typed_dict(CaseRecord, {}))


def _validate(obj: Any, fast: bool | None = None) -> tuple[list[Error], bool]:
    """:func:`validate_record`, and whether it changed ``obj`` (whole-number floats read as ints)."""
    if not isinstance(obj, dict):
        return [Error("$", f"a case record must be a JSON object, not {show(obj)}")], False
    changed = _whole_numbers(obj)
    if FAST_MODEL_CHECK if fast is None else fast:
        try:
            _model_check().validate_python(obj)
        except ValidationError:
            pass
        else:
            return _semantic(obj), changed
    errors: list[Error] = []
    try:
        CaseRecord.model_validate(obj)
    except ValidationError as exc:
        errors.extend(_translate(e) for e in exc.errors(include_url=False))
    seen = {(e.path, e.message) for e in errors}
    for e in _semantic(obj):
        if (e.path, e.message) not in seen:
            errors.append(e)
    return errors, changed


# --------------------------------------------------------------------------- files


@dataclass
class ParsedRecord:
    """One record of a submitted file, or the whole file when it cannot be read at all
    (``record`` is then ``None``)."""

    source_file: str
    record: int | None  # 0-based index in a JSON array / single object; 1-based line in JSON Lines
    obj: Any = None
    raw: str | None = None
    error: Error | None = None  # a parse error (the record or file is not JSON)
    # errors found while reading the record's JSON (duplicate keys, lone surrogates, numbers of
    # hundreds of digits, nesting too deep), each at its path; reported with the validator's errors
    problems: list[Error] = field(default_factory=list)
    source: bytes | str | None = None  # the record's original text, byte for byte
    # ``obj`` as read, written with sorted keys (the duplicate-key check writes it anyway), while
    # ``obj`` is unchanged: :func:`record_errors` drops it when the validator normalises ``obj`` in place
    dumped: bytes | None = None
    spans: "_ArraySpans | None" = None  # where to find it in a JSON array file, when not kept in source

    @property
    def case_id(self) -> str | None:
        cid = self.obj.get("case_id") if isinstance(self.obj, dict) else None
        return cid if isinstance(cid, str) else None

    def verbatim(self) -> str | None:
        """The record exactly as submitted (the original line or array element), or None when
        the file could not be split into records."""
        if self.raw is not None:
            return self.raw
        src = self.source
        if src is None and self.spans is not None and self.record is not None:
            src = self.spans.element(self.record)
        if src is None:
            return None
        if isinstance(src, bytes):
            src = src.decode("utf-8", errors="surrogateescape")
        return src.lstrip("\ufeff").rstrip("\r\n")


def record_errors(p: ParsedRecord) -> list[Error]:
    """Every error of a parsed record: what reading its JSON found, then what the validator finds
    (a path already reported while reading is not reported again)."""
    if not p.problems:
        errors, changed = _validate(p.obj)
        if changed:
            p.dumped = None
        return errors
    p.dumped = None
    seen = {e.path for e in p.problems}
    try:
        more = validate_record(p.obj)
    except Exception:  # the record is rejected already; its other errors are a bonus
        more = []
    return list(p.problems) + [e for e in more if e.path not in seen and not any(e.path.startswith(q + ".") or e.path.startswith(q + "[") for q in seen)]


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


# A record of the contract nests 4 levels deep; 64 leaves room for every mistake worth reporting.
MAX_DEPTH = 64
# A JSON integer with more digits than this is beyond every range of the contract (int64 has 19).
MAX_INT_DIGITS = 32


class _HugeNumber:
    """Stands for an integer literal of more than MAX_INT_DIGITS digits (never converted: Python's
    int() refuses 4,300 digits and more, and no field of the contract could hold it)."""

    __slots__ = ("digits",)

    def __init__(self, text: str) -> None:
        self.digits = len(text.lstrip("-"))

    def __repr__(self) -> str:
        return f"a number of {self.digits} digits"


class _DupDict(dict):
    """A JSON object some of whose keys appeared more than once."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) == len(pairs):
        return d
    seen: set[str] = set()
    dups = []
    for k, _ in pairs:
        if k in seen and k not in dups:
            dups.append(k)
        seen.add(k)
    out = _DupDict(d)
    out.duplicates = tuple(dups)
    return out


def _parse_int(text: str) -> Any:
    return int(text) if len(text) <= MAX_INT_DIGITS else _HugeNumber(text)


# The standard library's parser, for what orjson refuses or cannot tell us: NaN and Infinity,
# numbers beyond a double, duplicate keys, lone surrogates (each reported at its path).
_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_int=_parse_int)


def may_have_duplicate_keys(raw: bytes | str, obj: Any, again: bytes | None = None) -> bool:
    """False when ``raw`` certainly has no object with a repeated key, judged in C speed: every key
    is followed by one colon, so without duplicates the text and the re-serialised object (``again``,
    written here when not given) hold as many colons (strings keep theirs); a dropped duplicate
    takes at least its own colon with it. A \\u escape could hide a colon, so text with one is
    always read the slow way."""
    if not isinstance(obj, (dict, list)):
        return False
    if has_u_escape(raw):
        return True
    if isinstance(raw, str):
        raw = raw.encode("utf-8", errors="surrogatepass")
    if again is None:
        again = _dumps(obj)
        if again is None:  # nested deeper than orjson writes: too deep anyway
            return True
    return raw.count(b":") != again.count(b":")


def canonical(obj: Any) -> bytes:
    """``obj`` as orjson writes it with sorted keys: a record's canonical form, which its landing
    line holds and its content hash hashes (``orchestration/registry/judging.py``)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def _dumps(obj: Any) -> bytes | None:
    """:func:`canonical`, or None when orjson cannot write ``obj`` (nested too deep, say)."""
    try:
        return canonical(obj)
    except (TypeError, orjson.JSONEncodeError):
        return None


def has_u_escape(raw: bytes | str) -> bool:
    """Whether JSON text holds a ``\\u`` escape (which could hide a colon or a repeated key: such
    text is always read the slow way, see :func:`may_have_duplicate_keys`)."""
    if isinstance(raw, str):
        return "\\u" in raw
    return b"\\" in raw and b"\\u" in raw  # (one byte is found with memchr, two are not)


def _too_deep(obj: Any) -> bool:
    stack = [(obj, 0)]
    while stack:
        v, d = stack.pop()
        if d > MAX_DEPTH:
            return True
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))
    return False


def _problems(obj: Any) -> list[Error]:
    """What reading found inside a record, at its path: repeated keys, lone surrogates, numbers of
    hundreds of digits, nesting deeper than MAX_DEPTH (iterative: no recursion on hostile input)."""
    out: list[Error] = []
    stack: list[tuple[Any, tuple[Any, ...]]] = [(obj, ())]
    while stack:
        v, loc = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                out.append(Error(path_of(loc), f"contains a lone surrogate escape (\\u{ord(v[exc.start]):04x}), which is not text"))
        elif isinstance(v, _HugeNumber):
            out.append(Error(path_of(loc), f"is a number of {v.digits} digits, beyond every range of the contract"))
        elif isinstance(v, (dict, list)):
            if len(loc) >= MAX_DEPTH:
                out.append(Error(path_of(loc), f"is nested more than {MAX_DEPTH} levels deep"))
                continue
            if isinstance(v, dict):
                for k in getattr(v, "duplicates", ()):
                    out.append(Error(path_of(loc), f"has the key {show(k)} more than once (a key may appear once in an object)"))
                items = v.items()
            else:
                items = enumerate(v)
            for k, x in items:
                if isinstance(k, str):
                    try:
                        k.encode("utf-8")
                    except UnicodeEncodeError:
                        out.append(Error(path_of(loc), "has a key with a lone surrogate escape, which is not text"))
                        continue
                if isinstance(x, (str, dict, list, _HugeNumber)):
                    stack.append((x, loc + (k,)))
    out.sort(key=lambda e: e.path)
    return out


class _NotJSON(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _read_record(raw: bytes | str, line_offset: int = 0) -> tuple[Any, list[Error], bytes | None]:
    """One record's JSON: the object, what reading found in it and, on the fast path, the object
    as ``orjson`` writes it. Fast path orjson; the standard library only when orjson refuses the
    text or a duplicate key cannot be ruled out."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        container = isinstance(obj, (dict, list))
        # text with a \\u escape is read the slow way (may_have_duplicate_keys): not written back first
        again = _dumps(obj) if container and not has_u_escape(raw) else None
        # a container orjson cannot write back (nested too deep) is read the slow way
        if not (container and again is None) and not may_have_duplicate_keys(raw, obj, again):
            return obj, [], again
        if _too_deep(obj):  # rejected for its depth, at its path (the standard library would recurse)
            return obj, _problems(obj), None
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        obj = _DECODER.decode(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise _NotJSON(_json_error(exc, line_offset)) from None
    except RecursionError:
        raise _NotJSON(f"is nested more than {MAX_DEPTH} levels deep") from None
    return obj, _problems(obj), None


def _loads(text: str) -> Any:
    """A whole document with the standard library (NaN, huge numbers and repeated keys read, to be
    reported at their path)."""
    return _DECODER.decode(text)


_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


class _ArraySpans:
    """Where each element of a JSON array file starts and ends, found by a scan of brackets and
    strings only (so that each element is read, and fails, on its own)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._spans: list[tuple[int, int]] | None = None

    def spans(self) -> list[tuple[int, int]] | None:
        if self._spans is None:
            self._spans = _scan_array(self.text) or []
        return self._spans

    def element(self, i: int) -> str | None:
        spans = self.spans()
        if not spans or i >= len(spans):
            return None
        a, b = spans[i]
        return self.text[a:b]


def _scan_array(text: str) -> list[tuple[int, int]] | None:
    """The (start, end) of each top-level element of the array ``text`` holds, or None when the
    text is not one well-bracketed array."""
    start = len(text) - len(text.lstrip())
    if not text.startswith("[", start):
        return None
    depth = 0
    spans: list[tuple[int, int]] = []
    elem_start = start + 1
    end = None
    for m in _TOKENS.finditer(text, start):
        tok = m.group()
        if tok in "[{":
            depth += 1
        elif tok in "]}":
            depth -= 1
            if depth == 0:
                end = m.start()
                if text[elem_start:end].strip():
                    spans.append((elem_start, end))
                break
        elif tok == "," and depth == 1:
            spans.append((elem_start, m.start()))
            elem_start = m.end()
    if end is None or text[end + 1 :].strip():
        return None
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg.rstrip())
        if trail == 0:
            return None  # an empty element: [1,,2]
        out.append((a + lead, a + trail))
    return out


def _json_error(exc: json.JSONDecodeError, line_offset: int = 0) -> str:
    return f"is not valid JSON: {exc.msg} at line {exc.lineno + line_offset}, column {exc.colno}"


_BOM = b"\xef\xbb\xbf"
_SLICE = 1 << 16  # small enough for the memory of one slice to be reused for the next (no page faults)


class FileSource:
    """A submission file read in slices and lines, never whole: a million-case file is streamed
    with bounded memory (a memory map would count the whole file in the process's RSS)."""

    def __init__(self, path) -> None:
        self.path = Path(path)

    def __len__(self) -> int:
        return self.path.stat().st_size

    def read(self) -> bytes:
        return self.path.read_bytes()

    def slices(self) -> Iterator[bytes]:
        with open(self.path, "rb") as f:
            while chunk := f.read(_SLICE):
                yield chunk


def _slices(data) -> Iterator[bytes]:
    if isinstance(data, FileSource):
        yield from data.slices()
    else:
        for off in range(0, len(data), _SLICE):
            yield data[off : off + _SLICE]


def _count_newlines(data: bytes) -> int:
    """``data.count(b"\\n")``, faster for long lines: ``find`` looks for one byte with memchr, ``count`` byte by byte."""
    n, find = 0, data.find
    pos = find(b"\n")
    while pos >= 0:
        n += 1
        if n > 64 and pos < n * 256:  # short lines: counting is faster
            return n + data.count(b"\n", pos + 1)
        pos = find(b"\n", pos + 1)
    return n


# A JSON Lines file is cut into blocks of about this many bytes, each of whole lines
BLOCK_BYTES = 1 << 20


def _blocks(data) -> Iterator[bytes]:
    """``data`` in pieces of about BLOCK_BYTES that end at a newline (the last one where the data ends)."""
    if isinstance(data, FileSource):
        with open(data.path, "rb") as f:
            while piece := f.read(BLOCK_BYTES):
                if not piece.endswith(b"\n"):
                    piece += f.readline()
                yield piece
        return
    n, pos = len(data), 0
    while pos < n:
        nl = data.find(b"\n", pos + BLOCK_BYTES - 1) if pos + BLOCK_BYTES < n else -1
        end = n if nl < 0 else nl + 1
        piece = data[pos:end]
        yield piece if type(piece) is bytes else bytes(piece)
        pos = end


def _utf8_error(data, source_file: str) -> ParsedRecord | None:
    """Check that ``data`` is UTF-8, slice by slice, without decoding it all at once (the line and
    column of a bad byte are worked out only when there is one)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes before the current slice
    for chunk in _slices(data):
        try:
            # ASCII is UTF-8: a slice of it needs no decoding (unless a character began before it)
            if not (chunk.isascii() and not decoder.getstate()[0]):
                decoder.decode(chunk, final=False)
        except UnicodeDecodeError:
            pending = decoder.getstate()[0]  # undecoded bytes carried over from the previous slice
            window = pending + chunk
            try:
                window.decode("utf-8")
                rel = len(window)
            except UnicodeDecodeError as exc:
                rel = exc.start
            pos = offset - len(pending) + rel
            newlines, last_nl = _newlines_before(data, pos)
            byte = window[rel] if rel < len(window) else 0
            return ParsedRecord(source_file, None, raw=None, error=Error("$", f"file is not UTF-8 text: byte 0x{byte:02x} at line {newlines + 1}, column {pos - last_nl}"))
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return ParsedRecord(source_file, None, raw=None, error=Error("$", f"file is not UTF-8 text: it ends inside a character (byte {offset})"))
    return None


def _newlines_before(data, pos: int) -> tuple[int, int]:
    """How many newlines ``data`` holds before offset ``pos``, and the offset of the last of them (-1: none)."""
    newlines, last_nl, offset = 0, -1, 0
    for chunk in _slices(data):
        part = chunk[: pos - offset]
        newlines += part.count(b"\n")
        nl = part.rfind(b"\n")
        if nl >= 0:
            last_nl = offset + nl
        offset += len(chunk)
        if offset >= pos:
            break
    return newlines, last_nl


def _element(source_file: str, index: int, raw: bytes | str, line_offset: int, what: str) -> ParsedRecord:
    """One record read on its own: a record that is not JSON, or that reading cannot handle at
    all, spoils only itself."""
    try:
        obj, problems, dumped = _read_record(raw, line_offset)
    except _NotJSON as exc:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return ParsedRecord(source_file, index, raw=text.rstrip("\r\n"), error=Error("$", f"{what} {exc.message}"))
    except Exception:  # noqa: BLE001 - an unexpected failure quarantines the record, not the file
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
        return ParsedRecord(source_file, index, raw=text.rstrip("\r\n"), error=Error("$", f"{what} could not be read (internal error)"))
    return ParsedRecord(source_file, index, obj=obj, problems=problems, source=raw, dumped=dumped)


class RawLine(NamedTuple):
    """A JSON Lines record not read yet: :func:`parse_line` reads it (in this process or in a worker)."""

    lineno: int  # 1-based
    line: bytes


class RawBlock(NamedTuple):
    """Whole lines of a JSON Lines file, not read yet (so that a big file travels to the worker
    processes that read it as a few large pieces, not a million small ones)."""

    lineno: int  # the 1-based number of its first line
    data: bytes  # its lines, each with its newline (the file's last line may have none)

    def lines(self) -> Iterator[tuple[int, bytes, bool]]:
        """(line number, line without its newline, whether it had one) for every line that is not
        blank, as :func:`split_submission` numbers and yields them (a byte order mark before the
        file's first line is dropped)."""
        pieces = self.data.split(b"\n")
        last = len(pieces) - 1  # what follows the last newline: empty, or a last line without one
        n = self.lineno
        for i, line in enumerate(pieces):
            if n + i == 1 and line.startswith(_BOM):
                line = line[3:]
            if line and not line.isspace():  # not blank (what line.strip() would empty)
                yield n + i, line, i < last

    def raw_lines(self) -> Iterator[RawLine]:
        for n, line, newline in self.lines():
            yield RawLine(n, line + b"\n" if newline else line)


def parse_line(source_file: str, lineno: int, line: bytes) -> ParsedRecord:
    """One line of a JSON Lines file, read on its own (what :func:`parse_submission` yields for it)."""
    return _element(source_file, lineno, line, lineno - 1, f"line {lineno}")


def parse_submission(data, source_file: str) -> Iterator[ParsedRecord]:
    """Split a submission file into records. ``data`` is bytes or a :class:`FileSource`.

    A file is one case object, an array of case objects, or JSON Lines (one object per line). A line
    or array element that is not JSON spoils only itself; a file that is not UTF-8, not JSON or
    truncated is reported as a whole, with its line and column. JSON Lines are read line by line, so
    a file of a million cases is never decoded or held as objects all at once. Each record keeps its
    original text (``ParsedRecord.verbatim``) for the quarantine."""
    for item in split_submission(data, source_file):
        yield parse_line(source_file, *item) if type(item) is RawLine else item


def split_submission(data, source_file: str, blocks: bool = False) -> Iterator[ParsedRecord | RawLine | RawBlock]:
    """:func:`parse_submission`, except that the lines of a JSON Lines file are yielded unread, as
    :class:`RawLine`, or (``blocks``) as :class:`RawBlock` of many lines (so that a big file can be
    read and checked in worker processes)."""
    bad = _utf8_error(data, source_file)
    if bad is not None:
        yield bad
        return
    lower = source_file.lower()
    as_lines = lower.endswith((".jsonl", ".ndjson"))
    if not as_lines:
        whole = data.read() if isinstance(data, FileSource) else bytes(data)
        text = whole.decode("utf-8-sig")
        del whole
        if not text.strip():
            yield ParsedRecord(source_file, None, raw="", error=Error("$", "file is empty: expected a case object, an array of case objects, or JSON Lines"))
            return
        try:
            doc = orjson.loads(text)
            fast = not may_have_duplicate_keys(text, doc)
        except orjson.JSONDecodeError:
            fast = False
        if fast:
            if isinstance(doc, list):
                spans = _ArraySpans(text)
                for i, obj in enumerate(doc):
                    yield ParsedRecord(source_file, i, obj=obj, spans=spans)
            elif isinstance(doc, dict):
                yield ParsedRecord(source_file, 0, obj=doc, source=text)
            else:
                yield ParsedRecord(source_file, None, raw=text, error=Error("$", f"file must hold a case object, an array of case objects, or JSON Lines, not {show(doc)}"))
            return
        spans = _scan_array(text)
        if spans is not None:  # an array: each element is read, and fails, on its own
            for i, (a, b) in enumerate(spans):
                yield _element(source_file, i, text[a:b], text.count("\n", 0, a), f"record {i}")
            return
        try:
            doc = _loads(text)
        except RecursionError:
            yield ParsedRecord(source_file, None, raw=text, error=Error("$", f"file is nested more than {MAX_DEPTH} levels deep"))
            return
        except json.JSONDecodeError as exc:
            # A .json file that is really JSON Lines: read it as such when its first line is an object.
            first = text.lstrip().split("\n", 1)[0]
            if exc.msg == "Extra data" and first.startswith("{"):
                try:
                    _DECODER.decode(first)
                    as_lines = True
                except (json.JSONDecodeError, RecursionError):
                    pass
            if not as_lines:
                yield ParsedRecord(source_file, None, raw=text, error=Error("$", "file " + _json_error(exc)))
                return
        if not as_lines:
            if isinstance(doc, dict):
                yield _element(source_file, 0, text, 0, "record 0")
            else:
                yield ParsedRecord(source_file, None, raw=text, error=Error("$", f"file must hold a case object, an array of case objects, or JSON Lines, not {show(doc)}"))
            return
        del text
    lineno = 1
    any_content = False
    for piece in _blocks(data):
        block = RawBlock(lineno, piece)
        if not any_content:
            content = piece[3:] if lineno == 1 and piece.startswith(_BOM) else piece
            any_content = bool(content) and not content.isspace()  # a line that is not blank
        if blocks:
            yield block
        else:
            yield from block.raw_lines()
        lineno += _count_newlines(piece)
    if not any_content:
        yield ParsedRecord(source_file, None, raw="", error=Error("$", "file is empty: expected a case object, an array of case objects, or JSON Lines"))
