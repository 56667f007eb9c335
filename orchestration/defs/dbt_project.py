"""The dbt project as Dagster sees it, built lazily: nothing here runs at import.

The manifest is prepared by ``registry prepare`` (run by ``make``) and re-prepared only when a dbt
file is newer than it, when the code location is loaded (:func:`ensure_manifest`). Each registry
home gets its own dbt profile (:func:`home_profiles_dir`) naming its warehouse file, so dbt learns
the warehouse path from its arguments, not from a process-wide environment variable.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import yaml
from dagster_dbt import DbtProject

from orchestration.config import DBT_PROJECT_DIR, REFERENCE_DIR, Home
from orchestration.defs.resources import dbt_resource

PROFILE = "calciphylaxis_registry"


@functools.cache
def dbt_project() -> DbtProject:
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def newest_source() -> float:
    newest = 0.0
    for sub in ("models", "macros", "tests"):
        for p in (DBT_PROJECT_DIR / sub).rglob("*"):
            if p.is_file():
                newest = max(newest, p.stat().st_mtime)
    for p in [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml", *REFERENCE_DIR.glob("*")]:
        if p.exists():
            newest = max(newest, p.stat().st_mtime)
    return newest


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest, or the parse builds load (``partial_parse.msgpack``,
    see ``defs/dbt_inprocess.py``), is missing or older than a dbt file."""
    project = dbt_project()
    manifest = Path(project.manifest_path)
    prepared = manifest.parent / "partial_parse.msgpack"
    newest = newest_source()
    if not manifest.exists() or manifest.stat().st_mtime < newest or not prepared.exists() or prepared.stat().st_mtime < newest:
        dbt_resource(project).cli(["parse", "--quiet"], target_path=project.target_path).wait()
        # dbt rewrites its saved parse only when a file's *content* changed; when none did (a file
        # touched, a checkout), the saved parse is current: say so, or every build would parse again
        if prepared.exists() and prepared.stat().st_mtime < newest:
            os.utime(prepared)
    return manifest


def home_profiles_dir(home: Home) -> Path:
    """A ``profiles.yml`` for this home: the project's profile with the home's warehouse path."""
    profiles = yaml.safe_load((DBT_PROJECT_DIR / "profiles.yml").read_text())
    profiles[PROFILE]["outputs"][profiles[PROFILE]["target"]]["path"] = str(home.warehouse)
    text = "# Written by the registry for this home (see orchestration/defs/dbt_project.py).\n" + yaml.safe_dump(profiles, sort_keys=False)
    d = home.dbt_dir / "profile"
    f = d / "profiles.yml"
    if not f.exists() or f.read_text() != text:
        d.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(f)
    return d
