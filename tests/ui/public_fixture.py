"""A small built registry for the public-dashboard tests (60 synthetic cases + the bundled autopsy
case: small enough that most filters leave small cells)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from orchestration.config import REPO_ROOT, Home
from orchestration.synthetic.generate import generate_records
from tests.support import seed_case, write_jsonl

N_SYNTHETIC = 60


def cli(home: Home, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """This tree's `registry` command (python -m orchestration.cli)."""
    env = {**os.environ, "REGISTRY_HOME": str(home.root),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    env.pop("REGISTRY_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True, timeout=timeout)


def build_small_registry(root) -> Home:
    home = Home(root / "home").ensure()
    (root / "seed.json").write_text(json.dumps(seed_case()))
    write_jsonl(root / "cohort.jsonl", list(generate_records(N_SYNTHETIC, seed=11)))
    p = cli(home, "submit", str(root / "seed.json"), str(root / "cohort.jsonl"))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr
    p = cli(home, "build")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr
    return home
