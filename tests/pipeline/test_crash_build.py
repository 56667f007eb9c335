"""`registry build` killed during dbt, during publish and at random moments: the next build works,
no run stays STARTED (so the landing sensor does not say "another build is running" forever), no
staging copy is left, `registry verify` passes and the marts equal a clean build's. A failing
`nothing_submitted_is_lost` check fails the build (issue 15)."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from orchestration.config import Home
from orchestration.registry.landing import submit
from orchestration.services.backup import backup, restore
from tests.pipeline.crashkit import assert_consistent, cohort, env_for, kill_after, registry, start

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("crash_build")]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crashbuild")
    home = Home(tmp / "home").ensure()
    f = cohort(tmp / "cohort.jsonl", 300, seed=11)
    submit(home, [(f.name, f.read_bytes())])
    return home


def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(d.name), cmd))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _in_flight_runs(home: Home) -> list:
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        return instance.get_run_records(
            filters=RunsFilter(job_name="registry_build", statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING])
        )


def _sensor_says(home: Home) -> str:
    from dagster import DagsterInstance, build_sensor_context

    from orchestration.defs.sensors import evaluate

    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        res = evaluate(build_sensor_context(instance=instance), home)
    return getattr(res, "skip_message", None) or f"run requested {getattr(res, 'run_key', '')}"


def test_build_killed_during_dbt(home):
    # dbt runs inside the build's process (orchestration/defs/dbt_inprocess.py): killing the build in
    # the middle of dbt (after its first model) leaves no dbt process behind, a STARTED run and a
    # DuckDB file with a write-ahead log; the next build recovers all three
    res = registry(home, "build", crash_at="dbt.after_first_node")
    assert res.returncode == 137, res.stdout + res.stderr
    assert not [c for c in _children(os.getpid()) if "dbt" in c[1]]
    assert _in_flight_runs(home)  # the killed run is STARTED ...
    assert "another build is running" not in _sensor_says(home)  # ... but not in the sensor's way
    assert not _in_flight_runs(home)

    res = registry(home, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not (home.locks / "dbt.pid").exists()
    assert_consistent(home)


def test_build_killed_during_publish_leaves_no_staging(home):
    res = registry(home, "build", crash_at="publish.after_staging")
    assert res.returncode == 137, res.stdout + res.stderr
    assert list(home.published_versions.glob(".*.tmp"))  # the crash left its staging copy
    res = registry(home, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not list(home.published_versions.glob(".*.tmp"))
    assert not _in_flight_runs(home)
    assert_consistent(home)


def test_failing_promise_check_fails_the_build(home):
    log = home.audit_log.read_bytes()
    lines = log.splitlines(keepends=True)
    victim = next(i for i, ln in enumerate(lines) if b'"status":"accepted"' in ln)
    home.audit_log.write_bytes(b"".join(lines[:victim] + lines[victim + 1:]))  # an acceptance not audited
    try:
        res = registry(home, "build")
        assert res.returncode == 1, res.stdout + res.stderr
        assert "nothing_submitted_is_lost failed" in res.stdout
        assert "Traceback" not in res.stdout + res.stderr
    finally:
        home.audit_log.write_bytes(log + home.audit_log.read_bytes()[len(b"".join(lines[:victim] + lines[victim + 1:])):])


def test_build_killed_at_random_then_equals_a_clean_build(home, tmp_path):
    from tests.pipeline.test_backup import _tables

    extra = cohort(tmp_path / "more.jsonl", 200, seed=12, prefix="MORE")
    rng = random.Random(1515)
    for _ in range(2):
        submit(home, [(extra.name, extra.read_bytes())])  # (duplicates after the first)
        proc = start(home, "build")
        kill_after(proc, rng.uniform(2.0, 25.0), group=rng.random() < 0.5)
        assert "another build is running" not in _sensor_says(home)
    res = registry(home, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_consistent(home)
    assert not list(home.published_versions.glob(".*.tmp"))
    # a clean build of the same landing zone (restored from a backup) has the same marts
    backup(home, tmp_path / "bk")
    clean = Home(tmp_path / "clean")
    restore(tmp_path / "bk", clean)
    res = registry(clean, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    a, b = _tables(home), _tables(clean)
    for t in a:
        if t != "data_dictionary":
            assert a[t] == b[t], f"{t} differs from a clean build"
    _ = (time, env_for)
