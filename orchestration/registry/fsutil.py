"""Small file-system primitives: atomic writes and advisory locks."""

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


def atomic_write(path: Path, data: bytes, *, tmp_dir: Path | None = None) -> Path:
    """Write ``data`` to ``path`` so that readers see either nothing or the whole file:
    write a temporary file in the same file system, fsync it, rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_parent = tmp_dir or path.parent
    tmp_parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_parent / f".{path.name}.{uuid.uuid4().hex}.part"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


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
