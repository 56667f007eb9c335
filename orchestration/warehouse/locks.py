"""The locks of the one-writer rule. Every step that writes the warehouse holds the warehouse lock,
whoever started the run (`registry build`, the sensor, the Dagster UI); `registry build` invocations
are serialised by the build lock. Readers never take either: they read published snapshots."""

from __future__ import annotations

from contextlib import AbstractContextManager

from orchestration.config import Home
from orchestration.registry.fsutil import file_lock


def warehouse_lock(home: Home) -> AbstractContextManager:
    return file_lock(home.locks / "warehouse.lock")


def build_lock(home: Home) -> AbstractContextManager:
    return file_lock(home.locks / "build.lock")
