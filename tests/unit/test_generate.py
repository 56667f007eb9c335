"""The synthetic cohort generator: determinism, validity, calibration to the published cohorts,
and the registry's conventions (unknown is not no, values as reported, nothing outside the contract)."""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter

import orjson
import pytest

from orchestration.config import REFERENCE_DIR
from orchestration.contract.reference import load, unit_key
from orchestration.contract.validate import validate_record
from orchestration.synthetic.generate import CHUNK_SIZE, generate_records, write_jsonl

REF = load()
SEED = 20_240_601
N_CALIBRATION = 5_000
LEGS_OR_BUTTOCKS = {"lower_leg", "thigh", "buttock", "foot"}


def targets() -> dict[str, float]:
    with (REFERENCE_DIR / "synthetic_calibration.csv").open(newline="", encoding="utf-8") as f:
        return {row["parameter"]: float(row["target"]) for row in csv.DictReader(f)}


TARGET = targets()


@pytest.fixture(scope="module")
def cohort() -> list[dict]:
    return list(generate_records(N_CALIBRATION, SEED))


def share(flags) -> float:
    flags = list(flags)
    return sum(bool(f) for f in flags) / len(flags)


def canonical_baseline(cohort: list[dict], code: str) -> list[float]:
    """Day-0 values of one analyte, converted to its canonical unit with the reference factors."""
    analyte = REF.analytes[code]
    return [
        lab["value"] * analyte.by_key[unit_key(lab["unit"])].factor
        for r in cohort
        for lab in r.get("labs", ())
        if lab["analyte"] == code and lab.get("day", 0) == 0
    ]


# ----------------------------------------------------------------------------- determinism


def test_same_seed_gives_a_byte_identical_file(tmp_path):
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert write_jsonl(a, 1_500, 7) == 1_500
    assert write_jsonl(b, 1_500, 7) == 1_500
    write_jsonl(c, 1_500, 8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_the_file_is_json_lines_of_the_generated_records(tmp_path):
    out = tmp_path / "sub" / "cohort.jsonl"
    assert write_jsonl(out, 300, 3) == 300
    data = out.read_bytes()
    data.decode("utf-8")
    lines = data.split(b"\n")
    assert lines[-1] == b"" and len(lines) == 301
    assert [orjson.loads(line) for line in lines[:-1]] == list(generate_records(300, 3))
    assert sorted(p.name for p in out.parent.iterdir()) == ["cohort.jsonl"]  # no temporary file left


def test_write_replaces_an_existing_file_and_handles_zero_cases(tmp_path):
    out = tmp_path / "cohort.jsonl"
    out.write_text("old content\n")
    assert write_jsonl(out, 0, 1) == 0
    assert out.read_bytes() == b""


def test_a_cohort_prefix_is_the_smaller_cohort():
    big = list(generate_records(1_000, SEED))
    assert list(generate_records(137, SEED)) == big[:137]
    assert list(generate_records(100, SEED, start_index=400)) == big[400:500]


def test_blocks_join_seamlessly_at_the_block_boundary():
    start = CHUNK_SIZE - 5
    across = list(generate_records(10, SEED, start_index=start))
    assert across == list(generate_records(5, SEED, start_index=start)) + list(generate_records(5, SEED, start_index=CHUNK_SIZE))
    assert [r["case_id"] for r in across] == [f"SYN-{SEED}-{i:07d}" for i in range(start + 1, start + 11)]
    assert list(generate_records(5, SEED, start_index=CHUNK_SIZE)) != list(generate_records(5, SEED))


@pytest.mark.parametrize("args", [(-1, 1), (10, -1), (1.5, 1), (10, True)])
def test_bad_arguments_are_refused(args):
    with pytest.raises(ValueError):
        list(generate_records(*args))


# ----------------------------------------------------------------------------- validity and conventions


def test_every_record_validates():
    cohort = list(generate_records(2_000, 11))
    failures = {r["case_id"]: [str(e) for e in errs] for r in cohort if (errs := validate_record(r))}
    assert failures == {}


def test_identity_fields(cohort):
    ids = [r["case_id"] for r in cohort]
    assert len(set(ids)) == len(ids)
    assert ids[0] == f"SYN-{SEED}-0000001"
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{2,63}", i) for i in ids)
    sites = Counter(r["site_id"] for r in cohort)
    assert 10 <= len(sites) <= 20
    assert {"DE-BER", "DE-MUC", "UK-LON", "US-MN", "US-BOS", "KR-SEL"} <= set(sites)
    assert all(re.fullmatch(r"[A-Z0-9][A-Z0-9_-]{1,31}", s) for s in sites)
    for r in cohort:
        assert r["source"] == "synthetic"
        assert r["schema_version"] == 1 and r["revision"] == 1
        assert "citation" not in r
        assert 2006 <= r["index_year"] <= 2025


def test_dialysis_fields_only_for_dialysis(cohort):
    for r in cohort:
        kidney = r["kidney"]
        if kidney["status"] == "dialysis":
            assert kidney["dialysis_modality"] in ("hemodialysis", "peritoneal_dialysis")
        else:
            assert "dialysis_modality" not in kidney and "dialysis_vintage_months" not in kidney
    dialysis = [r["kidney"] for r in cohort if r["kidney"]["status"] == "dialysis"]
    assert share(k["dialysis_modality"] == "hemodialysis" for k in dialysis) > 0.8
    assert share("dialysis_vintage_months" in k for k in dialysis) > 0.9
    others = Counter(r["kidney"]["status"] for r in cohort) - Counter(dialysis=len(dialysis))
    assert set(others) == {"transplant", "ckd", "normal", "aki", "unknown"}


def test_outcome_conventions(cohort):
    counts = Counter(r["outcome"]["vital_status"] for r in cohort)
    assert 0.015 <= counts["unknown"] / len(cohort) <= 0.05
    for r in cohort:
        o = r["outcome"]
        if o["vital_status"] != "dead":
            assert "cause_of_death" not in o
            assert o.get("autopsy") is not True
        if o["vital_status"] in ("alive", "dead"):
            assert isinstance(o["followup_days"], int) and o["followup_days"] >= 0
    dead = [r["outcome"] for r in cohort if r["outcome"]["vital_status"] == "dead"]
    assert share("cause_of_death" in o for o in dead) > 0.85
    assert {"calciphylaxis", "sepsis", "cardiovascular"} <= {o.get("cause_of_death") for o in dead}
    alive = [r["outcome"]["followup_days"] for r in cohort if r["outcome"]["vital_status"] == "alive"]
    assert min(alive) >= 29 and max(alive) <= 1800  # administrative censoring, 30..1800 days
    days = [o["followup_days"] for o in dead]
    assert len(set(days)) < len(days)  # whole days: ties occur


def test_days_respect_onset_and_followup(cohort):
    for r in cohort:
        onset = r.get("onset_day")
        end = r["outcome"].get("followup_days")
        if onset is not None:
            assert -90 <= onset <= 0
        diagnosis_day = r["diagnosis"].get("day")
        if diagnosis_day is not None:
            assert onset is None or diagnosis_day >= onset
            assert end is None or diagnosis_day <= end
        for item in r.get("labs", []) + r.get("treatments", []):
            day = item.get("day", 0 if "analyte" in item else None)
            if day is not None:
                assert onset is None or day >= onset
                assert end is None or day <= end
    assert 0.05 < share("onset_day" not in r for r in cohort) < 0.3


def test_diagnosis_basis_shares(cohort):
    basis = Counter(r["diagnosis"]["basis"] for r in cohort)
    assert basis["biopsy"] / len(cohort) == pytest.approx(0.60, abs=0.04)
    assert basis["clinical"] / len(cohort) == pytest.approx(0.38, abs=0.04)
    assert 0.01 <= basis["autopsy"] / len(cohort) <= 0.035
    for r in cohort:
        if r["diagnosis"]["basis"] == "autopsy":
            assert r["outcome"]["vital_status"] == "dead" and r["outcome"]["autopsy"] is True


def test_organs(cohort):
    visceral = {c for c in REF.codes("organ") if REF.group_of("organ", c) == "visceral"}
    for r in cohort:
        names = [o["organ"] for o in r["organs"]]
        assert names[0] == "skin" and len(names) == len(set(names))
        assert r["organs"][0].get("evidence", "histology") in ("histology", "clinical")
    assert share(any(o["organ"] == "subcutaneous_fat" for o in r["organs"]) for r in cohort) == pytest.approx(0.40, abs=0.04)
    assert 0.04 <= share(any(o["organ"] in visceral for o in r["organs"]) for r in cohort) <= 0.09


def test_lesions(cohort):
    assert 0.015 <= share("lesions" not in r for r in cohort) <= 0.05
    central = {c for c in REF.codes("lesion_site") if REF.group_of("lesion_site", c) == "central"}
    peripheral = {c for c in REF.codes("lesion_site") if REF.group_of("lesion_site", c) == "peripheral"}
    seen_sites = set()
    for r in cohort:
        lesions = r.get("lesions")
        if lesions is None:
            continue
        assert 1 <= len(lesions) <= 3
        seen_sites.update(lesion["site"] for lesion in lesions)
        for lesion in lesions:
            assert lesion.get("laterality", "unknown") in REF.codes("laterality")
            assert set(lesion.get("features", ())) <= set(REF.codes("lesion_feature"))
    assert central <= seen_sites and peripheral <= seen_sites


def test_tri_state_facts_include_unknowns(cohort):
    warfarin = Counter(r.get("exposures", {}).get("warfarin", "absent") for r in cohort)
    assert warfarin[False] / len(cohort) == pytest.approx(0.40, abs=0.04)
    assert (warfarin[None] + warfarin["absent"]) / len(cohort) == pytest.approx(0.08, abs=0.03)
    assert warfarin[None] > 0 and warfarin["absent"] > 0
    diabetes = Counter(r.get("comorbidities", {}).get("diabetes", "absent") for r in cohort)
    assert diabetes[None] + diabetes["absent"] > 0
    assert len({c for r in cohort for c in r.get("comorbidities", {})}) == len(REF.codes("comorbidity"))
    assert len({e for r in cohort for e in r.get("exposures", {})}) == len(REF.codes("exposure"))


def test_treatments(cohort):
    assert share(any(t["treatment"] == "sodium_thiosulfate" for t in r.get("treatments", ())) for r in cohort) == pytest.approx(0.70, abs=0.04)
    seen = Counter(t["treatment"] for r in cohort for t in r.get("treatments", ()))
    assert {"wound_care", "cinacalcet", "parathyroidectomy"} <= set(seen)
    for r in cohort:
        names = [t["treatment"] for t in r.get("treatments", ())]
        assert len(names) == len(set(names))


def test_labs_baseline_and_later_values(cohort):
    for code, minimum in (("calcium", 0.93), ("phosphate", 0.9), ("pth_intact", 0.85)):
        assert share(any(lab["analyte"] == code and lab["day"] == 0 for lab in r.get("labs", ())) for r in cohort) >= minimum
    later = [r for r in cohort if any(lab["day"] != 0 for lab in r.get("labs", ()))]
    assert len(later) / len(cohort) == pytest.approx(0.30, abs=0.04)
    for r in later:
        for lab in r["labs"]:
            if lab["day"] != 0:
                assert lab["analyte"] in ("calcium", "phosphate") and 7 <= lab["day"] <= 60
    labs = [lab for r in cohort for lab in r.get("labs", ())]
    own = [lab for lab in labs if "ref_low" in lab or "ref_high" in lab]
    assert len(own) / len(labs) == pytest.approx(0.05, abs=0.015)
    assert all(lab["ref_low"] <= lab["ref_high"] for lab in own if "ref_low" in lab and "ref_high" in lab)
    assert {"albumin", "creatinine", "alkaline_phosphatase", "vitamin_d_25oh", "hematocrit", "wbc", "platelets"} <= {
        lab["analyte"] for lab in labs
    }


def test_units_are_mixed_as_real_sites_report_them(cohort):
    spellings: dict[str, Counter] = {}
    for r in cohort:
        for lab in r.get("labs", ()):
            spellings.setdefault(lab["analyte"], Counter())[lab["unit"]] += 1
    assert len(spellings["calcium"]) >= 3
    assert {"mmol/L", "mg/dL"} <= set(spellings["calcium"])
    assert "MG/DL" in spellings["calcium"] and "mmol/l" in spellings["calcium"]  # case variants
    assert {"µmol/L", "umol/L", "mg/dL"} <= set(spellings["creatinine"])
    assert {"g/L", "g/dL"} <= set(spellings["albumin"])
    assert {"pg/mL", "pmol/L"} <= set(spellings["pth_intact"])
    # European sites report calcium in mmol/L, US sites in mg/dL.
    by_site = {(r["site_id"][:2], unit_key(lab["unit"])) for r in cohort for lab in r.get("labs", ()) if lab["analyte"] == "calcium"}
    assert {region for region, key in by_site if key == "mg/dl"} <= {"US", "KR"}
    assert {region for region, key in by_site if key == "mmol/l"} <= {"DE", "UK", "NL", "FR", "SE"}


# ----------------------------------------------------------------------------- calibration


def test_age(cohort):
    ages = [r["patient"]["age_years"] for r in cohort]
    assert statistics.median(ages) == pytest.approx(TARGET["age_median"], abs=3)
    assert 0.01 <= share(a >= 90 for a in ages) <= 0.04
    assert share(a < 40 for a in ages) > 0.003
    assert all(0 <= a <= 120 for a in ages)


def test_sex(cohort):
    sex = Counter(r["patient"]["sex"] for r in cohort)
    assert sex["female"] / len(cohort) == pytest.approx(TARGET["female_fraction"], abs=0.04)
    assert sex["female"] / (sex["female"] + sex["male"]) == pytest.approx(TARGET["female_fraction"], abs=0.04)
    assert 0 < sex["unknown"] / len(cohort) < 0.03


def test_dialysis_share(cohort):
    assert share(r["kidney"]["status"] == "dialysis" for r in cohort) == pytest.approx(TARGET["dialysis_fraction"], abs=0.04)


def test_warfarin_share(cohort):
    assert share(r.get("exposures", {}).get("warfarin") is True for r in cohort) == pytest.approx(TARGET["vka_fraction"], abs=0.05)


def test_legs_or_buttocks_share(cohort):
    with_lesions = [r for r in cohort if r.get("lesions")]
    legs = share(any(lesion["site"] in LEGS_OR_BUTTOCKS for lesion in r["lesions"]) for r in with_lesions)
    assert legs == pytest.approx(TARGET["legs_or_buttocks_fraction"], abs=0.05)


def test_mineral_metabolism_medians(cohort):
    ca_mmol = REF.analytes["calcium"].by_key[unit_key("mmol/L")].factor
    po_mmol = REF.analytes["phosphate"].by_key[unit_key("mmol/L")].factor
    assert statistics.median(canonical_baseline(cohort, "calcium")) / ca_mmol == pytest.approx(TARGET["calcium_median"], abs=0.08)
    assert statistics.median(canonical_baseline(cohort, "phosphate")) / po_mmol == pytest.approx(TARGET["phosphate_median"], abs=0.08)
    assert statistics.median(canonical_baseline(cohort, "pth_intact")) == pytest.approx(TARGET["pth_intact_median"], abs=20)


def test_diabetes_share(cohort):
    diabetes = [r.get("comorbidities", {}).get("diabetes") for r in cohort]
    known = [d for d in diabetes if d is not None]
    assert share(known) == pytest.approx(TARGET["diabetes_fraction"], abs=0.05)  # among the known
    assert share(d is True for d in diabetes) == pytest.approx(TARGET["diabetes_fraction"], abs=0.05)  # among all


def test_one_year_survival(cohort):
    from lifelines import KaplanMeierFitter

    known = [r["outcome"] for r in cohort if r["outcome"]["vital_status"] != "unknown"]
    km = KaplanMeierFitter().fit([o["followup_days"] for o in known], [o["vital_status"] == "dead" for o in known])
    assert float(km.survival_function_at_times(365).iloc[0]) == pytest.approx(TARGET["survival_1y"], abs=0.05)
    assert 0.1 < share(o["vital_status"] == "alive" for o in known) < 0.5  # some are censored alive
