"""How many SQL console queries may run at once: per user and overall.

Each query of ``registry sql`` and the ``/sql`` page runs in its own memory-capped worker process
(up to 3 GiB and 2 threads for up to 120 s), so without a limit a handful of sessions exhaust the
machine. A query first takes a *slot*: one of ``max_per_user`` lock files of its user and one of
``max_concurrent`` lock files of the registry, under ``$REGISTRY_HOME/locks/sql/``, each taken
with a non-blocking ``flock``. A slot is held by an open file, so it is released when the query
ends, and also when its process dies: a crash never leaks a slot, and every process on the machine
(each Streamlit session, each ``registry sql``) shares the same count.

When no slot is free the query waits (polling) for up to ``queue_seconds``, then is refused with
one line: ``the SQL console is busy (N queries running); try again``.

Limits come from the environment (``REGISTRY_SQL_MAX_CONCURRENT``, ``REGISTRY_SQL_MAX_PER_USER``,
``REGISTRY_SQL_QUEUE_SECONDS``) or ``$REGISTRY_HOME/config/sql.toml``; the environment wins::

    max_concurrent = 4      # queries at once, all users together
    max_per_user = 2        # queries at once of one user
    queue_seconds = 10      # how long a query waits for a slot before it is refused

    [users."coordinator@example.org"]
    max_per_user = 4        # per-user exceptions
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from orchestration.config import Home

DEFAULT_MAX_CONCURRENT = 4
DEFAULT_MAX_PER_USER = 2
DEFAULT_QUEUE_SECONDS = 10.0
POLL_S = 0.05


class ConsoleBusy(Exception):
    """No slot freed up in time (one line)."""


@dataclass(frozen=True)
class Limits:
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    max_per_user: int = DEFAULT_MAX_PER_USER
    queue_seconds: float = DEFAULT_QUEUE_SECONDS


def config_file(home: Home) -> Path:
    return home.root / "config" / "sql.toml"


def limits_for(home: Home, user: str) -> Limits:
    """The limits that apply to ``user``: defaults < ``config/sql.toml`` (and its per-user table) < environment."""
    cfg: dict = {}
    f = config_file(home)
    if f.exists():
        try:
            cfg = tomllib.loads(f.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{f} cannot be read: {exc}") from None
    per_user = (cfg.get("users") or {}).get(user) or {}
    merged = {**{k: v for k, v in cfg.items() if k != "users"}, **per_user}
    env = {
        "max_concurrent": os.environ.get("REGISTRY_SQL_MAX_CONCURRENT"),
        "max_per_user": os.environ.get("REGISTRY_SQL_MAX_PER_USER"),
        "queue_seconds": os.environ.get("REGISTRY_SQL_QUEUE_SECONDS"),
    }
    merged.update({k: v for k, v in env.items() if v not in (None, "")})
    try:
        return Limits(
            max_concurrent=max(1, int(merged.get("max_concurrent", DEFAULT_MAX_CONCURRENT))),
            max_per_user=max(1, int(merged.get("max_per_user", DEFAULT_MAX_PER_USER))),
            queue_seconds=max(0.0, float(merged.get("queue_seconds", DEFAULT_QUEUE_SECONDS))),
        )
    except (TypeError, ValueError):
        raise ValueError("SQL console limits must be numbers (REGISTRY_SQL_* or config/sql.toml)") from None


def _user_key(user: str) -> str:
    # a file name for any user name or e-mail address, never the address itself
    return hashlib.blake2b(user.encode("utf-8"), digest_size=8).hexdigest()


def _try_one(paths: list[Path]):
    """Lock the first free file of ``paths`` (non-blocking); its open file object, or None."""
    for p in paths:
        f = open(p, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f
        except BlockingIOError:
            f.close()
    return None


def running(home: Home) -> int:
    """How many queries hold a slot now (all users)."""
    d = home.locks / "sql"
    n = 0
    for p in d.glob("all-*.lock") if d.exists() else []:
        with open(p, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            except BlockingIOError:
                n += 1
    return n


@contextlib.contextmanager
def slot(home: Home, user: str, limits: Limits | None = None) -> Iterator[None]:
    """Hold one of the user's slots and one of the registry's for the duration of the block."""
    lim = limits or limits_for(home, user)
    d = home.locks / "sql"
    d.mkdir(parents=True, exist_ok=True)
    key = _user_key(user)
    mine = [d / f"user-{key}-{i}.lock" for i in range(lim.max_per_user)]
    everyone = [d / f"all-{i}.lock" for i in range(lim.max_concurrent)]
    deadline = time.monotonic() + lim.queue_seconds
    held: list = []
    try:
        while True:
            u = _try_one(mine)
            if u is not None:
                a = _try_one(everyone)
                if a is not None:
                    held = [u, a]
                    break
                u.close()
            if time.monotonic() >= deadline:
                n = running(home)
                raise ConsoleBusy(f"the SQL console is busy ({n} {'query' if n == 1 else 'queries'} running); try again")
            time.sleep(POLL_S)
        yield
    finally:
        for f in held:
            f.close()
