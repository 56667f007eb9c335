"""What the crash tests share: the `registry` command of this tree as a subprocess (optionally set
to die at a named crash point), and the invariants a home must keep after any crash."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from orchestration.config import REPO_ROOT, Home
from orchestration.registry import audit
from orchestration.services.verify import verify
from orchestration.synthetic.generate import write_jsonl as generate


def env_for(home: Home, **extra: str) -> dict[str, str]:
    env = {**os.environ, "REGISTRY_HOME": str(home.root), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("REGISTRY_DEBUG", None)
    env.pop("REGISTRY_CRASH_AT", None)
    env.update(extra)
    return env


def registry(home: Home, *args: str, crash_at: str | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    extra = {"REGISTRY_CRASH_AT": crash_at} if crash_at else {}
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        env=env_for(home, **extra), capture_output=True, text=True, timeout=timeout,
    )


def start(home: Home, *args: str) -> subprocess.Popen:
    """Start `registry ...` in its own process group (so a test can kill it and its children)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestration.cli", *args],
        env=env_for(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )


def kill_after(proc: subprocess.Popen, delay: float, *, group: bool = False) -> bool:
    """SIGKILL ``proc`` after ``delay`` seconds unless it finished; True when it was killed."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def cohort(path: Path, cases: int, seed: int, prefix: str | None = None) -> Path:
    generate(path, cases, seed)
    if prefix:  # distinct case ids per file
        lines = path.read_bytes().splitlines()
        out = []
        for ln in lines:
            r = orjson.loads(ln)
            r["case_id"] = f"{prefix}-{r['case_id']}"
            out.append(orjson.dumps(r))
        path.write_bytes(b"\n".join(out) + b"\n")
    return path


def landed_versions(home: Home) -> collections.Counter:
    """(case_id, revision) -> how many landing batch lines hold it."""
    c: collections.Counter = collections.Counter()
    for f in home.landing_batches.glob("*.jsonl"):
        for line in f.read_bytes().splitlines():
            if line.strip():
                e = orjson.loads(line)
                c[(e["case_id"], e["revision"])] += 1
    return c


def assert_consistent(home: Home, *, warehouse: bool = True) -> None:
    """The promises: `registry verify` finds nothing, nothing landed twice, the audit's accepted
    lines match the landing zone one to one, no half-written file is left."""
    rep = verify(home, warehouse=warehouse)
    assert rep.ok, "\n".join(rep.problems)
    landed = landed_versions(home)
    assert all(n == 1 for n in landed.values()), [k for k, n in landed.items() if n > 1][:5]
    accepted = collections.Counter(
        (e["case_id"], e["revision"]) for e in audit.read(home)
        if e.get("event") == "submission" and e.get("status") == "accepted" and not e.get("withdrawn")
    )
    assert accepted == landed
    counts = audit.submission_counts(home)
    assert counts["submitted"] == counts["accepted"] + counts["duplicate"] + counts["quarantined"]
    leftovers = [p for p in home.root.rglob("*.part")]
    assert not leftovers, leftovers
    assert not list((home.landing / "journal").glob("*.json")) if (home.landing / "journal").exists() else True


def wait_for(pred, timeout: float = 60.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return False
