"""How `registry serve` stops its children (cli/serve.py ``_stop``): the warm builder is asked to
finish the build in progress (SIGUSR1, to its process only) while the servers get SIGTERM; a
builder that does not finish in time gets SIGTERM too."""

from __future__ import annotations

import subprocess
import sys
import time

from orchestration.cli import serve

CHILD = """
import signal, sys, time
got = []
for s in (signal.SIGUSR1, signal.SIGTERM):
    signal.signal(s, lambda n, f: got.append(signal.Signals(n).name))
if sys.argv[2] == "deaf":  # a builder that never reacts to the finish signal
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
print("ready", flush=True)
end = time.monotonic() + 30
while time.monotonic() < end and not got:
    time.sleep(0.01)
time.sleep(float(sys.argv[1]))  # "the build in progress"
print(",".join(got), flush=True)
sys.exit(0 if got else 3)
"""


def _child(name: str, finish_s: float, mode: str = "normal") -> serve.Child:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(finish_s), mode], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert proc.stdout.readline().strip() == "ready"
    return serve.Child(name, [], None, None, serve.REPO_ROOT, proc=proc)


def test_the_builder_finishes_its_build_the_servers_are_terminated():
    builder, web = _child("builder", 0.5), _child("dashboards", 0.0)
    serve._stop([builder, web])
    assert builder.proc.returncode == 0 and builder.proc.stdout.read().strip() == "SIGUSR1"
    assert web.proc.returncode == 0 and web.proc.stdout.read().strip() == "SIGTERM"


def test_a_builder_that_does_not_finish_in_time_gets_sigterm(monkeypatch):
    monkeypatch.setattr(serve, "BUILDER_FINISH_S", 0.3)
    builder = _child("builder", 0.0, "deaf")
    t0 = time.monotonic()
    serve._stop([builder])
    assert time.monotonic() - t0 >= 0.3
    assert builder.proc.returncode == 0 and builder.proc.stdout.read().strip() == "SIGTERM"
