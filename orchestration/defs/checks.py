"""Asset checks that guard the registry's promises: nothing submitted is lost, and the snapshot
readers see is the warehouse that was just built."""


import contextlib
import json
import threading
from typing import Callable

import duckdb
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    Config,
    Failure,
    OpExecutionContext,
    asset_check,
    op,
)

from orchestration.defs.assets import DbtCancelled, tag_run_with_pid
from orchestration.defs.dbt_inprocess import invoke as dbt_invoke, tests_fingerprint
from orchestration.defs.resources import RegistryHome
from orchestration.registry import audit
from orchestration.registry.landing import landing_watermark
from orchestration.warehouse import snapshot, tested
from orchestration.warehouse.locks import warehouse_lock
from orchestration.warehouse.promise import nothing_lost
from orchestration.warehouse.publish import published_watermark


@asset_check(
    asset=AssetKey(["raw", "case_records"]),
    # after publishing: the check reads the whole audit log and landing index (~0.4 s at a million
    # cases), which must not delay a new case; it never blocked publishing (it is not blocking). So it
    # does not run when dbt or the publish fails: `registry verify` checks the same promise (and more)
    additional_deps=[AssetKey("published_snapshot")],
    description="accepted + duplicates + quarantined = submitted, every acceptance landed, every quarantine kept, "
    "and every record version of the batches ingested is in raw.case_records",
)
def nothing_submitted_is_lost(registry: RegistryHome) -> AssetCheckResult:
    passed, counts = nothing_lost(registry.home())
    return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.ERROR, metadata=counts)


@asset_check(asset=AssetKey("published_snapshot"), description="The published snapshot has the same rows as the warehouse's analyst-facing tables")
def snapshot_matches_warehouse(registry: RegistryHome) -> AssetCheckResult:
    home = registry.home()
    mismatches = {}
    with warehouse_lock(home):  # held throughout: a read-only handle would block the writer
        wh = duckdb.connect(str(home.warehouse), read_only=True)
        snap = snapshot.connect(home)
        try:
            for (t,) in snap.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'registry'").fetchall():
                if t == "data_dictionary":
                    continue
                a = wh.execute(f'SELECT count(*) FROM main."{t}"').fetchone()[0]
                b = snap.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]
                if a != b:
                    mismatches[t] = [a, b]
        finally:
            wh.close()
            snap.close()
    return AssetCheckResult(passed=not mismatches, metadata={"mismatches": str(mismatches) or "none"})


#: the name of the check that runs dbt's data tests after publishing (the warm builder leaves it out)
DBT_DATA_TESTS = "dbt_data_tests"


@asset_check(
    asset=AssetKey("published_snapshot"),
    name=DBT_DATA_TESTS,
    description=(
        "dbt's data tests (uniqueness, relationships, the marts' row rules, the column rules of tables without an "
        "enforced contract) over the warehouse the snapshot was published from; the contract tables' column rules "
        "are constraints, checked before publishing. The tests run after publishing, so that a new case is visible "
        "within seconds; a failure fails the build (audit line, `registry build` exit 1, the Dagster UI). A per-case "
        "table is tested on the rows of the cases changed since the last passing run; every row after a change of "
        "the reference tables or the dbt files, after a failing run, and daily (job registry_data_tests, 03:30 UTC)."
    ),
)
def dbt_data_tests(context: AssetCheckExecutionContext, registry: RegistryHome) -> AssetCheckResult:
    home = registry.home()
    ops = (context.run.run_config or {}).get("ops", {}) if context.run else {}
    if ((ops.get("registry_dbt_models") or {}).get("config") or {}).get("full_refresh"):
        # run and recorded by the dbt step (registry_dbt_models), under its lock
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.ERROR,
                                metadata={"tests": "run by dbt build --full-refresh, before publishing"})
    t = run_dbt_data_tests(home, changed_only=True)
    return AssetCheckResult(passed=t.pop("passed"), severity=AssetCheckSeverity.ERROR, metadata=t)


def run_dbt_data_tests(home, *, changed_only: bool, give_way: Callable[[], bool] | None = None) -> dict:
    """dbt's data tests over the warehouse: the rows of the cases changed since the last passing run
    when that is safe (``orchestration/warehouse/tested.py``), else every row. The run is recorded,
    passed or not (an error while testing counts as a failure). Returns ``passed``, and ``tests``,
    ``scope``, ``failed``, ``seconds`` (the check's metadata). ``give_way`` (the warm builder, testing
    when idle): asked before each test; once it is true no further test starts, nothing is recorded
    (the next run tests these cases too) and ``stopped`` is true."""
    with warehouse_lock(home):  # held throughout: what is recorded as tested is what was tested
        fingerprint = tests_fingerprint()
        published = published_watermark(home)
        since = tested.changed_after(home, fingerprint, published) if changed_only else None
        scope = tested.WHOLE if since is None else f"cases changed after build {since}"
        # --no-write-json: run_results.json stays the build's (the benchmark and operators read it)
        args = ["test", "--exclude-resource-type", "unit_test", "--no-write-json"]
        if since is not None:
            args += ["--vars", json.dumps({"tests_changed_after": since})]
        stopped = threading.Event()

        def on_event(event) -> None:
            if give_way is not None and getattr(getattr(event, "info", None), "name", "") == "NodeCompiling" \
                    and (stopped.is_set() or give_way()):
                stopped.set()
                raise DbtCancelled("a newer submission came first")  # this test fails, no other starts

        try:
            outcome = dbt_invoke(home, args, on_event=on_event if give_way is not None else None)
        except BaseException:
            with contextlib.suppress(Exception):  # the error that stopped the tests is the one to report
                tested.record(home, fingerprint, published, scope, passed=False)
            raise
        if stopped.is_set():
            return {"passed": False, "stopped": True, "tests": len(outcome.results), "scope": scope,
                    "failed": "none", "seconds": round(outcome.seconds, 3)}
        tested.record(home, fingerprint, published, scope, passed=outcome.success)
    return {
        "stopped": False,
        "passed": outcome.success,
        "tests": len(outcome.results),
        "scope": scope,
        "failed": ", ".join(r["name"] for r in outcome.failures()[:20]) or (outcome.error or "none"),
        "seconds": round(outcome.seconds, 3),
    }


class DataTestsConfig(Config):
    # the rows of the cases changed since the last passing run, when that is safe (the warm builder,
    # which tests after its builds, when idle); else every row
    changed_only: bool = False
    # the warm builder: stop (no further test starts, nothing recorded) once a submission newer than
    # this landing watermark lands
    give_way_after: str = ""


@op(description="Every dbt data test over every row of the warehouse (the daily run, `registry build --data-tests`), "
    "or, for the warm builder of `registry serve` (changed_only), over the cases changed since the last passing run.")
def full_data_tests(context: OpExecutionContext, config: DataTestsConfig, registry: RegistryHome) -> dict:
    tag_run_with_pid(context)  # a run whose process is gone is failed by fail_stale_runs
    home = registry.home()
    if not home.warehouse.exists():
        context.log.info("nothing built yet: no warehouse to test")
        return {"tests": 0, "scope": "nothing built yet"}
    after = config.give_way_after

    def newer_landed() -> bool:
        return (landing_watermark(home) or "") > after

    try:
        t = run_dbt_data_tests(home, changed_only=config.changed_only, give_way=newer_landed if after else None)
    except Exception as exc:
        audit.event(home, "data_tests", run_id=context.run_id, success=False, scope=tested.WHOLE, tests=0,
                    failed=(str(exc).strip().splitlines() or [type(exc).__name__])[0])
        raise
    if t["stopped"]:
        context.log.info(f"stopped after {t['tests']} tests: a newer submission came first; the next run tests these cases too")
        return {"tests": t["tests"], "scope": t["scope"], "stopped": True}
    audit.event(home, "data_tests", run_id=context.run_id, success=t["passed"], scope=t["scope"],
                tests=t["tests"], failed=None if t["passed"] else t["failed"])
    if not t["passed"]:
        raise Failure(description=f"data tests failed: {t['failed']}", metadata={k: v for k, v in t.items() if k != "passed"})
    return {"tests": t["tests"], "scope": t["scope"], "stopped": False}
