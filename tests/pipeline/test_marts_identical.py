"""Every figure of every published table is identical whichever way the contract was checked (the
compiled check, orchestration.contract.fastcheck, landing what it passes without the validator, or
the Python validator on every record) and whether a table was copied or reused from the previous
snapshot: the speed-ups change no result."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest

from orchestration.config import REPO_ROOT, Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse import snapshot
from tests.support import run_cli, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("build")]

# columns that record when or in which batch something happened, not what
VOLATILE = ("submitted_at", "quarantined_at", "published_at", "loaded_at", "ingested_at", "batch_id", "quarantine_id", "run_id", "version")


def submit(home: Home, path, *, fast: bool) -> None:
    code = (
        "import sys, orchestration.registry.judging as P; "
        f"P.FAST_CHECK = {fast}; "
        "from orchestration.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "REGISTRY_HOME": str(home.root), "PYTHONPATH": str(REPO_ROOT)}
    p = subprocess.run([sys.executable, "-c", code, "submit", str(path)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode in (0, 1), p.stderr


def _figure(v):
    """A float to 12 significant digits: DuckDB sums floats in parallel, in no fixed order, so a mean
    may differ in its last bits between any two builds of the same data (with or without this change)."""
    return float(f"{v:.12g}") if isinstance(v, float) else v


def figures(home: Home) -> dict[str, list]:
    con = snapshot.connect(home)
    try:
        out = {}
        for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'registry' ORDER BY 1").fetchall():
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'registry' AND table_name = ? ORDER BY column_index", [t]
            ).fetchall() if not any(v in c for v in VOLATILE)]
            if t == "data_dictionary" or not cols:
                continue
            rows = con.execute(f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{t}" ORDER BY ALL').fetchall()
            out[t] = [tuple(_figure(v) for v in r) for r in rows]
        return out
    finally:
        con.close()


def test_every_published_figure_is_identical(tmp_path):
    recs = list(generate_records(400, seed=5))
    broken = copy.deepcopy(recs[:40])
    for i, r in enumerate(broken):
        r["case_id"] = f"BROKEN-{i:03d}"
        if i % 2:
            r["patient"]["age_years"] = 200
        else:
            r["labs"] = [{"analyte": "calcium", "value": 2.2, "unit": "furlongs", "day": 0}]
    cohort = write_jsonl(tmp_path / "cohort.jsonl", recs + broken + [dict(recs[3], revision=2, site_id="REVISED")])
    homes = {}
    for name, fast in (("fast", True), ("python", False)):
        home = Home(tmp_path / name).ensure()
        submit(home, cohort, fast=fast)
        p = run_cli("build", home=home)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        homes[name] = home
    a, b = figures(homes["fast"]), figures(homes["python"])
    assert set(a) == set(b) and any(t.startswith("mart_") for t in a)
    for t in a:
        assert a[t] == b[t], t
    assert len(a["dim_cases"]) == 400

    # a second build with nothing new publishes again, reusing every table: same figures
    home = homes["python"]
    before = snapshot.current_version_dir(home)
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout[-2000:]
    after = snapshot.current_version_dir(home)
    meta = json.loads((after / "snapshot.json").read_text())
    assert after != before and meta["reused"]
    assert figures(home) == b
