"""The age bands and the filter's levels come from the reference seeds, which dbt publishes too."""

from __future__ import annotations

from orchestration.contract.model import CaseRecord
from orchestration.contract.reference import age_bands, load, vocabulary_labels


def test_age_bands_are_the_age_band_vocabulary_and_cover_every_age_the_contract_accepts():
    bands = age_bands()
    assert [b.code for b in bands] == list(load().codes("age_band"))
    assert [b.code for b in bands] == list(vocabulary_labels()["age_band"])
    ages = CaseRecord.model_json_schema()["$defs"]["Patient"]["properties"]["age_years"]
    lo, hi = ages["minimum"], ages["maximum"]
    assert bands[0].age_min <= lo and bands[-1].age_max >= hi
    for a, b in zip(bands, bands[1:]):
        assert b.age_min == a.age_max + 1  # contiguous, no overlap


def test_the_cohort_filter_offers_the_seed_levels_in_display_order():
    from dashboards.lib import cohort

    labels = vocabulary_labels()
    assert cohort.SEXES == tuple(labels["sex"]) == ("female", "male", "other", "unknown")
    assert cohort.KIDNEY_STATUSES == tuple(labels["kidney_status"])
    assert cohort.LESION_DISTRIBUTIONS == tuple(labels["lesion_distribution"])
    assert cohort.AGE_BANDS == ("<40", "40-49", "50-59", "60-69", "70-79", "80-89", "90+")
    assert cohort.option_label("kidney_status", "ckd") == "CKD"
