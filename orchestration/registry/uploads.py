"""Large submissions still landing: automatic builds wait until the whole upload has landed.

A file of more than one chunk (:data:`orchestration.registry.landing.CHUNK_RECORDS` records) lands
as one batch per chunk, each committed on its own. The warm builder of ``registry serve`` and the
landing sensor build as soon as something new has landed, so without this they would build after the
upload's first chunk, while the submitter still judges and lands the rest on the same two cores, and
build again for the rest: measured (issue 16, the 100k cohort submitted to ``registry serve`` on an
empty home), the first 10k cases visible after 5.4 s, all of them after 13.0 s, the submission slowed
from ~3.4 s to 5.3 s by the build beside it; with the wait, all of them after 10.5-10.7 s.

So a submission marks itself as an upload in progress (one small file under ``locks/uploads/``:
pid, the process's start time, when it began) before it lands its first full chunk, and removes
the mark when it ends, however it ends. While a live upload's mark is there, automatic builds (and
the warm builder's idle work) wait, for at most :data:`HOLD_S` seconds from the upload's start (a
million records take ~30 s): a case submitted meanwhile by someone else waits for the upload too,
but no longer than that. A mark left by a process that died is ignored and removed. ``registry
build`` never waits: it builds what has landed, as asked. Single records and files of fewer than
:data:`~orchestration.registry.landing.CHUNK_RECORDS` records leave no mark (a file of exactly that many
leaves one for the moment it takes to find there is no more).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from pathlib import Path

from orchestration.config import Home
from orchestration.registry.fsutil import atomic_write, pid_alive, pid_start

#: the longest automatic builds wait for one upload, from its start (seconds)
HOLD_S = 120.0


def _folder(home: Home) -> Path:
    return home.locks / "uploads"


class Upload:
    """This process's mark of one upload in progress: :meth:`begin` (again: nothing), :meth:`end`."""

    def __init__(self, home: Home):
        self._home = home
        self._path: Path | None = None

    def begin(self) -> None:
        """Mark the upload (best effort: without a mark, e.g. on a full disk, builds just do not wait)."""
        if self._path is not None:
            return
        path = _folder(self._home) / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
        mark = {"pid": os.getpid(), "start": pid_start(os.getpid()), "began": time.time()}
        try:
            atomic_write(path, json.dumps(mark).encode(), tmp_dir=self._home.tmp)
        except OSError:
            return
        self._path = path

    def end(self) -> None:
        if self._path is not None:
            with contextlib.suppress(OSError):
                self._path.unlink(missing_ok=True)
            self._path = None


def in_progress(home: Home, *, hold_s: float = HOLD_S) -> bool:
    """Whether a live upload began less than ``hold_s`` seconds ago. Marks that hold nothing back any
    more (their process is gone, or they are older than :data:`HOLD_S`: an upload abandoned by a
    long-lived process, the dashboards' server) are removed."""
    try:
        marks = list(_folder(home).iterdir())
    except FileNotFoundError:
        return False
    now = time.time()
    for path in marks:
        if path.suffix != ".json":
            continue
        try:
            mark = json.loads(path.read_bytes())
            pid, start, began = int(mark["pid"]), mark.get("start"), float(mark["began"])
        except FileNotFoundError:  # ended meanwhile
            continue
        except (OSError, ValueError, KeyError, TypeError):  # not ours, or unreadable: it holds nothing
            continue
        alive, age = pid_alive(pid, start), now - began  # (a clock stepped back: a negative age holds nothing)
        if alive and 0 <= age < hold_s:
            return True
        if not alive or not 0 <= age < HOLD_S:  # it holds nothing back any more
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
    return False
