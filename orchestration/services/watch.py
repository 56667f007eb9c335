"""The warm builder: ``registry watch`` (started by ``registry serve``) builds as soon as something lands.

The Dagster daemon's landing sensor launches each run in a new process, which spends ~5 s importing
Dagster and dbt, loading the code location and parsing the dbt project before the first row moves,
and the sensor itself ticks at best every few seconds. Registry staff who submit a case wait for all
of that (issue 16: 21-34 s from submission to the published snapshot on a 100k-case registry).

This process pays those costs once, at start: it keeps Dagster, dbt and the parsed dbt project
loaded, looks at the landing zone every :data:`POLL_S` seconds (:class:`_Landing`: the modification times of
its directories, and a listing when one moved or at least every :data:`RELIST_S`), and when its
watermark moves runs the same ``registry_build`` job in-process (:func:`run_build`): the run is on
the home's Dagster instance (visible in the Dagster UI, tagged ``registry/trigger: watch``), takes
the same build lock as ``registry build`` (one writer), and writes the same audit line.

While it runs it keeps a heartbeat (``locks/watcher.json``: pid, start time, last beat); the landing
sensor stands aside while that heartbeat is fresh and its process alive, and takes over again if the
watcher stops (``registry serve --no-dagster`` still serves without either).

A build that fails is retried for the same watermark after :data:`RETRY_AFTER_S` seconds (the files
stay in the landing zone; ingestion is idempotent), as the sensor does.

What a build does once readers see its snapshot, the version's Parquet set and dbt's data tests of
the changed cases, is left to the next idle moment (:func:`_follow_up`) and gives way to a new case:
a case submitted as soon as the previous one was visible waited up to ~9 s for them at a million cases.
"""

from __future__ import annotations

import contextlib
import io
import signal
import socket
import threading
import time
from typing import Callable

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from orchestration.config import Home
from orchestration.defs import dbt_inprocess
from orchestration.defs.jobs import BUILD_JOB, WATERMARK_TAG
from orchestration.services.build import build_job, run_build, run_data_tests
from orchestration.services.dagster_home import prepare_dagster_home
from orchestration.registry import uploads
from orchestration.registry.journal import journal_dir
from orchestration.registry.landing import landing_watermark, watermark_dirs
from orchestration.warehouse.holders import FINISH_SIGNAL, beat
from orchestration.warehouse.locks import build_lock, warehouse_lock
from orchestration.warehouse import tested
from orchestration.warehouse.publish import complete_parquet, parquet_pending, parquet_shown, published_watermark

POLL_S = 0.05
RELIST_S = 1.0
RETRY_AFTER_S = 20.0
HEARTBEAT_S = 1.0


class _Landing:
    """The landing watermark, listed again only when a directory it reads has moved.

    A poll costs five ``stat`` calls; the directories are listed (:func:`landing_watermark`) when
    one of their modification times changes -- adding, renaming or removing an entry changes its
    directory's -- and in any case every :data:`RELIST_S`, for file systems whose timestamps are too
    coarse to tell two changes within one tick apart."""

    def __init__(self, home: Home):
        self.home = home
        self.dirs = (*watermark_dirs(home), journal_dir(home))
        self.key: tuple[int, ...] | None = None
        self.mark: str | None = None
        self.listed_at = float("-inf")

    def _key(self) -> tuple[int, ...]:
        out = []
        for d in self.dirs:
            try:
                out.append(d.stat().st_mtime_ns)
            except FileNotFoundError:
                out.append(-1)
        return tuple(out)

    def watermark(self) -> str | None:
        key, now = self._key(), time.monotonic()
        if key != self.key or now - self.listed_at >= RELIST_S:
            self.mark = landing_watermark(self.home)
            self.key, self.listed_at = key, now
        return self.mark


def _built_watermark(instance: DagsterInstance) -> str | None:
    """The watermark of the newest successful build (by `registry build`, the sensor or a watcher)."""
    recs = instance.get_run_records(
        filters=RunsFilter(job_name=BUILD_JOB, statuses=[DagsterRunStatus.SUCCESS]), limit=20)
    marks = [r.dagster_run.tags.get(WATERMARK_TAG) for r in recs]
    marks = [m for m in marks if m]
    return max(marks) if marks else None


def prime(home: Home) -> None:
    """Pay the fixed costs now, before the first submission: the code location, the dbt project."""
    prepare_dagster_home(home)
    build_job(data_tests=False)  # the job its builds run
    dbt_inprocess.manifest(home)
    # dbt's first build in a process costs ~1-2 s more than the next ones (the adapter, its macros,
    # Jinja, the models' SQL): pay most of it now with a compile of every model (no table written;
    # measured at 100k: first one-case dbt step 2.6 s -> 1.95 s, the next ones 1.6 s), not with the first case
    with warehouse_lock(home), contextlib.redirect_stdout(io.StringIO()):
        dbt_inprocess.invoke(home, ["compile", "--select", "resource_type:model"])


_SIGNALS = (signal.SIGTERM, signal.SIGINT, FINISH_SIGNAL)


class _Stop:
    """SIGTERM / Ctrl-C ask the watcher to stop (after the build in progress, if any); SIGUSR1
    (:data:`FINISH_SIGNAL`) too, without interrupting that build.

    Dagster replaces the process's signal handlers while it runs a job (and maps SIGTERM to SIGINT's
    handler for good), so a signal that arrives during a build reaches Dagster's handler, not ours.
    Blocking the signals during a build is no way out either: the mask is inherited by the
    processes Dagster starts (its log tailer then never stops). Python's wakeup file descriptor
    records every signal whatever its Python handler is, so it is read after each build, and our
    handlers are installed again."""

    def __init__(self):
        self.requested = False
        self.main = threading.current_thread() is threading.main_thread()
        self._r = None
        if self.main:
            self._r, w = socket.socketpair()
            self._r.setblocking(False)
            w.setblocking(False)
            self._w = w  # kept open for the life of the watcher
            signal.set_wakeup_fd(w.fileno(), warn_on_full_buffer=False)
        self.install()

    def _handler(self, signum, frame) -> None:  # noqa: ARG002
        self.requested = True

    def install(self) -> None:
        if self.main:
            for s in _SIGNALS:
                signal.signal(s, self._handler)

    def after_build(self) -> None:
        """Our handlers back, and any signal Dagster's handlers received during the build noted."""
        self.install()
        self._drain()

    def _drain(self) -> None:
        if self._r is None:
            return
        try:
            while data := self._r.recv(512):
                if any(b in (int(sig) for sig in _SIGNALS) for b in data):
                    self.requested = True
        except (BlockingIOError, InterruptedError):
            pass


def watch(home: Home, *, poll_s: float = POLL_S, stop: Callable[[], bool] = lambda: False,
          log: Callable[[str], None] = print) -> int:
    """Build whenever the landing watermark moves, until ``stop()``, SIGTERM or Ctrl-C."""
    signals = _Stop()
    home.ensure()
    beat(home, ready=False)  # at once: the landing sensor stands aside from now on
    prime(home)
    with DagsterInstance.from_config(str(home.dagster_home)) as instance:
        # the first beat that says ready comes from the loop, once it knows whether something is
        # due: then it says "building" at once (`registry serve` waits for a warm, idle builder)
        return _loop(home, instance, poll_s, lambda: signals.requested or stop(), log, signals)


def _loop(home: Home, instance: DagsterInstance, poll_s: float, stop: Callable[[], bool], log: Callable[[str], None],
          signals: _Stop) -> int:
    built = _built_watermark(instance)
    failed_at: dict[str, float] = {}
    # what builds leave for an idle moment (_follow_up); at the start, what an earlier builder left
    with warehouse_lock(home):
        parquet_due, tests_due = parquet_pending(home), tested.untested(home, published_watermark(home))
    follow_up_after = 0.0  # after a failed follow-up: not again before this (monotonic) time
    last_beat = 0.0
    landing = _Landing(home)
    log(f"registry watch: warm and watching {home.root} (built up to {built or 'nothing yet'})")
    while not stop():
        now = time.monotonic()
        mark = landing.watermark()
        due = mark is not None and (built is None or mark > built)
        if due and mark in failed_at and now - failed_at[mark] < RETRY_AFTER_S:
            due = False
        # a file of several chunks still landing: built once it has landed whole (registry/uploads.py)
        held = (due or parquet_due or tests_due) and uploads.in_progress(home)
        if not due or held:
            if (parquet_due or tests_due) and now >= follow_up_after and not held:
                beat(home, building=True, follow_up=True)  # `registry serve` need not wait for it
                try:
                    parquet_due, tests_due = _follow_up(home, instance, landing, mark, parquet_due, tests_due, log, stop)
                except Exception as exc:  # noqa: BLE001 - retried, as a failed build is
                    follow_up_after = time.monotonic() + RETRY_AFTER_S
                    log(f"registry watch: follow-up failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                        f"retrying in {RETRY_AFTER_S:.0f}s")
                finally:
                    signals.after_build()
                beat(home)
                last_beat = time.monotonic()
                continue
            if now - last_beat >= HEARTBEAT_S:
                beat(home)
                last_beat = now
            time.sleep(poll_s)
            continue
        beat(home, building=True)
        try:
            summary = run_build(home, trigger="watch", instance=instance, data_tests=False, leave_parquet=True)
            error = None if summary.success else (summary.error or "failed")
        except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad build (it is retried)
            summary, error = None, f"{type(exc).__name__}: {exc}"
        finally:
            signals.after_build()
        beat(home)
        last_beat = time.monotonic()
        if error is None:
            built = summary.watermark or mark
            failed_at.clear()
            parquet_due, tests_due = parquet_pending(home), True
            log(f"registry watch: built and published {summary.version} ({summary.cases} cases) in {summary.seconds:.1f}s")
        else:
            failed_at[mark] = time.monotonic()
            log(f"registry watch: build failed ({error.splitlines()[0]}); retrying in {RETRY_AFTER_S:.0f}s")
    log("registry watch: stopped")
    return 0


def _follow_up(home: Home, instance: DagsterInstance, landing: "_Landing", mark: str | None, parquet_due: bool,
               tests_due: bool, log: Callable[[str], None], stop: Callable[[], bool]) -> tuple[bool, bool]:
    """What the builds left for an idle moment, each skipped as soon as a newer submission lands (it
    is built first; this is done at the next idle moment):

    1. the current version's own Parquet set, which the builds leave for now
       (``publish.complete_parquet``; until then the version shows the previous, complete set; at a
       million cases the set of one new case takes ~4-6 s; it is written by a process of its own,
       stopped at once when a case lands: ``warehouse/parquet_child.py``);
    2. dbt's data tests of the cases changed since the last passing run (a run of
       ``registry_data_tests``, with its audit line), which starts no further test once a case lands:
       the builds leave out their ``dbt_data_tests`` check, which would hold the next case back by its
       length (measured, one new case: ~1.3 s at 100k, ~2.5 s at a million).

    The Parquet set also gives way to ``stop()`` (`registry serve` stopping: the builder then ends
    at once instead of after the set). Returns what is still due (parquet, tests)."""

    def newer() -> bool:
        return (landing.watermark() or "") > (mark or "")

    if parquet_due:
        with build_lock(home), warehouse_lock(home):
            # while no set is shown at all (a new home's first versions), it is written whole (giving way
            # only to a stop): giving way to every case would leave readers without Parquet files for as
            # long as cases keep coming
            version = complete_parquet(home, give_way=(lambda: newer() or stop()) if parquet_shown(home) else stop)
        if version is not None:
            log(f"registry watch: wrote the Parquet set of {version}")
        if newer() or stop():
            return version is None, tests_due
    if tests_due and not newer():
        t = run_data_tests(home, instance=instance, changed_only=True, trigger="watch", give_way_after=mark or "")
        if t.success and t.stopped:
            return False, True
        if not t.success:
            log(f"registry watch: data tests FAILED ({(t.error or 'failed').splitlines()[0]}); see the audit log")
        return False, False
    return False, tests_due
