"""Fixtures of the page tests: one registry built through the real CLI per test module."""

from __future__ import annotations

import json

import pytest

from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from tests.support import DASHBOARD_COHORT as N_SYNTHETIC
from tests.support import record, run_cli, seed_case, write_jsonl


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Home:
    home = Home(tmp_path_factory.mktemp("dash") / "home").ensure()
    d = home.root.parent
    (d / "seed.json").write_text(json.dumps(seed_case()))
    write_jsonl(d / "cohort.jsonl", list(generate_records(N_SYNTHETIC, seed=7)))
    write_jsonl(d / "bad.jsonl", [record(case_id="BAD-0001", patient={"age_years": -3, "sex": "female"})])
    p = run_cli("submit", str(d / "seed.json"), str(d / "cohort.jsonl"), str(d / "bad.jsonl"), home=home)
    assert p.returncode == 1, p.stdout[-2000:]  # the bad record is quarantined
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    return home
