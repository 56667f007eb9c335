"""How `registry serve` starts its children (cli/serve.py ``_start_stages``): the warm builder
first, Dagster's servers once the builder is warm, the dashboards once the Dagster UI answers. So
when the dashboards answer, a case submitted there is built at once (measured on a 100k home: 8-9 s
to the snapshot before, ~3 s after)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from dashboards import measure
from orchestration.cli import serve
from orchestration.config import Home
from orchestration.warehouse.holders import heartbeat_file

# Each fake server writes "<event> <time>" lines to its log: when it started, when it was ready.
BUILDER = """
import json, os, sys, time
log, hb, delay, code = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
open(log, "a").write(f"start {time.time()}\\n")
time.sleep(delay)
if code:
    sys.exit(code)
open(log, "a").write(f"ready {time.time()}\\n")
with open(hb + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "ready": True, "at": time.time(), "building": False}, f)
os.replace(hb + ".tmp", hb)
time.sleep(float(os.environ.get("FAKE_EXIT_AFTER_S", "60")))
sys.exit(5 if os.environ.get("FAKE_EXIT_AFTER_S") else 0)
"""

BUILDING = BUILDER.replace("""open(log, "a").write(f"ready {time.time()}\\n")
with open(hb + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "ready": True, "at": time.time(), "building": False}, f)
os.replace(hb + ".tmp", hb)
""", """def beat(building):
    with open(hb + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "ready": True, "at": time.time(), "building": building}, f)
    os.replace(hb + ".tmp", hb)
open(log, "a").write(f"building {time.time()}\\n")
beat(True)
time.sleep(float(os.environ.get("FAKE_BUILD_S", "1.0")))
open(log, "a").write(f"idle {time.time()}\\n")
beat(False)
""")
assert BUILDING != BUILDER

WEB = """
import http.server, sys, time
log, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
open(log, "a").write(f"start {time.time()}\\n")
time.sleep(delay)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
open(log, "a").write(f"ready {time.time()}\\n")
srv.serve_forever()
"""

IDLE = """
import sys, time
open(sys.argv[1], "a").write(f"start {time.time()}\\n")
time.sleep(60)
"""


def _events(log: Path) -> dict[str, float]:
    if not log.exists():
        return {}
    return {k: float(v) for k, v in (line.split() for line in log.read_text().splitlines())}


@pytest.fixture
def stage_home(tmp_path):
    home = Home(tmp_path / "home")
    home.ensure()
    return home


def _children(home: Home, tmp: Path, *, builder_delay: float = 0.6, builder_code: int = 0):
    ui_port, web_port = measure.free_port(), measure.free_port()
    c = {
        "dashboards": serve.Child("dashboards", [sys.executable, "-c", WEB, str(tmp / "dashboards.log"), str(web_port), "0.2"],
                                  f"http://127.0.0.1:{web_port}/", "http://localhost", tmp),
        "Dagster UI": serve.Child("Dagster UI", [sys.executable, "-c", WEB, str(tmp / "ui.log"), str(ui_port), "0.5"],
                                  f"http://127.0.0.1:{ui_port}/", "http://localhost", tmp, stage=1),
        "Dagster daemon": serve.Child("Dagster daemon", [sys.executable, "-c", IDLE, str(tmp / "daemon.log")], None, None, tmp, stage=1),
        "builder": serve.Child("builder", [sys.executable, "-c", BUILDER, str(tmp / "builder.log"), str(heartbeat_file(home)),
                                           str(builder_delay), str(builder_code)], None, None, tmp, stage=0),
    }
    return c


def _kill(children) -> None:
    for c in children:
        if c.proc is not None and c.proc.poll() is None:
            os.killpg(c.proc.pid, 9)
            c.proc.wait()


def test_the_builder_is_warm_before_dagster_starts_and_dagster_before_the_dashboards(stage_home, tmp_path):
    c = _children(stage_home, tmp_path)
    procs = list(c.values())  # in the order `children` lists them: the dashboards first
    try:
        assert serve._start_stages(procs, stage_home, dict(os.environ)) is None
        assert all(p.proc is not None for p in procs)
        deadline = time.monotonic() + 30
        while "start" not in _events(tmp_path / "dashboards.log"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        builder, ui, daemon, dash = (_events(tmp_path / f"{n}.log") for n in ("builder", "ui", "daemon", "dashboards"))
        assert builder["ready"] <= ui["start"] and builder["ready"] <= daemon["start"]
        assert ui["ready"] <= dash["start"]
        assert json.loads(heartbeat_file(stage_home).read_text())["pid"] == c["builder"].proc.pid
        assert c["Dagster UI"].ready  # seen answering: the supervisor's loop need not ask again
    finally:
        _kill(procs)


def test_dagster_waits_for_the_builder_to_finish_what_landed_before_the_start(stage_home, tmp_path):
    """A case submitted while `registry serve` starts is built before Dagster's servers load."""
    c = _children(stage_home, tmp_path)
    builder = c["builder"]
    builder.argv[2] = BUILDING  # warm, then building for 1 s, then idle
    procs = list(c.values())
    try:
        assert serve._start_stages(procs, stage_home, dict(os.environ)) is None
        deadline = time.monotonic() + 30
        while "start" not in _events(tmp_path / "ui.log"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ev = _events(tmp_path / "builder.log")
        assert ev["idle"] <= _events(tmp_path / "ui.log")["start"]
    finally:
        _kill(procs)


def test_a_builder_that_dies_while_warming_up_stops_the_start(stage_home, tmp_path):
    c = _children(stage_home, tmp_path, builder_delay=0.2, builder_code=3)
    procs = list(c.values())
    try:
        dead = serve._start_stages(procs, stage_home, dict(os.environ))
        assert dead is c["builder"] and dead.proc.returncode == 3
        assert all(p.proc is None for p in procs if p is not dead)  # nothing else was started
    finally:
        _kill(procs)


def test_a_builder_that_never_gets_warm_does_not_keep_the_dashboards_away(stage_home, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, "READY_TIMEOUT_S", 0.5)
    c = _children(stage_home, tmp_path, builder_delay=60)
    procs = list(c.values())
    try:
        t0 = time.monotonic()
        assert serve._start_stages(procs, stage_home, dict(os.environ)) is None
        assert all(p.proc is not None for p in procs)
        assert time.monotonic() - t0 < 10
        assert "builder not ready after" in capsys.readouterr().err
    finally:
        _kill(procs)


def test_the_stages_of_registry_serve(stage_home):
    stages = {c.name: c.stage for c in serve.children(stage_home, port=8501, dagster_port=3000, with_dagster=True)}
    assert stages == {"builder": 0, "Dagster UI": 1, "Dagster daemon": 1, "dashboards": 2}


def test_a_long_first_build_holds_the_next_servers_back_only_so_long(stage_home, tmp_path, monkeypatch):
    """A backlog that takes minutes to build does not keep the dashboards away that long."""
    monkeypatch.setattr(serve, "BUILDER_BUSY_WAIT_S", 0.5)
    c = _children(stage_home, tmp_path)
    c["builder"].argv[2] = BUILDING
    procs = list(c.values())
    try:
        assert serve._start_stages(procs, stage_home, {**os.environ, "FAKE_BUILD_S": "60"}) is None
        deadline = time.monotonic() + 30
        while "start" not in _events(tmp_path / "ui.log"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ev = _events(tmp_path / "builder.log")
        assert "idle" not in ev  # still building
        assert _events(tmp_path / "ui.log")["start"] - ev["building"] >= 0.5
    finally:
        _kill(procs)


def test_a_builder_that_dies_while_a_later_stage_starts_stops_the_start(stage_home, tmp_path):
    c = _children(stage_home, tmp_path)
    c["Dagster UI"].argv[-1] = "30"  # a webserver that takes its time to answer
    procs = list(c.values())
    try:
        t0 = time.monotonic()
        dead = serve._start_stages(procs, stage_home, {**os.environ, "FAKE_EXIT_AFTER_S": "0.5"})
        assert dead is c["builder"] and dead.proc.returncode == 5
        assert time.monotonic() - t0 < 20
        assert c["dashboards"].proc is None  # never started
    finally:
        _kill(procs)


def test_the_builder_state_is_read_from_its_own_fresh_heartbeat(stage_home):
    from orchestration.warehouse.holders import beat, builder_state

    since = time.time()
    assert builder_state(stage_home, os.getpid(), since) is None  # no heartbeat yet
    beat(stage_home, ready=False)
    assert builder_state(stage_home, os.getpid(), since) == "warming"
    beat(stage_home, building=True)
    assert builder_state(stage_home, os.getpid(), since) == "building"
    beat(stage_home, building=True, follow_up=True)  # what builds left (it gives way): serve need not wait
    assert builder_state(stage_home, os.getpid(), since) == "idle"
    beat(stage_home)
    assert builder_state(stage_home, os.getpid(), since) == "idle"
    assert builder_state(stage_home, os.getpid() + 1, since) is None  # another process's
    # left by an earlier process that had the same pid (a restarted container): not this one's
    assert builder_state(stage_home, os.getpid(), time.time() + 5) is None


def test_a_stop_while_a_server_is_being_started_still_finds_that_server(stage_home, tmp_path, monkeypatch):
    """SIGTERM arriving while ``Popen`` starts a child (here: sent by the child's start itself) stops
    the start only once the child is recorded, so the stop that follows reaches it. Raised at once,
    it left the child running with no supervisor."""
    import signal
    import subprocess

    real = subprocess.Popen

    def popen_then_sigterm(*a, **kw):
        p = real(*a, **kw)
        os.kill(os.getpid(), signal.SIGTERM)  # delivered before Popen returns to serve
        return p

    c = _children(stage_home, tmp_path)
    procs = list(c.values())
    monkeypatch.setattr(serve.subprocess, "Popen", popen_then_sigterm)
    stops = serve._Stops()
    previous = signal.signal(signal.SIGTERM, stops.handler)
    try:
        with pytest.raises(serve._Terminate):
            serve._start_stages(procs, stage_home, dict(os.environ), stops)
        assert c["builder"].proc is not None and c["builder"].proc.poll() is None  # started, and known
        serve._stop(procs)
        assert c["builder"].proc.poll() is not None
        assert c["dashboards"].proc is None  # nothing was started after the stop
    finally:
        signal.signal(signal.SIGTERM, previous)
        _kill(procs)


@pytest.mark.parametrize("when", ["while starting", "once serving"])
def test_a_server_that_dies_stops_them_all_with_its_status(stage_home, tmp_path, monkeypatch, capsys, when):
    """`registry serve` exits with the dead server's status (1 if it had none) and stops the others,
    whether the server died during the staged start or after every server answered."""
    c = _children(stage_home, tmp_path)
    if when == "while starting":
        c["Dagster UI"].argv[-1] = "30"  # the builder dies while Dagster's webserver loads
    procs = list(c.values())
    monkeypatch.setattr(serve, "children", lambda *a, **kw: procs)
    monkeypatch.setenv("FAKE_EXIT_AFTER_S", "0.5" if when == "while starting" else "4")
    try:
        assert serve.serve(stage_home, port=measure.free_port()) == 5
        assert all(p.proc is None or p.proc.poll() is not None for p in procs)  # none left running
        err = capsys.readouterr().err
        assert "builder exited with status 5; stopping the other servers" in err
        assert (c["dashboards"].proc is None) == (when == "while starting")
    finally:
        _kill(procs)
