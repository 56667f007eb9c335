"""Shared fixtures. Every test gets its own temporary $REGISTRY_HOME; nothing touches ./data."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.config import REPO_ROOT, SEED_CASES_DIR, Home

ARTIFACTS = REPO_ROOT / "tests" / "artifacts"

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


@pytest.fixture
def home(tmp_path, monkeypatch) -> Home:
    root = tmp_path / "home"
    monkeypatch.setenv("REGISTRY_HOME", str(root))
    return Home(root).ensure()


def run_cli(*args: str, home: Home, input: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `registry` command, as a user would."""
    env = {**os.environ, "REGISTRY_HOME": str(home.root)}
    env.pop("REGISTRY_DEBUG", None)
    exe = Path(sys.executable).with_name("registry")
    return subprocess.run([str(exe), *args], env=env, capture_output=True, text=True, input=input, timeout=timeout)


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


# ----------------------------------------------------------------------------- browser tests


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium, driven by Playwright (which cannot download its own browser here)."""
    from playwright.sync_api import sync_playwright

    from dashboards import measure

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(measure.CHROMIUM), args=measure.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()
