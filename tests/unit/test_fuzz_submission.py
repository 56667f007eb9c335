"""Fuzzing the submission path (issue 15): thousands of generated and mutated records and files go
through parse_submission, the validator and landing.submit. No exception escapes, every record is
accounted for (accepted + duplicates + quarantined = submitted, with as many audit lines), and the
validator agrees with the published JSON Schema on every record the schema can judge.

Deterministic (derandomize=True) and bounded (max_examples) to stay well under a minute."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import jsonschema
import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from orchestration.config import Home
from orchestration.contract import schema
from orchestration.contract.model import REF
from orchestration.contract.validate import _semantic, parse_submission, record_errors
from orchestration.registry.landing import submit
from orchestration.synthetic.generate import generate_records
from tests.support import MINIMAL, seed_case

FUZZ = settings(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))

BASES = [copy.deepcopy(MINIMAL), seed_case(), *generate_records(12, seed=3)]


def _ecma_pattern(validator, pattern, instance, schema_):
    """JSON Schema patterns are ECMA-262 regular expressions, where ``$`` (without the m flag) is the
    end of the text; the jsonschema package uses Python's ``re``, where ``$`` also matches before a
    final newline (it would accept the case_id "ABC\\n", which the contract refuses)."""
    if isinstance(instance, str) and not re.search(pattern.replace("$", r"\Z"), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _ecma_pattern})
SCHEMA = _Validator(json.loads(schema.SCHEMA_PATH.read_text()))


def _paths(obj, loc=()):
    """Every (path to a container, key) of a record."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.append((loc, k))
            out.extend(_paths(v, loc + (k,)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.append((loc, i))
            out.extend(_paths(v, loc + (i,)))
    return out


def _get(obj, loc):
    for k in loc:
        obj = obj[k]
    return obj


_codes = sorted({c for v in REF.vocab.values() for c in v} | set(REF.analytes))
_units = sorted(REF.spellings)[::50] + ["mg/\u00a0dL", " ", "\u2028", "mg/dl\x1f"]
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_scalar = st.one_of(
    st.none(), st.booleans(),
    st.integers(-(2**40), 2**40), st.integers(-3, 130), st.integers(-(2**70), 2**70),
    st.integers(-50, 200).map(float), st.sampled_from([-0.0, 1e2, 40.0, 2147483648.0]),
    st.floats(allow_nan=False, allow_infinity=False), st.floats(-200, 200),
    _text, st.sampled_from(_codes), st.sampled_from(_units),
    st.sampled_from(["TEST-0001", "ab", "x" * 70, "Mueller, Hans", "DE-TEST", "de-test", "ABC\n"]),
)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3), st.dictionaries(st.sampled_from(["organ", "analyte", "x", "day", "value", "unit"]), _scalar, max_size=3))


@st.composite
def mutated_record(draw):
    rec = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(rec)
        if not paths:
            break
        loc, key = draw(st.sampled_from(paths))
        parent = _get(rec, loc)
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "replace":
            parent[key] = draw(_value)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["mrn", "extra", "index_year", "revision", "citation"]))] = draw(_value)
    return rec


def _judgeable(text: str) -> bool:
    """JSON the schema can judge: no NaN/Infinity, no repeated key, no number beyond a double."""
    try:
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)), object_pairs_hook=_no_dups)
    except ValueError:
        return False
    return True


def _no_dups(pairs):
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate")
    return dict(pairs)


@settings(FUZZ, max_examples=1500)
@given(mutated_record())
@example({**MINIMAL, "case_id": "ABC\n"})
@example({**MINIMAL, "patient": {"age_years": 40.0, "sex": "male"}, "revision": 1e2, "schema_version": 1.0})
@example({**MINIMAL, "revision": 10**25})
@example({**MINIMAL, "labs": [{"analyte": "calcium", "value": 9, "unit": "mg/\u00a0dL"}]})
def test_validator_and_json_schema_agree(rec):
    text = json.dumps(rec)
    (p,) = list(parse_submission((text + "\n").encode(), "f.jsonl"))
    errors = record_errors(p)
    if p.error is not None or not _judgeable(text):
        assert p.error is not None or errors
        return
    structural = [e for e in errors if e not in _semantic(p.obj)]
    schema_ok = SCHEMA.is_valid(json.loads(text))
    assert schema_ok == (not structural), (text, errors, [e.message for e in SCHEMA.iter_errors(json.loads(text))])


# ----------------------------------------------------------------------------- whole files


def _deep(n):
    return "[" * n + "]" * n


@st.composite
def hostile_text(draw):
    """A record's JSON text, mutated as an attacker or a careless tool would."""
    text = json.dumps(draw(mutated_record()))
    kind = draw(st.sampled_from(["none", "dup", "escape", "surrogate", "deep", "huge", "nan", "truncate", "bytes", "float"]))
    at = draw(st.integers(1, max(1, len(text) - 1)))
    if kind == "dup":
        return text.replace("{", '{"case_id": "DUP-0001", ', 1)
    if kind == "escape":
        return text.replace('"', '"\\x', 2) if draw(st.booleans()) else text.replace('"site_id": "', '"site_id": "\\u12', 1)
    if kind == "surrogate":
        return text.replace('"source": "', '"source": "\\ud800', 1)
    if kind == "deep":
        return text[:-1] + ', "x": ' + _deep(draw(st.sampled_from([70, 300, 1100, 5000]))) + "}"
    if kind == "huge":
        return text.replace('"schema_version": 1', '"schema_version": 1, "revision": ' + "9" * draw(st.sampled_from([25, 40, 4400])), 1)
    if kind == "nan":
        return text.replace('"day": ', '"day": NaN, "x": 1e309, "y": ', 1)
    if kind == "truncate":
        return text[:at]
    if kind == "bytes":
        return text[:at] + draw(st.sampled_from(["\x00", "\x1b", "\u2028", "}", "]", ",", '"', "\\"])) + text[at:]
    if kind == "float":
        return text.replace('"age_years": ', '"age_years": 1e1 + ', 1).replace("1e1 + ", "") + ""
    return text


_N = [0]


def _count_lines(path: Path) -> int:
    return sum(1 for ln in path.read_bytes().splitlines() if ln.strip()) if path.exists() else 0


@settings(FUZZ, max_examples=100)
@given(st.lists(hostile_text(), min_size=1, max_size=25), st.sampled_from(["jsonl", "json"]), st.booleans())
def test_every_record_of_a_hostile_file_is_accounted_for(tmp_path_factory, texts, fmt, with_junk_line):
    _N[0] += 1
    home = Home(tmp_path_factory.getbasetemp() / "fuzz" / f"h{_N[0]}").ensure()
    if fmt == "jsonl":
        lines = texts + (["not json at all"] if with_junk_line else [])
        data = "\n".join(t.replace("\n", " ") for t in lines).encode("utf-8", errors="surrogatepass")
        expected = sum(1 for ln in data.split(b"\n") if ln.strip())
    else:
        data = ("[" + ",\n".join(texts) + "]").encode("utf-8", errors="surrogatepass")
        expected = None
    receipts = submit(home, [(f"fuzz.{fmt}", data)])  # no exception may escape
    counts = {s: sum(1 for r in receipts if r.status == s) for s in ("accepted", "duplicate", "quarantined")}
    assert sum(counts.values()) == len(receipts) > 0
    whole_file = len(receipts) == 1 and receipts[0].record is None
    if expected is not None and not whole_file:
        assert len(receipts) == expected
    # what landed, what was quarantined and what the audit says add up
    landed = sum(_count_lines(f) for f in home.landing_batches.glob("*.jsonl"))
    quarantined = sum(_count_lines(f) for f in home.quarantine_batches.glob("*.jsonl"))
    payloads = sum(_count_lines(f) for f in home.quarantine_payloads.glob("*.jsonl"))
    audited = [orjson.loads(ln) for ln in home.audit_log.read_bytes().splitlines() if ln.strip()]
    assert landed == counts["accepted"] and quarantined == payloads == counts["quarantined"]
    assert len(audited) == len(receipts) and [a["status"] for a in audited] == [r.status for r in receipts]
    for r in receipts:
        assert r.status != "quarantined" or r.errors  # every rejection has a reason
        for e in r.errors:
            assert "Traceback" not in e.message and e.path
    # every landed record is valid and reads back as JSON
    for f in home.landing_batches.glob("*.jsonl"):
        for ln in f.read_bytes().splitlines():
            rec = orjson.loads(ln)["record"]
            assert not [e for e in record_errors(next(iter(parse_submission(orjson.dumps(rec) + b"\n", "x.jsonl"))))]
            assert all(not isinstance(v, float) or math.isfinite(v) for v in rec.get("patient", {}).values())
