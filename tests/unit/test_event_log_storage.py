"""Dagster's event log and run storage of each home (defs/storage.py): one pooled engine per process with
SQLite's synchronous=NORMAL, and still an ordinary consolidated event log that any other process
(the Dagster UI, the daemon) reads (issue 16)."""

from __future__ import annotations

import time

from dagster import AssetKey, AssetMaterialization, DagsterInstance
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
from dagster._core.events.log import EventLogEntry

from orchestration.defs.storage import RegistryEventLogStorage, RegistryRunStorage
from orchestration.services.dagster_home import prepare_dagster_home


def _event(i: int) -> EventLogEntry:
    de = DagsterEvent(event_type_value=DagsterEventType.ASSET_MATERIALIZATION.value, job_name="j",
                      event_specific_data=StepMaterializationData(AssetMaterialization(asset_key=AssetKey(["m", str(i)]))))
    return EventLogEntry(error_info=None, level=20, user_message="", run_id="run-1", timestamp=time.time(),
                         step_key="s", job_name="j", dagster_event=de)


def test_events_written_are_read_by_another_storage(tmp_path):
    writer = RegistryEventLogStorage(base_dir=str(tmp_path))
    for i in range(3):
        writer.store_event(_event(i))
    with writer._connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert writer.has_table("event_logs") and not writer.has_table("no_such_table")
    reader = RegistryEventLogStorage(base_dir=str(tmp_path))
    keys = {e.dagster_event.event_specific_data.materialization.asset_key for e in reader.get_logs_for_run("run-1")}
    assert keys == {AssetKey(["m", str(i)]) for i in range(3)}
    assert [r.asset_entry.asset_key for r in reader.get_asset_records([AssetKey(["m", "2"])])] == [AssetKey(["m", "2"])]
    writer.dispose()
    reader.dispose()


def test_each_home_uses_them(home):
    prepare_dagster_home(home)
    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        assert isinstance(instance.event_log_storage, RegistryEventLogStorage)
        assert isinstance(instance.run_storage, RegistryRunStorage)
