"""`registry disclosure show|set` (audited, one-line errors) and `registry serve --public`'s servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from orchestration.cli import serve
from orchestration.config import REPO_ROOT, Home
from orchestration.registry import audit


def cli(home: Home, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "REGISTRY_HOME": str(home.root), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("REGISTRY_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "orchestration.cli", *args], env=env, capture_output=True, text=True, timeout=120)


def test_show_set_and_audit(tmp_path):
    home = Home(tmp_path / "home")
    p = cli(home, "disclosure", "show", "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout) == {"min_cell": 5, "source": None, "default": True}
    p = cli(home, "disclosure", "set", "--min-cell", "11")
    assert p.returncode == 0, p.stderr
    assert "min_cell = 11 (was 5)" in p.stdout
    assert (home.root / "config" / "disclosure.toml").read_text().strip().endswith("min_cell = 11")
    p = cli(home, "disclosure", "show")
    assert p.returncode == 0 and p.stdout.startswith("min_cell = 11")
    events = [e for e in audit.read(home) if e["event"] == "disclosure_policy"]
    assert len(events) == 1 and events[0]["min_cell"] == 11 and events[0]["previous_min_cell"] == 5


def test_bad_values_are_one_line_and_change_nothing(tmp_path):
    home = Home(tmp_path / "home")
    for bad in ("0", "abc", "-3", "1001"):
        p = cli(home, "disclosure", "set", "--min-cell", bad)
        assert p.returncode == 2, (bad, p.stdout, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not (home.root / "config" / "disclosure.toml").exists()
    (home.root / "config").mkdir(parents=True)
    (home.root / "config" / "disclosure.toml").write_text("min_cell = [\n")
    p = cli(home, "disclosure", "show")
    assert p.returncode == 2 and "unreadable disclosure policy" in p.stderr


def test_serve_public_runs_only_the_public_dashboard(tmp_path):
    procs = serve.children(Home(tmp_path), port=8502, dagster_port=3000, with_dagster=True, public=True)
    assert [c.name for c in procs] == ["public dashboard"]
    argv = procs[0].argv
    assert argv[2].endswith("dashboards/public_app.py") and "8502" in argv
    signed_in = serve.children(Home(tmp_path), port=8501, dagster_port=3000, with_dagster=False)
    assert signed_in[0].argv[2].endswith("dashboards/app.py")


def test_public_app_registers_only_the_aggregate_pages():
    src = (REPO_ROOT / "dashboards" / "public_app.py").read_text()
    pages = [line for line in src.splitlines() if "st.Page(" in line]
    assert len(pages) == 4
    for private in ("cases.py", "quality.py", "submit.py", "sql.py"):
        assert private not in src


def test_restricted_roles():
    from dashboards.lib import public

    assert public.restricted(True, None) and public.restricted(True, {"coordinator"})
    assert public.restricted(False, {"viewer"}) and public.restricted(False, set())
    assert not public.restricted(False, None)
    assert not public.restricted(False, {"viewer", "analyst"}) and not public.restricted(False, {"coordinator"})


def test_csv_says_it_is_suppressed():
    import pandas as pd

    from dashboards.lib import public

    body = public.csv_bytes(pd.DataFrame({"Kidney status": ["Dialysis", "CKD"], "Cases": [51, "suppressed"]}), 5).decode()
    assert body.splitlines()[0].startswith("# suppressed table: minimum cell size k=5")
    assert body.splitlines()[1] == "Kidney status,Cases"
    assert public.csv_name("kidney_status", 5) == "kidney_status_suppressed_k5"
