"""The REDCap Data Dictionary follows REDCap's rules and the contract; REDCap exports convert
faithfully to contract-v1 records, with errors in REDCap's words."""

from __future__ import annotations

import csv
import io
import json
import re

import orjson
import pytest

from orchestration.contract.formats import redcap
from orchestration.contract.formats.flat import unit_choices
from orchestration.contract.model import REF
from orchestration.contract.validate import validate_record
from orchestration.synthetic.generate import generate_records
from tests.support import MINIMAL, seed_case

FIELD_TYPES = {"text", "notes", "dropdown", "radio", "checkbox", "calc", "file", "yesno", "truefalse", "descriptive", "slider", "sql"}
VALIDATION_TYPES = {"", "integer", "number", "date_ymd", "datetime_ymd", "email", "phone", "time", "zipcode"}


def _rows():
    text = redcap.DICTIONARY_PATH.read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    return header, [dict(zip(header, r)) for r in reader]


def _choices(s: str) -> list[tuple[str, str]]:
    out = []
    for part in s.split("|"):
        code, sep, label = part.strip().partition(",")
        assert sep, f"choice {part!r} has no 'code, label'"
        out.append((code.strip(), label.strip()))
    return out


def canon(rec) -> bytes:
    return orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)


def test_committed_dictionary_is_not_stale():
    assert redcap.DICTIONARY_PATH.read_text(encoding="utf-8") == redcap.render_dictionary(), (
        "the REDCap dictionary is stale: run `registry template redcap --write` and commit it"
    )


def test_dictionary_columns_names_and_types():
    header, rows = _rows()
    assert tuple(header) == redcap.DICTIONARY_COLUMNS and len(header) == 18
    assert rows[0]["Variable / Field Name"] == "record_id" and rows[0]["Field Type"] == "text"
    names = [r["Variable / Field Name"] for r in rows]
    assert len(names) == len(set(names))
    forms_seen: list[str] = []
    for r in rows:
        name, form = r["Variable / Field Name"], r["Form Name"]
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name) and len(name) <= 100 and "___" not in name, name
        assert re.fullmatch(r"[a-z][a-z0-9_]*", form), form
        if not forms_seen or forms_seen[-1] != form:
            assert form not in forms_seen, f"form {form} is not contiguous"
            forms_seen.append(form)
        assert r["Field Type"] in FIELD_TYPES
        assert r["Text Validation Type OR Show Slider Number"] in VALIDATION_TYPES
        if r["Text Validation Type OR Show Slider Number"]:
            assert r["Field Type"] == "text"
        for bound in ("Text Validation Min", "Text Validation Max"):
            if r[bound]:
                assert r["Text Validation Type OR Show Slider Number"] in ("integer", "number")
                float(r[bound])
        if r["Text Validation Min"] and r["Text Validation Max"]:
            assert float(r["Text Validation Min"]) <= float(r["Text Validation Max"])
        assert r["Required Field?"] in ("", "y")
        assert r["Identifier?"] == ""  # de-identified by construction
        for ref in re.findall(r"\[([a-z0-9_]+)\]", r["Branching Logic (Show field only if...)"]):
            assert ref in names[: names.index(name)], f"{name} branches on {ref}, which is not before it"
    assert forms_seen == ["case", "labs", "organs", "lesions", "treatments"]


def test_dictionary_choices_follow_the_syntax_and_the_vocabularies():
    _, rows = _rows()
    by = {r["Variable / Field Name"]: r for r in rows}
    for r in rows:
        if r["Field Type"] in ("radio", "dropdown", "checkbox"):
            pairs = _choices(r["Choices, Calculations, OR Slider Labels"])
            codes = [c for c, _ in pairs]
            assert len(codes) == len(set(codes))
            assert all(re.fullmatch(r"[A-Za-z0-9_]+", c) for c in codes), codes
            assert all(label for _, label in pairs)
        else:
            assert r["Choices, Calculations, OR Slider Labels"] == ""
    yes_no = "1, Yes | 0, No | 9, Unknown"
    bool_fields = [f"comorb_{c}" for c in REF.codes("comorbidity")] + [f"exposure_{c}" for c in REF.codes("exposure")] + ["autopsy"]
    for name in bool_fields:
        assert by[name]["Field Type"] == "radio" and by[name]["Choices, Calculations, OR Slider Labels"] == yes_no
    assert [c for c, _ in _choices(by["lab_analyte"]["Choices, Calculations, OR Slider Labels"])] == list(REF.analytes)
    assert by["lab_analyte"]["Field Type"] == by["lab_unit"]["Field Type"] == "dropdown"
    unit_labels = {label for _, label in _choices(by["lab_unit"]["Choices, Calculations, OR Slider Labels"])}
    assert {u.unit for a in REF.analytes.values() for u in a.units} <= unit_labels
    for name, vocab in [("sex", "sex"), ("kidney_status", "kidney_status"), ("organ", "organ"), ("treatment", "treatment"),
                        ("lesion_site", "lesion_site"), ("vital_status", "vital_status"), ("source", "source")]:
        assert [c for c, _ in _choices(by[name]["Choices, Calculations, OR Slider Labels"])] == list(REF.codes(vocab))
    assert [c for c, _ in _choices(by["lesion_features"]["Choices, Calculations, OR Slider Labels"])] == list(REF.codes("lesion_feature"))
    assert by["lesion_features"]["Field Type"] == "checkbox"
    # matrix groups: contiguous radios with the same choices
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r["Matrix Group Name"]:
            groups.setdefault(r["Matrix Group Name"], []).append(i)
    for g, idx in groups.items():
        assert idx == list(range(idx[0], idx[-1] + 1)), g
        assert len({rows[i]["Choices, Calculations, OR Slider Labels"] for i in idx}) == 1


def test_dictionary_validation_matches_the_contract():
    _, rows = _rows()
    by = {r["Variable / Field Name"]: r for r in rows}

    def v(name):
        r = by[name]
        return r["Text Validation Type OR Show Slider Number"], r["Text Validation Min"], r["Text Validation Max"]

    assert v("age_years") == ("integer", "0", "120")
    assert v("bmi") == ("number", "10", "90")
    assert v("onset_day")[0] == "integer" and v("onset_day")[2] == "0"
    assert v("followup_days")[:2] == ("integer", "0")
    assert v("index_year")[:2] == ("integer", "1950")
    assert v("lab_value")[0] == "number" and v("lab_day")[0] == "integer"
    assert v("dialysis_vintage_months")[:2] == ("integer", "0")
    required = {n for n, r in by.items() if r["Required Field?"] == "y"}
    assert {"case_id", "site_id", "source", "age_years", "sex", "kidney_status", "diagnosis_basis", "vital_status",
            "lab_analyte", "lab_value", "lab_unit", "organ", "lesion_site", "treatment"} == required
    assert by["dialysis_modality"]["Branching Logic (Show field only if...)"] == "[kidney_status] = 'dialysis'"
    assert by["cause_of_death"]["Branching Logic (Show field only if...)"] == "[vital_status] = 'dead'"


def test_unit_codes_are_unique_per_spelling():
    codes = [c for c, _ in unit_choices()]
    assert len(codes) == len(set(codes))


# ----------------------------------------------------------------------------- records


def test_export_then_read_gives_identical_records():
    records = [seed_case(), MINIMAL, *generate_records(300, 11)]
    converted = redcap.read_export(redcap.write_export(records))
    assert [canon(c.record) for c in converted] == [canon(r) for r in records]
    for c in converted:
        assert validate_record(c.record) == []


def _export(rows: list[dict[str, str]]) -> bytes:
    cols = redcap.export_columns()
    extra = [k for r in rows for k in r if k not in cols]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols + sorted(set(extra)), restval="")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def _mapped(conv) -> list[str]:
    out = []
    for e in validate_record(conv.record):
        if conv.only_own_errors and e.path not in conv.messages:
            continue
        where, msg = conv.map_error(e.path, e.message)
        out.append(f"{where}: {msg}")
    return out


def _case_rows(rid: str, **over) -> list[dict[str, str]]:
    rows = list(redcap.export_rows([seed_case()]))
    for r in rows:
        r["record_id"] = rid
    rows[0]["case_id"] = f"CASE-{rid}"
    rows[0].update(over)
    return rows


def test_a_wrong_unit_is_named_in_redcap_words_and_neighbours_are_clean():
    rows = _case_rows("16") + _case_rows("17") + _case_rows("18")
    labs17 = [r for r in rows if r["record_id"] == "17" and r["redcap_repeat_instrument"] == "labs"]
    pthrp = next(r for r in labs17 if r["lab_analyte"] == "pthrp")
    pthrp["lab_unit"] = "pmol_l"
    converted = redcap.read_export(_export(rows))
    assert [c.where for c in converted] == ["record 16", "record 17", "record 18"]
    assert _mapped(converted[0]) == [] and _mapped(converted[2]) == []
    inst = pthrp["redcap_repeat_instance"]
    assert _mapped(converted[1]) == [f'record 17, labs #{inst}, lab_unit: "pmol/L" is not accepted for pthrp (accepted: pg/mL, ng/L)']


def test_unknown_codes_missing_fields_unknown_columns_and_bad_yes_no():
    rows = _case_rows("5", sex="robot", age_years="99999999999999999999999", comorb_diabetes="7", patient_name="Jane Doe", onset_day="2024-03-07")
    rows[-1]["treatment"] = "leeches"
    (conv,) = redcap.read_export(_export(rows))
    errors = _mapped(conv)
    n_treat = sum(1 for r in rows if r["redcap_repeat_instrument"] == "treatments")
    assert 'record 5, case, sex: "robot" is not an accepted value (accepted: female, male, other, unknown)' in errors
    assert "record 5, case, age_years: 99999999999999999999999 is above the maximum 120" in errors
    assert 'record 5, case, comorb_diabetes: "7" is not a choice (1 = yes, 0 = no, 9 = unknown)' in errors
    assert any(e.startswith("record 5, case, patient_name: unknown field") for e in errors)
    assert any(e.startswith("record 5, case, onset_day: is a calendar date") for e in errors)
    assert "Jane" not in json.dumps(conv.record) and "2024-03-07" not in json.dumps(conv.record)
    assert any(e.startswith(f"record 5, treatments #{n_treat}, treatment: \"leeches\" is not an accepted value") for e in errors)


def test_label_exports_and_events_are_read():
    rows = _case_rows("9")
    for r in rows:  # REDCap writes unchecked boxes of other instruments on every row
        if r["redcap_repeat_instrument"] != "lesions":
            r.update({k: "0" for k in redcap.export_columns() if k.startswith("lesion_features___")})
        r["case_complete"] = "2"
    rows[0].update(sex="Male", comorb_diabetes="Unknown", redcap_event_name="baseline_arm_1", redcap_data_access_group="site_a")
    (conv,) = redcap.read_export(_export(rows))
    assert conv.record["patient"]["sex"] == "male"
    assert conv.record["comorbidities"]["diabetes"] is None  # unknown is not no
    assert _mapped(conv) == []


def test_unknown_instrument_and_missing_organs():
    rows = _case_rows("3")
    rows = [r for r in rows if r["redcap_repeat_instrument"] != "organs"]
    rows.append({"record_id": "3", "redcap_repeat_instrument": "scans", "redcap_repeat_instance": "1"})
    (conv,) = redcap.read_export(_export(rows))
    errors = _mapped(conv)
    assert "record 3, organs: is required but missing" in errors
    assert any(e.startswith("record 3, scans: unknown repeating instrument \"scans\"") for e in errors)


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "is empty"),
        (b"\xff\xfe\x00garbage", "is not UTF-8"),
        (b"name,dob\nJane,1950-01-01\n", "has no record_id column"),
        (b"PK\x03\x04\x14\x00\x06\x00", "NUL bytes"),
    ],
)
def test_broken_files_are_reported_as_a_whole(data, words):
    with pytest.raises(redcap.FileProblem, match=words):
        redcap.read_export(data)
