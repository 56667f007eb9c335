"""What tests share besides fixtures (those are in conftest.py): a minimal valid record, the seed case,
the real `registry` command, JSON Lines files, a small fake published snapshot."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb

from orchestration.config import REPO_ROOT, SEED_CASES_DIR, Home
from orchestration.warehouse import snapshot

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"
#: Synthetic cases of the registry the page tests build (tests/ui/conftest.py).
DASHBOARD_COHORT = 240

MINIMAL = {
    "schema_version": 1,
    "case_id": "TEST-0001",
    "site_id": "DE-TEST",
    "source": "chart_review",
    "patient": {"age_years": 70, "sex": "female"},
    "kidney": {"status": "dialysis", "dialysis_modality": "hemodialysis", "dialysis_vintage_months": 48},
    "diagnosis": {"basis": "biopsy", "day": 2},
    "organs": [{"organ": "skin", "evidence": "histology"}],
    "labs": [{"analyte": "calcium", "value": 2.2, "unit": "mmol/L", "day": 0}],
    "treatments": [{"treatment": "sodium_thiosulfate", "day": 3}],
    "outcome": {"vital_status": "dead", "followup_days": 100, "cause_of_death": "sepsis"},
}


def record(**changes) -> dict:
    """A valid record with top-level fields replaced (a value of ... deletes the field)."""
    r = copy.deepcopy(MINIMAL)
    for k, v in changes.items():
        if v is ...:
            r.pop(k, None)
        else:
            r[k] = v
    return r


def seed_case() -> dict:
    return json.loads((SEED_CASES_DIR / "autopsy-visceral-calciphylaxis.json").read_text())


def run_cli(*args: str, home: Home, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `registry` command, as a user would."""
    env = {**os.environ, "REGISTRY_HOME": str(home.root)}
    env.pop("REGISTRY_DEBUG", None)
    exe = Path(sys.executable).with_name("registry")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, input=input, timeout=timeout)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def fake_snapshot(home: Home, version: str, n_cases: int) -> Path:
    """A small published snapshot that is not a registry build (for the SQL console's tests)."""
    vdir = home.published_versions / version
    vdir.mkdir(parents=True)
    db = vdir / snapshot.DB_NAME
    con = duckdb.connect(str(db))
    con.execute(
        f"""
        CREATE TABLE dim_cases AS
        SELECT 'C' || lpad(i::VARCHAR, 4, '0') AS case_id,
               CASE WHEN i % 2 = 0 THEN 'female' ELSE 'male' END AS sex,
               40 + (i * 7) % 45 AS age,
               DATE '2020-01-01' + INTERVAL (i * 11) DAY AS diagnosis_date,
               CASE i % 3 WHEN 0 THEN 'Berlin' WHEN 1 THEN 'Munich' ELSE 'Hamburg' END AS site,
               (i * 1.25)::DECIMAL(8, 2) AS phosphate
        FROM range({n_cases}) t(i)
        """
    )
    con.execute(
        """
        CREATE TABLE mart_mortality AS
        SELECT 'C' || lpad(i::VARCHAR, 4, '0') AS case_id,
               i % 4 = 0 AS died,
               (30 + i * 13 % 700)::INTEGER AS followup_days
        FROM range(20) t(i)
        """
    )
    con.close()
    link = home.published_current
    tmp_link = home.published / f".current.{version}"
    tmp_link.symlink_to(Path("versions") / version)
    os.replace(tmp_link, link)
    return db
