"""The dbt project as Dagster sees it. The manifest is prepared once (``registry prepare``, run by
``make``) and re-prepared only when a dbt file is newer than it, never on every import."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from orchestration.config import DBT_PROJECT_DIR

# dagster-dbt runs `dbt` as a subprocess and its preparer looks it up on PATH: make sure the dbt of
# this interpreter's environment is found first, however the process was started.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")

DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source() -> float:
    newest = 0.0
    for sub in ("models", "macros", "tests"):
        for p in (DBT_PROJECT_DIR / sub).rglob("*"):
            if p.is_file():
                newest = max(newest, p.stat().st_mtime)
    for p in [DBT_PROJECT_DIR / "dbt_project.yml", *(DBT_PROJECT_DIR.parent / "seeds" / "reference").glob("*")]:
        if p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def ensure_manifest() -> Path:
    manifest = Path(DBT_PROJECT.manifest_path)
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source():
        DBT_PROJECT.preparer.prepare(DBT_PROJECT)
    return manifest


ensure_manifest()
DBT_PROJECT.prepare_if_dev()
