"""``registry serve``: the dashboards, and (unless ``--no-dagster``) Dagster's webserver and daemon.

Every server is a child process started from this virtualenv's ``bin`` with ``$REGISTRY_HOME`` and
``$DAGSTER_HOME`` of the same home, each in its own process group so that a Ctrl-C in the terminal
reaches only this supervisor, which then stops them in order (SIGTERM to the whole group, SIGKILL
after a grace period). If one server dies, the others are stopped too and the exit status is
non-zero: a half-running registry is worse than a stopped one.

The dashboards read only the published snapshot (``dashboards/lib/data.py``), so serving them
never blocks a build, and a newly published snapshot appears without a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from orchestration.config import DASHBOARDS_DIR, REPO_ROOT, Home
from orchestration.services.build import prepare_dagster_home

#: Seconds each child gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
#: Seconds to wait for a server to answer before printing its address anyway.
READY_TIMEOUT_S = 90.0


@dataclass
class Child:
    name: str
    argv: list[str]
    health_url: str | None
    address: str | None
    cwd: Path
    proc: subprocess.Popen | None = None
    ready: bool = False


def _bin(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


#: Port of the public dashboard (``registry serve --public``), beside the signed-in one on 8501.
PUBLIC_PORT = 8502


def public_child(port: int) -> Child:
    """The public dashboard: only the aggregate pages, under the disclosure policy (dashboards/public_app.py)."""
    return Child(
        "public dashboard",
        [_bin("streamlit"), "run", str(DASHBOARDS_DIR / "public_app.py"), "--server.port", str(port), "--server.headless", "true",
         "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"],
        f"http://127.0.0.1:{port}/_stcore/health",
        f"http://localhost:{port}",
        DASHBOARDS_DIR,
    )


def children(home: Home, *, port: int, dagster_port: int, with_dagster: bool, public: bool = False) -> list[Child]:
    if public:  # the public dashboard alone: no Dagster, nothing else
        return [public_child(port)]
    out = [
        Child(
            "dashboards",
            [_bin("streamlit"), "run", str(DASHBOARDS_DIR / "app.py"), "--server.port", str(port), "--server.headless", "true",
             "--browser.gatherUsageStats", "false"],
            f"http://127.0.0.1:{port}/_stcore/health",
            f"http://localhost:{port}",
            DASHBOARDS_DIR,  # so that dashboards/.streamlit/config.toml (theme) applies
        )
    ]
    if with_dagster:
        out += [
            Child("Dagster UI", [_bin("dagster-webserver"), "-m", "orchestration.definitions", "-p", str(dagster_port), "-h", "127.0.0.1"],
                  f"http://127.0.0.1:{dagster_port}/server_info", f"http://localhost:{dagster_port}", REPO_ROOT),
            Child("Dagster daemon", [_bin("dagster-daemon"), "run", "-m", "orchestration.definitions"], None, None, REPO_ROOT),
        ]
    return out


def _env(home: Home) -> dict[str, str]:
    env = dict(os.environ)
    env["REGISTRY_HOME"] = str(home.root)
    env["DAGSTER_HOME"] = str(home.dagster_home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as r:  # noqa: S310 - our own localhost server
            return 200 <= r.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(procs: list[Child]) -> None:
    alive = [c for c in procs if c.proc is not None and c.proc.poll() is None]
    for c in alive:
        try:
            os.killpg(c.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + STOP_GRACE_S
    for c in alive:
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(c.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            c.proc.wait()


class _Terminate(Exception):
    pass


def serve(home: Home, *, port: int | None = None, dagster_port: int = 3000, with_dagster: bool = True, public: bool = False) -> int:
    """Run the servers until Ctrl-C / SIGTERM (exit 0) or until one of them dies (non-zero)."""
    prepare_dagster_home(home)
    env = _env(home)
    if port is None:
        port = PUBLIC_PORT if public else 8501
    procs = children(home, port=port, dagster_port=dagster_port, with_dagster=with_dagster and not public, public=public)

    def on_term(signum, frame):  # noqa: ARG001
        raise _Terminate()

    previous = signal.signal(signal.SIGTERM, on_term)
    status = 0
    try:
        for c in procs:
            c.proc = subprocess.Popen(c.argv, cwd=c.cwd, env=env, start_new_session=True)
        print(f"Starting the registry's servers for {home.root} ...", flush=True)
        started = time.monotonic()
        announced = False
        while True:
            for c in procs:
                code = c.proc.poll()
                if code is not None:
                    print(f"registry serve: {c.name} exited with status {code}; stopping the other servers", file=sys.stderr, flush=True)
                    return code or 1
                if c.health_url and not c.ready and _healthy(c.health_url):
                    c.ready = True
            waiting = [c for c in procs if c.health_url and not c.ready]
            if not announced and (not waiting or time.monotonic() - started > READY_TIMEOUT_S):
                announced = True
                print("", flush=True)
                for c in procs:
                    if c.address:
                        what = {"dashboards": "Dashboards", "public dashboard": "Public dashboard (aggregate figures under the disclosure policy)"}.get(c.name, c.name)
                        late = "" if c.ready else "  (not answering yet)"
                        print(f"{what}: {c.address}{late}", flush=True)
                print("\nPress Ctrl-C to stop.", flush=True)
            time.sleep(0.3 if not announced else 1.0)
    except (KeyboardInterrupt, _Terminate):
        print("\nStopping the registry's servers ...", file=sys.stderr, flush=True)
        status = 0
    finally:
        _stop(procs)
        signal.signal(signal.SIGTERM, previous)
    return status
