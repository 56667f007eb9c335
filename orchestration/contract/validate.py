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
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson
from pydantic import ValidationError

from orchestration.contract.model import REF, CaseRecord
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
        msg = f"{show(value)} {_PATTERN_HELP.get(str(leaf), 'does not have the required form')}"
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
            if analyte is not None and isinstance(unit, str) and unit.strip():
                u = analyte.by_key.get(unit_key(unit))
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


def validate_record(obj: Any) -> list[Error]:
    """All errors of one record (empty when the record is valid)."""
    if not isinstance(obj, dict):
        return [Error("$", f"a case record must be a JSON object, not {show(obj)}")]
    errors: list[Error] = []
    try:
        CaseRecord.model_validate(obj)
    except ValidationError as exc:
        errors.extend(_translate(e) for e in exc.errors(include_url=False))
    seen = {(e.path, e.message) for e in errors}
    for e in _semantic(obj):
        if (e.path, e.message) not in seen:
            errors.append(e)
    return errors


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

    @property
    def case_id(self) -> str | None:
        cid = self.obj.get("case_id") if isinstance(self.obj, dict) else None
        return cid if isinstance(cid, str) else None


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def _loads(text: str) -> Any:
    """Fast path with orjson; the standard library only to report an error or read NaN/Infinity,
    which orjson refuses as a whole and which must instead be reported at their JSON path."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _json_error(exc: json.JSONDecodeError, line_offset: int = 0) -> str:
    return f"is not valid JSON: {exc.msg} at line {exc.lineno + line_offset}, column {exc.colno}"


_BOM = b"\xef\xbb\xbf"
_SLICE = 1 << 24


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

    def lines(self) -> Iterator[bytes]:
        with open(self.path, "rb", buffering=1 << 20) as f:
            yield from f


def _slices(data) -> Iterator[bytes]:
    if isinstance(data, FileSource):
        yield from data.slices()
    else:
        for off in range(0, len(data), _SLICE):
            yield data[off : off + _SLICE]


def _lines(data) -> Iterator[bytes]:
    if isinstance(data, FileSource):
        yield from data.lines()
        return
    n, pos = len(data), 0
    while pos < n:
        nl = data.find(b"\n", pos)
        nl = n if nl < 0 else nl + 1
        yield data[pos:nl]
        pos = nl


def _utf8_error(data, source_file: str) -> ParsedRecord | None:
    """Check that ``data`` is UTF-8, slice by slice, without decoding it all at once."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes before the current slice
    newlines = 0  # newlines before the current slice
    last_nl = -1  # absolute offset of the last newline before the current slice
    for chunk in _slices(data):
        try:
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
            prefix = window[:rel]
            line = newlines + prefix.count(b"\n") + 1
            nl_in = prefix.rfind(b"\n")
            line_start = (offset - len(pending) + nl_in + 1) if nl_in >= 0 else last_nl + 1
            byte = window[rel] if rel < len(window) else 0
            return ParsedRecord(source_file, None, raw=None, error=Error("$", f"file is not UTF-8 text: byte 0x{byte:02x} at line {line}, column {pos - line_start + 1}"))
        newlines += chunk.count(b"\n")
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            last_nl = offset + nl
        offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return ParsedRecord(source_file, None, raw=None, error=Error("$", f"file is not UTF-8 text: it ends inside a character (byte {offset})"))
    return None


def parse_submission(data, source_file: str) -> Iterator[ParsedRecord]:
    """Split a submission file into records. ``data`` is bytes or a :class:`FileSource`.

    A file is one case object, an array of case objects, or JSON Lines (one object per line). A line
    that is not JSON spoils only itself; a file that is not UTF-8, not JSON or truncated is reported
    as a whole, with its line and column. JSON Lines are read line by line, so a file of a million
    cases is never decoded or held as objects all at once."""
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
            doc = _loads(text)
        except json.JSONDecodeError as exc:
            # A .json file that is really JSON Lines: read it as such when its first line is an object.
            first = text.lstrip().split("\n", 1)[0]
            if exc.msg == "Extra data" and first.startswith("{"):
                try:
                    json.loads(first)
                    as_lines = True
                except json.JSONDecodeError:
                    pass
            if not as_lines:
                yield ParsedRecord(source_file, None, raw=text, error=Error("$", "file " + _json_error(exc)))
                return
        if not as_lines:
            if isinstance(doc, list):
                for i, obj in enumerate(doc):
                    yield ParsedRecord(source_file, i, obj=obj)
            elif isinstance(doc, dict):
                yield ParsedRecord(source_file, 0, obj=doc)
            else:
                yield ParsedRecord(source_file, None, raw=text, error=Error("$", f"file must hold a case object, an array of case objects, or JSON Lines, not {show(doc)}"))
            return
        del text
    lineno = 0
    any_content = False
    for line in _lines(data):
        lineno += 1
        if lineno == 1 and line.startswith(_BOM):
            line = line[3:]
        if not line.strip():
            continue
        any_content = True
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            text = line.decode("utf-8").rstrip("\r\n")
            try:
                obj = json.loads(text)  # NaN / Infinity are read here and reported at their path
            except json.JSONDecodeError as exc:
                yield ParsedRecord(source_file, lineno, raw=text, error=Error("$", f"line {lineno} " + _json_error(exc, lineno - 1)))
                continue
        yield ParsedRecord(source_file, lineno, obj=obj)
    if not any_content:
        yield ParsedRecord(source_file, None, raw="", error=Error("$", "file is empty: expected a case object, an array of case objects, or JSON Lines"))
