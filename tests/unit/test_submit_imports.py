"""`registry submit` of one case stays a light process: it must not import pandas, pyarrow, Dagster
or dbt (each costs a registry clerk 0.1-3 s before their case is even read; issue 16). pyarrow's
constructors import pandas as a side effect, so the landing code writes its files with DuckDB; the
SQL console and the withdrawal purge, which use pyarrow, import it when they run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support import record

PROBE = """
import atexit, sys
atexit.register(lambda: print("HEAVY:" + ",".join(sorted(m for m in ("pandas", "pyarrow", "dagster", "dbt") if m in sys.modules)), file=sys.stderr))
from orchestration.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_submitting_one_case_imports_no_heavy_package(tmp_path):
    f = tmp_path / "one.json"
    f.write_text(json.dumps(record(case_id="LIGHT-1")))
    env = {**os.environ, "REGISTRY_HOME": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-c", PROBE, "submit", str(f)], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "ACCEPTED" in res.stdout and "1 accepted" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1] == "HEAVY:", res.stderr
