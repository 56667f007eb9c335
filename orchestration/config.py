"""The registry's settings, resolved once per entry point: where everything lives. All state sits under ``$REGISTRY_HOME`` (default ``./data``).

Layout (created on demand)::

    $REGISTRY_HOME/
      landing/batches/*.jsonl     accepted records, one immutable file per submission batch
      landing/index/*.parquet     (case_id, revision, content_hash) of each batch, for duplicate checks
      quarantine/batches/*.jsonl  rejected records with every reason (loaded into the warehouse)
      quarantine/payloads/*.jsonl the rejected payloads as submitted (never loaded into the warehouse)
      quarantine/resolutions/     resolution notes of quarantine entries (entries are kept)
      withdrawals/*.json          tombstones of withdrawn cases (case id, reason, time)
      warehouse/registry.duckdb   the pipeline's own database (one writer: pipeline runs)
      published/versions/<id>/    immutable published snapshots (DuckDB file, Parquet, data dictionary)
      published/current           symlink to the newest version; switched atomically
      published/parquet-sets/<id>/ the Parquet files; each version's parquet/ links to one set (warehouse/publish.py)
      audit/audit.jsonl           append-only audit log
      dagster/                    DAGSTER_HOME for runs, sensors and the UI
      dbt/                        dbt logs and run artifacts
      locks/                      advisory file locks
      config/auth.toml            sign-in through an identity provider (absent: single-user mode)
      config/access.json          role grants (``registry access``)

The home and everything in it is readable by its owner only: ``ensure`` makes the directories 0700,
and the ``registry`` command and ``registry serve`` run with umask 077, so files are created 0600.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT / "seeds" / "reference"
SEED_CASES_DIR = REPO_ROOT / "seeds" / "cases"
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
DASHBOARDS_DIR = REPO_ROOT / "dashboards"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls) -> "Home":
        return cls(Path(os.environ.get("REGISTRY_HOME", "./data")).expanduser().resolve())

    # -- landing zone -------------------------------------------------------
    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def landing_batches(self) -> Path:
        return self.landing / "batches"

    @property
    def landing_index(self) -> Path:
        return self.landing / "index"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def quarantine_batches(self) -> Path:
        return self.quarantine / "batches"

    @property
    def quarantine_payloads(self) -> Path:
        return self.quarantine / "payloads"

    @property
    def quarantine_resolutions(self) -> Path:
        return self.quarantine / "resolutions"

    @property
    def withdrawals(self) -> Path:
        return self.root / "withdrawals"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    # -- warehouse and snapshots -------------------------------------------
    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse" / "registry.duckdb"

    @property
    def published(self) -> Path:
        return self.root / "published"

    @property
    def published_versions(self) -> Path:
        return self.published / "versions"

    @property
    def published_current(self) -> Path:
        return self.published / "current"

    # -- logs and tools -----------------------------------------------------
    @property
    def audit_log(self) -> Path:
        return self.root / "audit" / "audit.jsonl"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def dbt_dir(self) -> Path:
        return self.root / "dbt"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    def ensure(self) -> "Home":
        dirs = (
            self.landing_batches,
            self.landing_index,
            self.quarantine_batches,
            self.quarantine_payloads,
            self.quarantine_resolutions,
            self.withdrawals,
            self.tmp,
            self.warehouse.parent,
            self.published_versions,
            self.audit_log.parent,
            self.dagster_home,
            self.dbt_dir,
            self.locks,
        )
        private = {self.root} | ({self.config_dir} if self.config_dir.is_dir() else set())  # config/: made when first written
        for d in dirs:
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            private.update(p for p in (d, *d.parents) if p.is_relative_to(self.root))
        for d in private:  # the home is readable by its owner only, whatever the umask
            if d.stat().st_mode & 0o777 != 0o700:
                d.chmod(0o700)
        return self
