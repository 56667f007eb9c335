from __future__ import annotations

import sys
from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource
from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

from orchestration.config import Home


class RegistryHome(ConfigurableResource):
    """The registry's state folder. Empty means ``$REGISTRY_HOME`` (default ``./data``), read when a
    run starts, never at import time."""

    root: str = ""

    def home(self) -> Home:
        """The home of this run: ``root`` when a run's config names it (``registry build`` does),
        else the ``$REGISTRY_HOME`` the process was started with (the daemon's)."""
        return (Home(Path(self.root).resolve()) if self.root else Home.from_env()).ensure()


class RegistryDbtCliResource(DbtCliResource):
    """``DbtCliResource`` without two start-up costs the registry never benefits from (measured:
    4.1 s of every build when builds ran dbt through it): a ``dbt --version`` subprocess to learn
    the version of the dbt-core that is installed right here, and an in-process dbt adapter that
    dagster-dbt builds only to fetch row counts and column metadata. Both are dagster-dbt internals.
    Builds now run dbt in their own process (``defs/dbt_inprocess.py``); this class runs only the
    ``dbt parse`` of ``registry prepare`` (``defs/dbt_project.ensure_manifest``)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        from dbt.version import __version__  # here, not at import: dbt-core is slow to import

        return version.parse(__version__)

    def _initialize_dbt_core_adapter(self, args):  # noqa: ANN001 - signature of dagster-dbt
        return None


def dbt_resource(project: DbtProject) -> DbtCliResource:
    # dbt runs as a subprocess: use the dbt of this interpreter's environment, whatever PATH says.
    dbt = Path(sys.executable).with_name("dbt")
    return RegistryDbtCliResource(
        project_dir=project,
        profiles_dir=str(project.profiles_dir),
        dbt_executable=str(dbt) if dbt.exists() else "dbt",
    )
