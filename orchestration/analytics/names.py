"""Names of the case-level variables and their kinds (no third-party import: the command line reads
these for its help texts without loading pandas). See ``orchestration.analytics.variables``."""

from __future__ import annotations

UNKNOWN = "unknown"

BOOLEAN: tuple[str, ...] = (
    "diabetes",
    "obesity",
    "warfarin",
    "hypertension",
    "malignancy",
    "visceral_involvement",
    "autopsy",
    "died",
    "is_synthetic",
)

CATEGORICAL: tuple[str, ...] = (
    "sex",
    "age_band",
    "kidney_status",
    "dialysis_modality",
    "lesion_distribution",
    "diagnosis_basis",
    "vital_status",
    "cause_of_death",
    "wound_healing",
    "site_id",
    "source",
)

#: Continuous variables with their unit (for labels).
CONTINUOUS: dict[str, str] = {
    "age_years": "years",
    "bmi": "kg/m²",
    "dialysis_vintage_months": "months",
    "organ_count": "organs",
    "followup_days": "days",
    "baseline_calcium": "mg/dL",
    "baseline_phosphate": "mg/dL",
    "calcium_phosphate_product": "mg²/dL²",
    "baseline_pth": "pg/mL",
    "baseline_albumin": "g/dL",
}

#: Baseline labs the cohort reader adds (column -> analyte code of fct_lab_results).
EXTRA_BASELINE_LABS: dict[str, str] = {"baseline_pth": "pth_intact", "baseline_albumin": "albumin"}

#: Fixed orders for display (others sort alphabetically, "unknown" last).
ORDER: dict[str, tuple[str, ...]] = {
    "age_band": ("<40", "40-49", "50-59", "60-69", "70-79", "80-89", "90+"),
    "kidney_status": ("dialysis", "transplant", "ckd", "aki", "normal"),
    "sex": ("female", "male", "other"),
    "lesion_distribution": ("central", "peripheral", "mixed", "none"),
    "wound_healing": ("complete", "partial", "none", "not_applicable"),
    "vital_status": ("alive", "dead"),
}

#: Columns Table 1 can be grouped by (categorical or boolean facts known at day 0, plus outcome).
GROUPINGS: tuple[str, ...] = (
    "vital_status",
    "kidney_status",
    "sex",
    "age_band",
    "visceral_involvement",
    "warfarin",
    "diabetes",
    "obesity",
    "lesion_distribution",
    "dialysis_modality",
    "diagnosis_basis",
    "wound_healing",
    "hypertension",
    "malignancy",
    "site_id",
    "source",
    "is_synthetic",
)

#: Default rows of Table 1 (the grouping column itself is left out).
TABLE1_VARIABLES: tuple[str, ...] = (
    "age_years",
    "age_band",
    "sex",
    "kidney_status",
    "dialysis_vintage_months",
    "diabetes",
    "obesity",
    "hypertension",
    "malignancy",
    "warfarin",
    "bmi",
    "lesion_distribution",
    "visceral_involvement",
    "organ_count",
    "diagnosis_basis",
    "baseline_calcium",
    "baseline_phosphate",
    "calcium_phosphate_product",
    "baseline_pth",
    "baseline_albumin",
    "vital_status",
    "followup_days",
    "wound_healing",
)

#: Covariates the Cox model accepts (baseline facts only: nothing measured after day 0).
COX_COVARIATES: tuple[str, ...] = (
    "age_years",
    "sex",
    "kidney_status",
    "dialysis_vintage_months",
    "diabetes",
    "obesity",
    "hypertension",
    "malignancy",
    "warfarin",
    "bmi",
    "visceral_involvement",
    "lesion_distribution",
    "organ_count",
    "baseline_calcium",
    "baseline_phosphate",
    "calcium_phosphate_product",
    "baseline_pth",
    "baseline_albumin",
    "age_band",
    "diagnosis_basis",
)


#: Readable names of the variables (tables of the report and the /analysis page).
LABELS: dict[str, str] = {
    "age_years": "Age", "age_band": "Age band", "sex": "Sex", "kidney_status": "Kidney status",
    "dialysis_modality": "Dialysis modality", "dialysis_vintage_months": "Dialysis vintage", "diabetes": "Diabetes",
    "obesity": "Obesity", "hypertension": "Hypertension", "malignancy": "Malignancy", "warfarin": "Warfarin",
    "bmi": "BMI", "lesion_distribution": "Lesion distribution", "visceral_involvement": "Visceral involvement",
    "organ_count": "Organs involved", "diagnosis_basis": "Diagnosis basis", "baseline_calcium": "Baseline calcium",
    "baseline_phosphate": "Baseline phosphate", "calcium_phosphate_product": "Calcium × phosphate product",
    "baseline_pth": "Baseline intact PTH", "baseline_albumin": "Baseline albumin", "vital_status": "Vital status",
    "followup_days": "Follow-up", "wound_healing": "Wound healing", "cause_of_death": "Cause of death",
    "autopsy": "Autopsy", "site_id": "Site", "source": "Source", "died": "Died", "is_synthetic": "Synthetic",
}
