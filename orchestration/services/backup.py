"""Online backup and restore of a registry home (``registry backup DEST``, ``registry restore SRC``).

What a backup holds: everything in the home that cannot be rebuilt: the landing zone (batches and
indexes), the quarantine (entries, payloads, resolutions), the audit log, the withdrawal
tombstones, and any access and configuration files (every top-level folder or file of the home
except the rebuildable ones below). Left out unless ``--with-warehouse``: the warehouse, the
published snapshots (both rebuilt by ``registry build``), and never: Dagster's run history, dbt's
logs and artifacts, locks and temporary files.

Consistency while the registry runs: the batch files are immutable (only a withdrawal replaces
one, by an atomic rename), so they are copied (hard-linked on the same file system) first, without
any lock; then, holding the landing lock and the audit lock (briefly: submitters and withdrawals
wait, readers and builds do not), any interrupted submission is recovered and everything that
changed since is copied, so the landing zone, quarantine and audit log of the backup are one
consistent state. The warehouse (with ``--with-warehouse``) is copied under the warehouse lock
before that, so it never holds a batch the backed-up landing zone does not.

``manifest.json`` (written last: a backup without it is incomplete) lists every file with its
size and SHA-256. ``restore`` checks every checksum, refuses a home that is not empty, copies the
files in, and a ``registry build`` then rebuilds the warehouse and the marts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestration.config import Home
from orchestration.registry import audit, journal
from orchestration.registry.fsutil import atomic_write, utcnow
from orchestration.warehouse.locks import warehouse_lock
from orchestration.warehouse.publish import shows_own_parquet

FORMAT = "calciphylaxis-registry-backup/1"
MANIFEST = "manifest.json"
DATA = "home"
#: Top-level entries of a home that are rebuilt or transient: never in a backup.
REBUILDABLE = frozenset({"warehouse", "published", "dagster", "dbt", "locks", "tmp"})
WAREHOUSE_PARTS = ("warehouse", "published")
#: Files and folders below the kept entries that are transient.
SKIP = frozenset({"journal"})
IMMUTABLE = ("landing/batches", "landing/index", "quarantine/batches", "quarantine/payloads", "quarantine/resolutions")


class BackupError(Exception):
    """One line for the user (exit 2)."""


@dataclass
class BackupResult:
    dest: Path
    files: int = 0
    bytes: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"dest": str(self.dest), "files": self.files, "bytes": self.bytes, "counts": self.counts}


def _is_empty_dir(p: Path) -> bool:
    return p.is_dir() and not any(p.iterdir())


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _kept_files(home: Home, *, with_warehouse: bool) -> dict[str, Path]:
    """relative path -> file, of everything a backup holds (symlinks kept as links by the caller)."""
    out: dict[str, Path] = {}
    for top in sorted(home.root.iterdir()):
        if top.name in REBUILDABLE and not (with_warehouse and top.name in WAREHOUSE_PARTS):
            continue
        if top.name.startswith(".") or top.name in WAREHOUSE_PARTS:
            continue  # the warehouse parts are copied under the warehouse lock
        if top.is_file():
            out[top.name] = top
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = [d for d in dirnames if d not in SKIP and not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or name.endswith((".part", ".lock")):
                    continue
                p = Path(dirpath) / name
                out[str(p.relative_to(home.root))] = p
    return out


def _place(src: Path, dst: Path, *, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        dst.unlink()
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def _sig(p: Path) -> tuple[int, int, int]:
    st = p.stat()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def backup(home: Home, dest: Path, *, with_warehouse: bool = False) -> BackupResult:
    if not (home.root / "landing").exists() and not home.audit_log.exists():
        raise BackupError(f"{home.root} is not a registry home (no landing zone, no audit log)")
    dest = dest.resolve()
    if dest.exists() and not _is_empty_dir(dest):
        raise BackupError(f"{dest} is not empty: back up into a new folder")
    if dest == home.root or home.root in dest.parents:
        raise BackupError(f"{dest} is inside the registry home: back up somewhere else")
    data = dest / DATA
    data.mkdir(parents=True, exist_ok=True)
    same_fs = os.stat(home.root).st_dev == os.stat(data).st_dev

    if with_warehouse:
        # under the warehouse lock (no build writes meanwhile), and before the landing zone
        with warehouse_lock(home):
            for name in ("registry.duckdb", "registry.duckdb.wal"):
                src = home.warehouse.parent / name
                if src.exists():
                    _place(src, data / "warehouse" / name, link=False)
            if home.published_current.exists():
                version = Path(os.path.realpath(home.published_current))
                # its Parquet files only when they are its own: a version whose set is still due (the warm
                # builder writes it when idle) would otherwise be restored with an older set as its own,
                # or fail on a link to a set not written yet. (Not copytree's ignore_dangling_symlinks: it
                # tests a relative link from the current directory, so it skips every set.)
                own = shows_own_parquet(version)
                shutil.copytree(version, data / "published" / "versions" / version.name,
                                ignore=lambda d, names: [] if own or Path(d) != version else [n for n in names if n == "parquet"])
                os.symlink(Path("versions") / version.name, data / "published" / "current")

    # 1. the immutable batches, without a lock
    copied: dict[str, tuple[int, int, int]] = {}
    for rel_dir in IMMUTABLE:
        d = home.root / rel_dir
        if not d.exists():
            continue
        for p in d.iterdir():
            if p.name.startswith(".") or not p.is_file():
                continue
            rel = str(p.relative_to(home.root))
            try:
                sig = _sig(p)
                _place(p, data / rel, link=same_fs)
            except FileNotFoundError:
                continue  # withdrawn or rolled back meanwhile: phase 2 decides
            copied[rel] = sig

    # 2. one consistent state: everything that changed since, under the landing and audit locks
    with journal.landing_lock(home):
        journal.recover(home)
        with audit.lock(home):
            kept = _kept_files(home, with_warehouse=False)
            for rel, p in kept.items():
                if rel in copied and copied[rel] == _sig(p):
                    continue
                # only immutable files may be shared by a hard link; the audit log grows in place
                _place(p, data / rel, link=same_fs and rel.startswith(tuple(d + "/" for d in IMMUTABLE)))
            for rel in set(copied) - set(kept):  # gone since phase 1
                with contextlib.suppress(FileNotFoundError):
                    (data / rel).unlink()
            audit_size = home.audit_log.stat().st_size if home.audit_log.exists() else 0
    # the audit log was copied (not linked) under its lock: appends after this are not in the backup
    files = []
    total = 0
    for dirpath, _dirs, filenames in os.walk(data):
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if p.is_symlink():
                continue
            size = p.stat().st_size
            total += size
            files.append({"path": str(p.relative_to(data)), "size": size, "sha256": _sha256(p)})
    files.sort(key=lambda f: f["path"])
    counts = {
        "landing_batches": sum(1 for f in files if f["path"].startswith("landing/batches/")),
        "quarantine_batches": sum(1 for f in files if f["path"].startswith("quarantine/batches/")),
        "audit_bytes": audit_size,
    }
    manifest = {
        "format": FORMAT,
        "created_at": utcnow().isoformat(),
        "source": str(home.root),
        "with_warehouse": with_warehouse,
        "counts": counts,
        "files": files,
    }
    atomic_write(dest / MANIFEST, json.dumps(manifest, indent=1).encode())
    return BackupResult(dest, len(files), total, counts)


def check(src: Path) -> dict[str, Any]:
    """The manifest of a complete, intact backup (every file present with its checksum), or BackupError."""
    src = src.resolve()
    mf = src / MANIFEST
    if not mf.exists():
        raise BackupError(f"{src} has no {MANIFEST}: not a backup, or an incomplete one")
    try:
        manifest = json.loads(mf.read_text())
    except (OSError, ValueError):
        raise BackupError(f"{mf} cannot be read") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{mf}: unknown backup format {manifest.get('format')!r}")
    data = src / DATA
    for f in manifest["files"]:
        p = data / f["path"]
        if not p.is_file():
            raise BackupError(f"backup damaged: {f['path']} is missing")
        if p.stat().st_size != f["size"] or _sha256(p) != f["sha256"]:
            raise BackupError(f"backup damaged: {f['path']} does not match its checksum")
    return manifest


def restore(src: Path, home: Home) -> int:
    """Copy a checked backup into an empty (or absent) home; returns the number of files."""
    manifest = check(src)
    root = home.root
    if root.exists() and not _is_empty_dir(root):
        raise BackupError(f"{root} is not empty: restore into a new, empty registry home")
    data = src.resolve() / DATA
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.restoring"
    if staging.exists():
        shutil.rmtree(staging)
    shutil.copytree(data, staging, symlinks=True)
    if root.exists():
        root.rmdir()
    os.rename(staging, root)
    home.ensure()
    return len(manifest["files"])
