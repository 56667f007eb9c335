"""Processes that outlive a build, and the warm builder's heartbeat.

Registry versions before issue 16 ran ``dbt build`` as a child process of the build, holding
DuckDB's lock on the warehouse file; a killed build left it running, and the next build failed
with ``Could not set lock on file .../registry.duckdb``. Those versions recorded the child in
``locks/dbt.pid`` (its pid and start time, and its owner's). dbt now runs inside the build's process
(``orchestration/defs/dbt_inprocess.py``) and records nothing, but a home upgraded right after such a
crash may still hold one: the next build, holding the warehouse lock, kills a recorded child whose
owner is dead before it opens the warehouse.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from orchestration.config import Home
from orchestration.registry.fsutil import atomic_write, pid_alive, pid_start


def _pidfile(home: Home) -> Path:
    return home.locks / "dbt.pid"


def clear_child(home: Home) -> None:
    with contextlib.suppress(FileNotFoundError):
        _pidfile(home).unlink()


def recorded_child(home: Home) -> bool:
    """Whether a dbt child is on record (then only the build's own steps deal with the warehouse)."""
    return _pidfile(home).exists()


def kill_stale_children(home: Home, *, wait_s: float = 30.0) -> list[str]:
    """Kill a dbt child left by a dead build (call it holding the warehouse lock). One line per kill."""
    f = _pidfile(home)
    try:
        body = json.loads(f.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        clear_child(home)
        return []
    out = []
    pid, start = int(body.get("pid", 0)), body.get("start")
    owner_alive = pid_alive(int(body.get("owner", 0)), body.get("owner_start"))
    if pid_alive(pid, start) and not owner_alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + wait_s
        while pid_alive(pid, start) and time.monotonic() < end:
            time.sleep(0.05)
        out.append(f"killed dbt process {pid} left running by a build that died")
    if not owner_alive or not pid_alive(pid, start):
        clear_child(home)
    return out


# ----------------------------------------------------------------------------- the warm builder's heartbeat
# (orchestration/services/watch.py; the landing sensor stands aside while a live watcher beats)

#: A heartbeat older than this is stale (the watcher is stuck or gone): the sensor takes over.
STALE_AFTER_S = 15.0
#: "Finish the build in progress, then stop": what `registry serve` sends the watcher first when it
#: stops. Dagster and dbt leave SIGUSR1 alone, so it reaches the watcher's handler even during a
#: build and the build goes on (a SIGTERM during a build reaches Dagster's handler and interrupts it).
FINISH_SIGNAL = signal.SIGUSR1


def heartbeat_file(home: Home) -> Path:
    return home.locks / "watcher.json"


def beat(home: Home, *, building: bool = False, ready: bool = True, follow_up: bool = False) -> None:
    """The watcher's heartbeat: ``ready`` once Dagster, dbt and the dbt project are loaded;
    ``follow_up`` while it does what its builds left for an idle moment (a Parquet set, data tests),
    which gives way to any new case: busy for the landing sensor, idle for `registry serve`."""
    pid = os.getpid()
    atomic_write(heartbeat_file(home), json.dumps(
        {"pid": pid, "pid_start": pid_start(pid), "at": time.time(), "building": building, "ready": ready,
         "follow_up": follow_up}).encode(),
        tmp_dir=home.tmp)


def _heartbeat(home: Home) -> dict | None:
    """The watcher's last heartbeat (see :func:`beat`), or None: none, unreadable, or not one."""
    try:
        hb = json.loads(heartbeat_file(home).read_text())
    except (OSError, ValueError):
        return None
    return hb if isinstance(hb, dict) and isinstance(hb.get("pid"), int) else None


def builder_state(home: Home, pid: int, since: float) -> str | None:
    """What the watcher of process ``pid`` last said, if it said it at or after ``since`` (epoch
    seconds; a heartbeat left by an earlier process with the same pid is older): "warming" (loading
    Dagster, dbt and the project), "building" or "idle"; None if nothing yet."""
    hb = _heartbeat(home)
    if hb is None or hb["pid"] != pid or float(hb.get("at", 0)) < since:
        return None
    if not hb.get("ready"):
        return "warming"
    return "building" if hb.get("building") and not hb.get("follow_up") else "idle"


def watcher_active(home: Home) -> bool:
    """Whether a live warm builder watches this home (then the landing sensor stands aside). A
    watcher in the middle of a long build does not beat; its process being alive is what counts then."""
    hb = _heartbeat(home)
    if hb is None or not pid_alive(hb["pid"], hb.get("pid_start")):
        return False
    return bool(hb.get("building")) or time.time() - float(hb.get("at", 0)) < STALE_AFTER_S
