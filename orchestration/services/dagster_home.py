"""The Dagster instance's configuration in a registry home (``$REGISTRY_HOME/dagster/dagster.yaml``).

Kept apart from ``services/build.py``, which imports Dagster (~2 s): ``registry serve`` writes this
file before it starts its servers, and should not pay for Dagster's import itself.
"""

from __future__ import annotations

import json

from orchestration.config import Home

DAGSTER_YAML = """\
# Written by the registry. One pipeline run at a time: there is one writer.
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 1
    dequeue_interval_seconds: 1
run_monitoring:
  enabled: true
  start_timeout_seconds: 180
run_retries:
  enabled: false
# One SQLite event log for all runs (Dagster's documented ConsolidatedSqliteEventLogStorage) instead of
# one database per run plus an index: measured (issue 16), the per-run layout opened ~5 SQLite
# connections per event (~43 ms per event on this machine: 6.1 s of a one-case build's 142 events);
# consolidated, 1.3 s. Runs never overlap (one writer), so one file sees no write contention.
# The same files, through subclasses that reuse their SQLite connections and commit without an fsync
# per event (orchestration/defs/storage.py says why and what that means): 142 events of a one-case
# build cost ~4 s of commits and checkpoints on this machine's disk before.
event_log_storage:
  module: orchestration.defs.storage
  class: RegistryEventLogStorage
  config:
    base_dir: {events_dir}
run_storage:
  module: orchestration.defs.storage
  class: RegistryRunStorage
  config:
    base_dir: {runs_dir}
"""


def prepare_dagster_home(home: Home) -> None:
    home.ensure()
    cfg = home.dagster_home / "dagster.yaml"
    text = DAGSTER_YAML.format(events_dir=json.dumps(str(home.dagster_home / "history" / "events")),
                               runs_dir=json.dumps(str(home.dagster_home / "history")))
    if not cfg.exists() or cfg.read_text() != text:
        cfg.write_text(text)
