"""``registry serve``: the dashboards, and (unless ``--no-dagster``) Dagster's webserver and daemon.

Every server is a child process started from this virtualenv's ``bin`` with ``$REGISTRY_HOME`` and
``$DAGSTER_HOME`` of the same home, each in its own process group so that a Ctrl-C in the terminal
reaches only this supervisor, which then stops them in order (SIGTERM to the whole group, SIGKILL
after a grace period). If one server dies, the others are stopped too and the exit status is
non-zero: a half-running registry is worse than a stopped one. They start in stages, the warm
builder first and the dashboards last (:func:`_start_stages`): when the dashboards answer, a new
case is built at once.

Sign-in: when ``$REGISTRY_HOME/config/auth.toml`` exists (an ``[auth]`` table with Streamlit's keys
``redirect_uri``, ``cookie_secret``, ``client_id``, ``client_secret``, ``server_metadata_url``), it is
handed to Streamlit as its secrets file (``--secrets.files``), so ``st.login`` signs users in through
that OpenID Connect provider, and the dashboards may listen on any ``--host``. Without it the registry
is in single-user mode and listens on a loopback address only: a non-loopback ``--host`` is refused.
The servers run with umask 077 (the home is readable by its owner only).

The dashboards read only the published snapshot (``dashboards/lib/data.py``), so serving them
never blocks a build, and a newly published snapshot appears without a restart.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from orchestration.cli.common import UserError
from orchestration.config import DASHBOARDS_DIR, REPO_ROOT, Home
from orchestration.registry.access import auth_file
from orchestration.services.dagster_home import prepare_dagster_home
from orchestration.warehouse.holders import FINISH_SIGNAL, builder_state

#: The keys of the ``[auth]`` table that ``st.login`` needs (one OpenID Connect provider).
AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")

#: Seconds each child gets to exit after SIGTERM before it is killed.
STOP_GRACE_S = 10.0
#: Seconds the warm builder gets to finish the build in progress before it is sent SIGTERM.
BUILDER_FINISH_S = 60.0
#: Seconds to wait for a server to answer before printing its address anyway; also, at the start,
#: for each stage of servers to be ready before starting the next one (see _start_stages).
READY_TIMEOUT_S = 90.0
#: Seconds the next servers wait, at the start, for the warm builder to finish building what landed
#: before (see _start_stages).
BUILDER_BUSY_WAIT_S = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    health_url: str | None
    address: str | None
    cwd: Path
    stage: int = 2  # started in order of stage, each once the earlier ones are ready (see _start_stages)
    proc: subprocess.Popen | None = None
    ready: bool = False


def _bin(name: str) -> str:
    exe = Path(sys.executable).parent / name
    return str(exe) if exe.exists() else name


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def check_auth(home: Home, host: str) -> Path | None:
    """The auth.toml to hand to Streamlit (None: single-user mode), or a UserError saying why not."""
    f = auth_file(home)
    if not f.is_file():
        if not is_loopback(host):
            raise UserError(f"refusing to listen on {host}: without {f} (sign-in) the registry is single-user and serves 127.0.0.1 only")
        return None
    try:
        auth = tomllib.loads(f.read_text()).get("auth")
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{f}: not valid TOML ({str(exc).splitlines()[0]})") from None
    if not isinstance(auth, dict):
        raise UserError(f"{f}: needs an [auth] table with {', '.join(AUTH_KEYS)}")
    missing = [k for k in AUTH_KEYS if not str(auth.get(k) or "").strip()]
    if missing:
        raise UserError(f"{f}: [auth] is missing {', '.join(missing)}")
    if f.stat().st_mode & 0o077:
        f.chmod(0o600)  # it holds the client secret and the cookie secret
    return f


#: Port of the public dashboard (``registry serve --public``), beside the signed-in one on 8501.
PUBLIC_PORT = 8502


def public_child(port: int, host: str = "127.0.0.1") -> Child:
    """The public dashboard: only the aggregate pages, under the disclosure policy (dashboards/public_app.py)."""
    return Child(
        "public dashboard",
        [_bin("streamlit"), "run", str(DASHBOARDS_DIR / "public_app.py"), "--server.port", str(port), "--server.headless", "true",
         "--server.address", host, "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"],
        f"http://{_local(host)}:{port}/_stcore/health",
        f"http://localhost:{port}",
        DASHBOARDS_DIR,
    )


def _local(host: str) -> str:
    """The address this machine reaches a server listening on ``host`` at."""
    local = host if is_loopback(host) or host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"[{local}]" if ":" in local else local


def children(home: Home, *, port: int, dagster_port: int, with_dagster: bool, host: str = "127.0.0.1",
             secrets: Path | None = None, public: bool = False) -> list[Child]:
    if public:  # the public dashboard alone: no Dagster, nothing else
        return [public_child(port, host)]
    local = _local(host)
    argv = [_bin("streamlit"), "run", str(DASHBOARDS_DIR / "app.py"), "--server.port", str(port), "--server.headless", "true",
            "--server.address", host, "--browser.gatherUsageStats", "false"]
    if secrets is not None:
        argv += ["--secrets.files", str(secrets)]
    shown = "localhost" if host in ("127.0.0.1", "localhost", "0.0.0.0", "::") else local
    out = [
        Child(
            "dashboards",
            argv,
            f"http://{local}:{port}/_stcore/health",
            f"http://{shown}:{port}",
            DASHBOARDS_DIR,  # so that dashboards/.streamlit/config.toml (theme) applies
        )
    ]
    if with_dagster:
        out += [
            Child("Dagster UI", [_bin("dagster-webserver"), "-m", "orchestration.definitions", "-p", str(dagster_port), "-h", "127.0.0.1"],
                  f"http://127.0.0.1:{dagster_port}/server_info", f"http://localhost:{dagster_port}", REPO_ROOT, stage=1),
            Child("Dagster daemon", [_bin("dagster-daemon"), "run", "-m", "orchestration.definitions"], None, None, REPO_ROOT, stage=1),
            # the warm builder: builds in-process as soon as something lands (the landing sensor stands aside)
            Child("builder", [sys.executable, "-m", "orchestration.cli", "--home", str(home.root), "watch"], None, None, REPO_ROOT, stage=0),
        ]
    return out


def _env(home: Home, secrets: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["REGISTRY_AUTH"] = "oidc" if secrets is not None else "single-user"  # what the dashboards were started with
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


def _signal(c: Child, sig: int, *, group: bool = True) -> None:
    try:
        (os.killpg if group else os.kill)(c.proc.pid, sig)
    except ProcessLookupError:
        pass


def _wait_or(c: Child, until: float, sig: int) -> None:
    """Wait for ``c`` until the monotonic time ``until``; then send ``sig`` to its process group."""
    try:
        c.proc.wait(timeout=max(0.1, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        _signal(c, sig)


def _stop(procs: list[Child]) -> None:
    alive = [c for c in procs if c.proc is not None and c.proc.poll() is None]
    # the warm builder first finishes the build in progress (a SIGTERM would interrupt it: a failed
    # build in the audit log for a harmless stop), within BUILDER_FINISH_S; the servers stop meanwhile
    builders = [c for c in alive if c.name == "builder"]
    for c in alive:
        if c in builders:
            _signal(c, FINISH_SIGNAL, group=False)  # the process only: its children (Dagster's) would die of it
        else:
            _signal(c, signal.SIGTERM)
    finish_by = time.monotonic() + BUILDER_FINISH_S
    for c in builders:
        _wait_or(c, finish_by, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for c in alive:
        _wait_or(c, deadline, signal.SIGKILL)
        c.proc.wait()


class _Terminate(Exception):
    pass


class _Stops:
    """SIGTERM and Ctrl-C stop the servers (``serve`` catches :class:`_Terminate`), except while a
    child is being started: then the stop waits until the child is recorded in ``Child.proc``, so that
    :func:`_stop` finds every process that was started (raised at once, a stop between ``Popen`` and
    the assignment would leave that server running without a supervisor)."""

    def __init__(self) -> None:
        self.held = False
        self.pending = False

    def handler(self, signum, frame) -> None:  # noqa: ARG002
        if self.held:
            self.pending = True
            return
        raise _Terminate()

    def spawn(self, c: Child, env: dict[str, str]) -> None:
        self.held = True
        try:
            c.proc = subprocess.Popen(c.argv, cwd=c.cwd, env=env, start_new_session=True)
        finally:
            self.held = False
        if self.pending:
            raise _Terminate()


def _exited(procs: list[Child]) -> Child | None:
    """The first started child that has exited, if one has."""
    return next((c for c in procs if c.proc is not None and c.proc.poll() is not None), None)


def _start_stages(procs: list[Child], home: Home, env: dict[str, str], stops: _Stops | None = None) -> Child | None:
    """Start the servers stage by stage: the warm builder (stage 0), then Dagster's webserver and
    daemon (1), then the dashboards (2), each stage once the previous one is ready or after
    :data:`READY_TIMEOUT_S`. A server is ready when it answers its health URL; the builder when its
    heartbeat says it is warm and it is not building, or has been building for
    :data:`BUILDER_BUSY_WAIT_S` (what landed before the start is built on quiet cores, but a long
    backlog does not keep the dashboards away).

    Why (measured on a 100k home, 2 cores): started together, four processes importing Dagster, dbt
    and Streamlit made the builder ready ~9 s after the start, and a case submitted as soon as the
    dashboards answered (~4 s) waited for it: ~8 s to the published snapshot instead of ~3. In this
    order, when the dashboards answer (where staff submit), the builder is warm and nothing else is
    still loading. Returns the child that exited meanwhile, if one did."""
    stops = stops or _Stops()
    last = max(c.stage for c in procs)
    for stage in sorted({c.stage for c in procs}):
        batch = [c for c in procs if c.stage == stage]
        since = time.time()
        for c in batch:
            stops.spawn(c, env)
        if stage == last:
            return None  # the supervisor's loop watches the last stage
        until = time.monotonic() + READY_TIMEOUT_S
        busy_since: float | None = None  # when the builder was first seen building
        waiting = [c for c in batch if c.name == "builder" or c.health_url]
        while waiting:
            dead = _exited(procs)  # an earlier stage may die meanwhile too
            if dead is not None:
                return dead
            now = time.monotonic()
            still = []
            for c in waiting:
                if c.name == "builder":
                    state = builder_state(home, c.proc.pid, since)
                    if state == "building" and busy_since is None:
                        busy_since = now
                    ready = state == "idle" or (state == "building" and now - busy_since >= BUILDER_BUSY_WAIT_S)
                else:
                    ready = c.ready = _healthy(c.health_url)
                if not ready:
                    still.append(c)
            waiting = still
            if waiting and now > until:
                print(f"registry serve: {', '.join(c.name for c in waiting)} not ready after {READY_TIMEOUT_S:.0f}s; "
                      "starting the other servers anyway", file=sys.stderr, flush=True)
                break
            if waiting:
                time.sleep(0.1)
    return None


def serve(home: Home, *, port: int | None = None, dagster_port: int = 3000, with_dagster: bool = True, public: bool = False,
          host: str = "127.0.0.1") -> int:
    """Run the servers until Ctrl-C / SIGTERM (exit 0) or until one of them dies (non-zero)."""
    os.umask(0o077)  # whatever the servers write into the home: readable by its owner only
    secrets = None if public else check_auth(home, host)  # the public dashboard shows only suppressed aggregates, no sign-in
    home.ensure()
    prepare_dagster_home(home)
    env = _env(home, secrets)
    if port is None:
        port = PUBLIC_PORT if public else 8501
    procs = children(home, port=port, dagster_port=dagster_port, with_dagster=with_dagster and not public, host=host,
                     secrets=secrets, public=public)

    stops = _Stops()
    previous = {sig: signal.signal(sig, stops.handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    status = 0
    try:
        print(f"Starting the registry's servers for {home.root} ...", flush=True)
        print(f"Sign-in through the identity provider of {secrets}" if secrets else
              f"Single-user mode (no {auth_file(home)}): you are the local coordinator; listening on {host} only", flush=True)
        dead = _start_stages(procs, home, env, stops)
        started = time.monotonic()
        announced = False
        while dead is None:
            dead = _exited(procs)
            if dead is not None:
                break
            for c in procs:
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
        code = dead.proc.returncode
        print(f"registry serve: {dead.name} exited with status {code}; stopping the other servers", file=sys.stderr, flush=True)
        status = code or 1
    except (KeyboardInterrupt, _Terminate):
        print("\nStopping the registry's servers ...", file=sys.stderr, flush=True)
        status = 0
    finally:
        _stop(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
