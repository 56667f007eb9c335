"""Generated dim_cases-like cohorts for the analysis tests: tied days, censoring, unknown covariates
(null and the code "unknown"), deaths with no cause, unknown vital status."""

from __future__ import annotations

import numpy as np
import pandas as pd


def cohort(n: int = 400, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kidney = rng.choice(["dialysis", "ckd", "transplant", "unknown", None], n, p=[0.5, 0.2, 0.15, 0.1, 0.05])
    sex = rng.choice(["female", "male", "unknown", None], n, p=[0.55, 0.35, 0.05, 0.05])
    age = rng.integers(25, 91, n)
    warfarin = pd.array(rng.choice([True, False, None], n, p=[0.3, 0.6, 0.1]), dtype="boolean")
    diabetes = pd.array(rng.choice([True, False, None], n, p=[0.5, 0.4, 0.1]), dtype="boolean")
    calcium = np.where(rng.random(n) < 0.15, np.nan, rng.normal(9.2, 0.9, n))
    lesion = rng.choice(["central", "peripheral", "mixed", "none"], n, p=[0.35, 0.35, 0.2, 0.1])
    risk = 0.004 * np.exp(0.6 * (kidney == "dialysis") + 0.02 * (age - 60) + 0.3 * np.asarray(warfarin.fillna(False), dtype=float))
    t_event = rng.exponential(1 / risk)
    t_cens = rng.uniform(20, 500, n)
    died = t_event <= t_cens
    days = np.floor(np.minimum(t_event, t_cens) / 7) * 7  # weekly follow-up: many tied days
    vital = np.where(died, "dead", "alive").astype(object)
    unknown_vital = rng.random(n) < 0.06
    vital[unknown_vital] = "unknown"
    died_col = pd.array([None if u else bool(d) for u, d in zip(unknown_vital, died)], dtype="boolean")
    cause = np.where(died & ~unknown_vital, rng.choice(["calciphylaxis", "sepsis", "cardiovascular", "unknown", None], n,
                                                       p=[0.35, 0.3, 0.15, 0.1, 0.1]), None)
    followup = pd.array([None if r < 0.02 else int(d) for r, d in zip(rng.random(n), days)], dtype="Int32")
    healing = rng.choice(["complete", "partial", "none", "not_applicable", "unknown", None], n)
    return pd.DataFrame({
        "case_id": [f"C{i:05d}" for i in range(n)],
        "kidney_status": kidney, "sex": sex, "age_years": age, "warfarin": warfarin, "diabetes": diabetes,
        "baseline_calcium": calcium, "lesion_distribution": lesion, "visceral_involvement": rng.random(n) < 0.15,
        "vital_status": vital, "died": died_col, "followup_days": followup, "cause_of_death": cause,
        "wound_healing": healing,
    })
