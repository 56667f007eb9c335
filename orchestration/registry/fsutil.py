"""Small file-system primitives: atomic writes, advisory locks, process liveness and the named
crash points the crash tests use."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import uuid
from pathlib import Path
from typing import Iterator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def stamp() -> str:
    """A sortable, unique name stem: UTC time to the microsecond, the process id and a random tag."""
    return f"{utcnow():%Y%m%dT%H%M%S%fZ}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


CRASH_ENV = "REGISTRY_CRASH_AT"


def crash_point(label: str) -> None:
    """Die here, at once and without clean-up (as ``kill -9`` or a power cut would), when
    ``$REGISTRY_CRASH_AT`` names this point. The crash tests use it to stop a command between two
    writes deterministically; unset, it costs one dictionary lookup."""
    if os.environ.get(CRASH_ENV) == label:
        os._exit(137)


def part_name(name: str) -> str:
    """The name of a temporary file: hidden, tagged with the writer's pid (so that a clean-up can
    tell a dead writer's leftovers from a live writer's file) and ending in ``.part``."""
    return f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.part"


def atomic_write(path: Path, data: bytes | list, *, tmp_dir: Path | None = None) -> Path:
    """Write ``data`` (bytes, or a list of bytes-like parts written one after the other) to ``path``
    so that readers see either nothing or the whole file: write a temporary file in the same file
    system, fsync it, rename it into place. On any error (a full disk) the temporary file is
    removed: nothing half-written is left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_parent = tmp_dir or path.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_parent / part_name(path.name)
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, list):
                _write_parts(f.fileno(), data)
            else:
                f.write(data)
                f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


_IOV_MAX = 1024


def _write_parts(fd: int, parts: list) -> None:
    """Write ``parts`` in order with ``writev`` (no joined copy of them in memory)."""
    for i in range(0, len(parts), _IOV_MAX):
        batch = parts[i : i + _IOV_MAX]
        done, total = os.writev(fd, batch), sum(len(p) for p in batch)
        if done < total:  # a short write (a full disk reports ENOSPC on the next): write the rest plainly
            rest = memoryview(b"".join(batch))[done:]
            while rest:
                n = os.write(fd, rest)
                if n <= 0:
                    raise OSError(28, "No space left on device (short write)")
                rest = rest[n:]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """Whether process ``pid`` runs (and, given its start time as :func:`pid_start` reported it,
    is still the same process and not a later one that reused the number)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start is not None:
        now = pid_start(pid)
        if now is not None and now != start:
            return False
    if _zombie(pid):
        return False
    return True


def pid_start(pid: int) -> str | None:
    """The start time of a process (clock ticks since boot, from ``/proc``), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def remove_dead_parts(folder: Path) -> int:
    """Remove temporary ``.part`` files whose writer has died (the pid in their name is gone)."""
    removed = 0
    if not folder.exists():
        return 0
    for p in folder.glob(".*.part"):
        bits = p.name.rsplit(".", 3)
        try:
            pid = int(bits[-3])
        except (ValueError, IndexError):
            continue
        if not pid_alive(pid):
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
    return removed


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """An advisory ``flock`` held for the duration of the block (released if the process dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
