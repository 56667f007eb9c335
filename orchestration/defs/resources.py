from __future__ import annotations

import sys
from pathlib import Path

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource

from orchestration.defs.dbt_project import DBT_PROJECT
from orchestration.paths import Home


class RegistryHome(ConfigurableResource):
    """The registry's state folder. Empty means ``$REGISTRY_HOME`` (default ``./data``), read when a
    run starts, never at import time."""

    root: str = ""

    def home(self) -> Home:
        return (Home(Path(self.root).resolve()) if self.root else Home.from_env()).ensure()


def dbt_resource() -> DbtCliResource:
    # dbt runs as a subprocess: use the dbt of this interpreter's environment, whatever PATH says.
    dbt = Path(sys.executable).with_name("dbt")
    return DbtCliResource(
        project_dir=DBT_PROJECT,
        profiles_dir=str(DBT_PROJECT.profiles_dir),
        dbt_executable=str(dbt) if dbt.exists() else "dbt",
    )
