"""The contract of case record v1, checked set-based in DuckDB over a whole chunk of records.

One contract, two executions. :func:`orchestration.contract.validate.validate_record` (pydantic plus
the cross-field rules) is the reference: it gives every error in words. This module compiles the
same contract -- types, vocabularies, ranges, accepted units, cross-field rules, all read from
``seeds/reference/`` through :mod:`.reference` and :mod:`.model` (the field lists come from the
pydantic models themselves) -- into one SQL query over a chunk of records, and answers one question
per record: *is it certainly valid?* The caller runs the Python validator on every other record,
for its verdict and its messages.

It is deliberately **conservative**: a record passes only when every value has exactly the JSON
type the model wants (an integer field holds a JSON integer: never ``40.0``, ``"40"`` or ``true``),
every key is known, every unit is a spelling the Python validator itself accepted (each distinct
analyte/unit pair is probed once through ``validate_record``), every lab value lies strictly inside
its physiological range (a value on a bound is left to Python), and so on. Anything else fails
here and goes to Python. So a record passes here only if ``validate_record`` finds no error, and
``tests/unit/test_setbased_differential.py`` holds the two executions together with thousands of
generated valid and broken records.

How it runs, per chunk:

1. Python, per record, only what is cheap in C: the record's *shape* (every object's keys are
   known keys -- a set comparison -- and every container is an object or a list where the model
   has one), collecting the chunk's analyte/unit pairs; and whether its canonical JSON is exact
   (see :func:`canonical_is_exact`).
2. DuckDB, over the whole chunk in one query on every core: one ``json_transform`` of each
   record's canonical JSON (the form :func:`orchestration.registry.landing.content_hash` writes for
   the content hash anyway) into structs whose leaves are ``JSON`` -- each value's JSON text, so its
   JSON type is read off the text (a string starts with a quote, an integer is digits only: DuckDB
   writes every double with a '.' or an exponent) -- and then every type, vocabulary, range, unit
   and cross-field rule as SQL.

Why DuckDB: it is already the warehouse engine (no new dependency), its JSON reader keeps each
value's JSON text, and the query runs vectorised on every core while the rest of ``submit`` is
single-threaded Python.

Landing no longer uses it (issue 16, fourth session): measured on the 100k bench cohort, the query
costs ~25 µs of CPU a record (``json_transform`` alone ~10 µs) plus ~11 µs of Python shape checks,
no less than the validator it spares; with every core busy judging records, CPU is what counts.
Landing uses the same contract compiled to Python (:mod:`.fastcheck`, about half the
validator's CPU) instead. This module and its differential test stay, as the SQL form of the contract.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from typing import Any, Sequence

import duckdb
import orjson
import pyarrow as pa

from orchestration.contract.model import (
    MAX_ABS_DAY,
    MAX_INT,
    REF,
    CaseRecord,
    Diagnosis,
    Kidney,
    Lab,
    Lesion,
    Organ,
    Outcome,
    Patient,
    Treatment,
)
from orchestration.contract.reference import unit_key
from orchestration.contract.validate import validate_record

# A lab value this close (relative) to a physiological bound is left to the Python validator, so
# that a rounding difference between the two executions can never flip a verdict.
_BOUND_MARGIN = 1e-9


def _fields(model) -> list[str]:
    return list(model.model_fields)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _json_text(s: str) -> str:
    """A string as DuckDB writes it as a JSON value (what the ``JSON`` leaves hold)."""
    return json.dumps(s, ensure_ascii=False)


# ---- the shape, checked in Python


_COMORBIDITIES = CaseRecord.model_fields["comorbidities"].annotation.__args__[0]
_EXPOSURES = CaseRecord.model_fields["exposures"].annotation.__args__[0]
_TOP = frozenset(_fields(CaseRecord))
_OBJECTS = {
    "patient": frozenset(_fields(Patient)),
    "kidney": frozenset(_fields(Kidney)),
    "comorbidities": frozenset(_fields(_COMORBIDITIES)),
    "exposures": frozenset(_fields(_EXPOSURES)),
    "diagnosis": frozenset(_fields(Diagnosis)),
    "outcome": frozenset(_fields(Outcome)),
}
_LISTS = {
    "lesions": frozenset(_fields(Lesion)),
    "organs": frozenset(_fields(Organ)),
    "labs": frozenset(_fields(Lab)),
    "treatments": frozenset(_fields(Treatment)),
}


def shape_ok(obj: dict[str, Any], units: set[tuple[Any, Any]]) -> bool:
    """Every key known and every container of the right kind (null or absent is left to SQL).
    Adds the record's (analyte, unit) pairs to ``units``."""
    if not obj.keys() <= _TOP:
        return False
    for name, allowed in _OBJECTS.items():
        v = obj.get(name)
        if v is not None and (type(v) is not dict or not v.keys() <= allowed):
            return False
    for name, allowed in _LISTS.items():
        v = obj.get(name)
        if v is None:
            continue
        if type(v) is not list:
            return False
        for e in v:
            if type(e) is not dict or not e.keys() <= allowed:
                return False
    for e in obj.get("lesions") or ():
        f = e.get("features")
        if f is not None and type(f) is not list:
            return False
    for e in obj.get("labs") or ():
        a, u = e.get("analyte"), e.get("unit")
        if type(a) is str and type(u) is str:
            units.add((a, u))
    return True


def canonical_is_exact(canonical: bytes, obj: dict[str, Any]) -> bool:
    """``orjson`` writes NaN and ±Infinity (which the standard library parser, the validator's
    fallback, reads) as ``null``; such a canonical form would hide the value from the set-based
    check. Only a record whose canonical form holds a ``null`` can be affected, and only then is
    it read back and compared."""
    if b"null" not in canonical:
        return True
    return orjson.loads(canonical) == {**obj, "revision": obj.get("revision", 1)}


# ---- SQL expression builders over a JSON leaf ``x``: the value's JSON text as DuckDB writes it,
# or SQL NULL when the key is absent or the value null.


def _null(x: str) -> str:
    return f"({x} IS NULL OR {x} = 'null')"


def _int(x: str, lo: int, hi: int) -> str:
    return (
        f"(TRY_CAST({x} AS BIGINT) BETWEEN {lo} AND {hi} "
        f"AND strpos({x}, '.') = 0 AND strpos({x}, 'e') = 0 AND strpos({x}, 'E') = 0)"
    )


def _as_double(x: str) -> str:
    return f"TRY_CAST({x} AS DOUBLE)"


def _num(x: str, lo: float | None = None, hi: float | None = None) -> str:
    cond = f"(ascii({x}) BETWEEN 48 AND 57 OR ascii({x}) = 45) AND isfinite({_as_double(x)})"
    if lo is not None:
        cond += f" AND {_as_double(x)} >= {lo!r}"
    if hi is not None:
        cond += f" AND {_as_double(x)} <= {hi!r}"
    return f"({cond})"


def _str(x: str) -> str:
    return f"(ascii({x}) = 34)"


def _enum(x: str, vocabulary: str | Sequence[str]) -> str:
    codes = REF.codes(vocabulary) if isinstance(vocabulary, str) else vocabulary
    return f"({x} IN ({', '.join(_sql_str(_json_text(c)) for c in codes)}))"


def _bool(x: str) -> str:
    return f"({x} IN ('true', 'false'))"


def _opt(x: str, cond: str) -> str:
    return f"({_null(x)} OR {cond})"


class SetChecker:
    """One DuckDB connection per submission (like the landing index). :meth:`passing` answers, for
    each record of a chunk, whether it is certainly valid."""

    def __init__(self, threads: int = 2) -> None:
        self.con = duckdb.connect(":memory:", config={"threads": threads})
        self._probed: set[tuple[str, str]] = set()
        self._units: dict[str, tuple[float, float]] = {}  # '"analyte"|"unit"' (JSON texts) -> accepted range
        self._sql = _compile()

    def close(self) -> None:
        self.con.close()

    def passing(self, records: Sequence[tuple[dict[str, Any], bytes] | None], *, today: _dt.date | None = None) -> list[bool]:
        """For each (record, canonical JSON) -- or None, never valid here -- whether it is certainly valid."""
        n = len(records)
        out = [False] * n
        units: set[tuple[Any, Any]] = set()
        idx = [i for i, r in enumerate(records) if r is not None and shape_ok(r[0], units) and canonical_is_exact(r[1], r[0])]
        if not idx:
            return out
        self._probe_units(units)
        chunk = pa.table(
            {"i": pa.array(idx, pa.int64()), "j": pa.array([records[i][1] for i in idx], pa.binary()).cast(pa.string())}  # type: ignore[index]
        )
        self.con.register("chunk", chunk)
        try:
            keys = list(self._units)
            sql = (
                self._sql.replace("{UNIT_KEYS}", "[" + ", ".join(_sql_str(k) for k in keys) + "]::VARCHAR[]")
                .replace("{UNIT_LO}", "[" + ", ".join(repr(self._units[k][0]) for k in keys) + "]::DOUBLE[]")
                .replace("{UNIT_HI}", "[" + ", ".join(repr(self._units[k][1]) for k in keys) + "]::DOUBLE[]")
            )
            rows = self.con.execute(sql, [(today or _dt.date.today()).year]).fetchall()
        finally:
            self.con.unregister("chunk")
        for (i,) in rows:
            out[i] = True
        return out

    def _probe_units(self, pairs: set[tuple[str, str]]) -> None:
        """Each new (analyte, unit) pair, asked once of the Python validator itself."""
        for a, u in pairs - self._probed:
            self._probed.add((a, u))
            r = _accepted_unit(a, u)
            if r is not None:
                self._units[_json_text(a) + "|" + _json_text(u)] = r


_PROBE = {
    "schema_version": 1,
    "case_id": "PROBE-1",
    "revision": 1,
    "site_id": "PROBE",
    "source": REF.codes("source")[0],
    "patient": {"age_years": 50, "sex": REF.codes("sex")[0]},
    "kidney": {"status": next(c for c in REF.codes("kidney_status") if c != "dialysis")},
    "diagnosis": {"basis": REF.codes("diagnosis_basis")[0]},
    "organs": [{"organ": REF.codes("organ")[0]}],
    "outcome": {"vital_status": "unknown"} if "unknown" in REF.codes("vital_status") else {"vital_status": "alive", "followup_days": 1},
}


def _accepted_unit(analyte: str, unit: str) -> tuple[float, float] | None:
    """(lowest, highest reported value certainly accepted) of a unit spelling, when the Python
    validator accepts it for the analyte; None otherwise (such labs always go to Python)."""
    a = REF.analytes.get(analyte)
    if a is None:
        return None
    u = a.by_key.get(unit_key(unit))
    if u is None or not (u.factor > 0):
        return None
    lo, hi = a.hard_min / u.factor, a.hard_max / u.factor
    mid = (a.hard_min + a.hard_max) / 2 / u.factor
    # the Python validator must accept the spelling, the middle of the range, and refuse values
    # just beyond each bound (so that the factor and bounds used here are the validator's own)
    probe = copy.deepcopy(_PROBE)
    lab = {"analyte": analyte, "value": mid, "unit": unit, "day": 0}
    probe["labs"] = [lab]
    if validate_record(probe):
        return None
    span = (hi - lo) or 1.0
    for beyond in (lo - span * 1e-3, hi + span * 1e-3):
        lab["value"] = beyond
        if not validate_record(probe):
            return None
    margin = _BOUND_MARGIN * max(abs(lo), abs(hi), 1.0)
    return lo + margin, hi - margin


def _varchar_type(structure: Any) -> str:
    """The SQL type of ``structure`` with every JSON leaf as VARCHAR (its JSON text, compared as text)."""
    if isinstance(structure, dict):
        return "STRUCT(" + ", ".join(f'"{k}" {_varchar_type(v)}' for k, v in structure.items()) + ")"
    if isinstance(structure, list):
        return _varchar_type(structure[0]) + "[]"
    return "VARCHAR"


def _compile() -> str:
    """The query: the index ``i`` of every certainly valid record of ``chunk(i, j)``; ``$1`` is the current year."""
    top = _fields(CaseRecord)
    structure: dict[str, Any] = {k: "JSON" for k in top}
    for name, allowed in _OBJECTS.items():
        structure[name] = {k: "JSON" for k in sorted(allowed)}
    for name, allowed in _LISTS.items():
        structure[name] = [{k: "JSON" for k in sorted(allowed)}]
    structure["lesions"][0]["features"] = ["JSON"]

    day = lambda x: _int(x, -MAX_ABS_DAY, MAX_ABS_DAY)  # noqa: E731
    # a day within follow-up and (labs, treatments) not before onset; fu/onset are NULL when not given
    within = lambda x: f"coalesce(TRY_CAST({x} AS BIGINT) <= fu, true)"  # noqa: E731
    after_onset = lambda x: f"coalesce(TRY_CAST({x} AS BIGINT) >= onset, true)"  # noqa: E731

    def all_elements(name: str, cond: str) -> str:
        return f"len(list_filter(coalesce(t.{name}, []), lambda x: NOT coalesce({cond}, false))) = 0"

    def tri_state(name: str) -> str:
        return " AND ".join(f"({_null(f't.{name}.{k}')} OR {_bool(f't.{name}.{k}')})" for k in sorted(_OBJECTS[name]))

    lesion = (
        f"{_enum('x.site', 'lesion_site')} AND {_opt('x.laterality', _enum('x.laterality', 'laterality'))} "
        f"AND len(list_filter(coalesce(x.features, []), lambda f: NOT coalesce({_enum('f', 'lesion_feature')}, false))) = 0"
    )
    treatment = f"{_enum('x.treatment', 'treatment')} AND {_opt('x.day', day('x.day') + ' AND ' + within('x.day') + ' AND ' + after_onset('x.day'))}"
    organ = f"{_enum('x.organ', 'organ')} AND {_opt('x.evidence', _enum('x.evidence', 'evidence'))}"
    p, k, g, o = "t.patient", "t.kidney", "t.diagnosis", "t.outcome"
    return f"""
    WITH d AS (
        SELECT i, t,
               CASE WHEN {_int('t.outcome.followup_days', 0, MAX_ABS_DAY)} THEN TRY_CAST(t.outcome.followup_days AS BIGINT) END AS fu,
               CASE WHEN {_int('t.onset_day', -MAX_ABS_DAY, 0)} THEN TRY_CAST(t.onset_day AS BIGINT) END AS onset
        FROM (SELECT i, CAST(json_transform(j, {_sql_str(json.dumps(structure))}) AS {_varchar_type(structure)}) AS t FROM chunk)
    ),
    ok AS (
        SELECT i, fu, onset, t.labs AS labs FROM d WHERE coalesce(
            {_int('t.schema_version', 1, 1)}
            AND regexp_full_match(t.case_id, '"[A-Za-z0-9][A-Za-z0-9._-]{{2,63}}"')
            AND {_int('t.revision', 1, MAX_INT)}
            AND regexp_full_match(t.site_id, '"[A-Z0-9][A-Z0-9_-]{{1,31}}"')
            AND {_enum('t.source', 'source')}
            AND {_opt('t.citation', _str('t.citation') + " AND strlen(t.citation) <= 502")}
            AND {_opt('t.index_year', _int('t.index_year', 1950, MAX_INT) + ' AND TRY_CAST(t.index_year AS BIGINT) <= $1')}
            AND {_opt('t.onset_day', _int('t.onset_day', -MAX_ABS_DAY, 0))}
            AND {_int(f'{p}.age_years', 0, 120)} AND {_enum(f'{p}.sex', 'sex')}
            AND {_opt(f'{p}.bmi', _num(f'{p}.bmi', 10, 90))}
            AND {_enum(f'{k}.status', 'kidney_status')}
            AND {_opt(f'{k}.dialysis_modality', _enum(f'{k}.dialysis_modality', 'dialysis_modality'))}
            AND {_opt(f'{k}.dialysis_vintage_months', _int(f'{k}.dialysis_vintage_months', 0, 1200))}
            AND ({_enum(f'{k}.status', ['dialysis'])} OR ({_null(f'{k}.dialysis_modality')} AND {_null(f'{k}.dialysis_vintage_months')}))
            AND {tri_state('comorbidities')}
            AND {tri_state('exposures')}
            AND {_enum(f'{g}.basis', 'diagnosis_basis')}
            AND {_opt(f'{g}.day', day(f'{g}.day') + ' AND ' + within(f'{g}.day'))}
            AND {all_elements('lesions', lesion)}
            AND len(t.organs) >= 1 AND {all_elements('organs', organ)}
            AND len(t.organs) = len(list_distinct(list_transform(t.organs, lambda x: x.organ)))
            AND {all_elements('treatments', treatment)}
            AND {_enum(f'{o}.vital_status', 'vital_status')}
            AND {_opt(f'{o}.followup_days', _int(f'{o}.followup_days', 0, MAX_ABS_DAY))}
            AND ({_enum(f'{o}.vital_status', ['alive', 'dead'])} IS NOT TRUE OR {_int(f'{o}.followup_days', 0, MAX_ABS_DAY)})
            AND {_opt(f'{o}.cause_of_death', _enum(f'{o}.cause_of_death', 'cause_of_death') + ' AND ' + _enum(f'{o}.vital_status', ['dead']))}
            AND {_opt(f'{o}.autopsy', _bool(f'{o}.autopsy'))}
            AND {_opt(f'{o}.wound_healing', _enum(f'{o}.wound_healing', 'wound_healing'))},
        false)
    ),
    units AS (SELECT {{UNIT_KEYS}} AS k, {{UNIT_LO}} AS lo, {{UNIT_HI}} AS hi)
    SELECT i FROM ok, units WHERE len(list_filter(coalesce(labs, []), lambda x: NOT coalesce(
        list_position(units.k, x.analyte || '|' || x.unit) IS NOT NULL
        AND {_num('x.value')}
        AND {_as_double('x.value')} > units.lo[list_position(units.k, x.analyte || '|' || x.unit)]
        AND {_as_double('x.value')} < units.hi[list_position(units.k, x.analyte || '|' || x.unit)]
        AND {day('x.day')} AND {within('x.day')} AND {after_onset('x.day')}
        AND {_opt('x.ref_low', _num('x.ref_low'))} AND {_opt('x.ref_high', _num('x.ref_high'))}
        AND coalesce({_as_double('x.ref_low')} <= {_as_double('x.ref_high')}, true),
    false))) = 0
    """
