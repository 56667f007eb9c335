"""dbt run inside the build's own process (dbt's programmatic ``dbtRunner``), not as a subprocess.

Why (issue 16, measured at 100k cases on 2 cores): a ``dbt`` subprocess pays ~1.9 s of interpreter
start-up and imports, ~0.8-3 s of parsing (partial parsing is refused on a new home because the
profile differs) and ~1.8 s for dagster-dbt to turn its JSON log into Dagster events; all of that
is paid again by every build, before a single model runs. In-process, dbt is imported once with
Dagster, the project is parsed once per process and kept (:func:`manifest`, re-parsed when a dbt
file changes), and a long-lived process (the warm builder of ``registry serve``) pays none of it
again: one new case costs only the models' SQL.

dbt documents ``dbtRunner`` for programmatic invocations, with two caveats that hold here: one
invocation at a time per process (builds are serialised by the warehouse lock, and :data:`_LOCK`
serialises them within a process), and a pre-parsed manifest must come from the same project
(it is re-parsed when any dbt file is newer).

dbt-duckdb keeps its DuckDB instance as class state that outlives the invocation; a later
``duckdb.connect`` of the warehouse with another configuration (read-only, in the asset checks)
would then fail, so :func:`invoke` closes it after every invocation.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from orchestration.config import DBT_PROJECT_DIR, REFERENCE_DIR, Home
from orchestration.defs.dbt_project import newest_source, home_profiles_dir
from orchestration.registry.fsutil import atomic_write

_LOCK = threading.RLock()
_MANIFEST: dict[str, Any] = {}  # {"stamp": newest source mtime, "manifest": dbt Manifest}


@dataclass
class DbtOutcome:
    success: bool
    results: list[dict[str, Any]] = field(default_factory=list)  # unique_id, resource_type, name, status, seconds, message
    error: str | None = None
    seconds: float = 0.0

    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if r["status"] in ("error", "fail", "runtime error")]


def node_kind(node: Any) -> str:
    """A dbt node's resource type as text: "model", "seed", "test" ..."""
    return str(getattr(node.resource_type, "value", node.resource_type))


def _common_args(home: Home) -> list[str]:
    return [
        "--project-dir", str(DBT_PROJECT_DIR),
        "--profiles-dir", str(home_profiles_dir(home)),
        "--target-path", str(home.dbt_dir / "target"),
        "--log-path", str(home.dbt_dir / "logs"),
        "--quiet",
    ]


def _close_duckdb() -> None:
    """Close dbt-duckdb's DuckDB instance (class state that outlives an invocation)."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager  # heavy: dbt is imported lazily
    except ImportError:  # pragma: no cover - dbt-duckdb is a dependency
        return
    env = DuckDBConnectionManager._ENV
    DuckDBConnectionManager._ENV = None
    if env is not None:
        try:
            env.close()
        except Exception:  # noqa: BLE001 - closing a connection dbt already closed
            pass


#: What ``registry prepare`` (``dbt parse`` of the project) leaves: dbt's own serialisation of the parsed project.
PREPARED = DBT_PROJECT_DIR / "target" / "partial_parse.msgpack"


def manifest(home: Home):
    """The parsed dbt project, loaded at most once per process while no dbt file changes.

    It is read from the project's prepared parse (:data:`PREPARED`, ~0.5 s) when that is newer than
    every dbt file: parsing again for each home would cost ~4.4 s on a new home, because dbt refuses
    its partial parsing whenever the profile differs, and each home's profile names its own
    warehouse file. The parse does not depend on that path (the database name is the file's stem,
    ``registry``, in every home). Otherwise the project is parsed here, into the home's target."""
    from dbt.cli.main import dbtRunner  # heavy: dbt-core is imported only by processes that build
    from dbt.contracts.graph.manifest import Manifest

    with _LOCK:
        stamp = newest_source()
        cached = _MANIFEST.get("manifest")
        if cached is not None and _MANIFEST.get("stamp") == stamp:
            return cached
        if PREPARED.exists() and PREPARED.stat().st_mtime >= stamp:
            try:
                man = Manifest.from_msgpack(PREPARED.read_bytes())
            except Exception:  # noqa: BLE001 - written by another dbt version, truncated: parse instead
                man = None
            if man is not None:
                _MANIFEST.update(stamp=stamp, manifest=man)
                # the parsed project (~10^6 objects) lives as long as the process: out of the cyclic
                # collector's sight, so that its full collections stop walking it (~0.6 s a build);
                # frozen objects also outlive the process's finalisation (see cli/main.py
                # _pipeline_imports for what DuckDB's bindings then say at exit)
                gc.freeze()
                return man
        res = dbtRunner().invoke(["parse", *_common_args(home)])
        _close_duckdb()
        if not res.success or res.result is None:
            raise RuntimeError(f"dbt parse failed: {res.exception or 'see dbt.log'}")
        _MANIFEST.update(stamp=stamp, manifest=res.result)
        return res.result


def warm_up(home: Home, *, more: Callable[[], bool] = lambda: True) -> None:
    """Pay dbt's fixed costs of a process's first invocation before the build needs dbt, while the
    caller waits for something else (``registry build``: its early ingest, DuckDB on both cores).

    The parsed project is loaded (~0.45 s at 100k); then, if ``more()`` still holds, a ``dbt ls`` of
    one model (no warehouse connection, nothing written) registers the adapter and its macros, which
    the first invocation of a process otherwise pays inside the build (~0.5 s; later invocations of
    the same process: ~0.03 s). Measured (issue 16, 100k, quiet machine): the early ingest ends at
    ~2.5 s and the imports, the Dagster instance, the job and the project at ~2.9 s, so the ``ls`` is
    left out there (it would only make the caller wait longer); at a million cases the ingest lasts
    ~12 s and covers all of it."""
    manifest(home)
    if more():
        with contextlib.redirect_stdout(io.StringIO()):  # ls prints the node it lists
            invoke(home, ["ls", "--select", "stg_case_records", "--no-write-json"])


def invoke(home: Home, args: list[str], *, on_event: Callable[[Any], None] | None = None) -> DbtOutcome:
    """Run one dbt command (``build``, ``run``, ``test`` ...) in this process on ``home``'s warehouse."""
    from dbt.cli.main import dbtRunner  # heavy, see manifest()

    with _LOCK:
        man = manifest(home)
        t0 = time.perf_counter()
        try:
            res = dbtRunner(manifest=man, callbacks=[on_event] if on_event else []).invoke([*args, *_common_args(home)])
        finally:
            _close_duckdb()
        out = DbtOutcome(success=bool(res.success), seconds=time.perf_counter() - t0)
        for r in getattr(res.result, "results", None) or []:
            node = r.node
            out.results.append({
                "unique_id": node.unique_id,
                "resource_type": node_kind(node),
                "name": node.name,
                "status": str(getattr(r.status, "value", r.status)),
                "seconds": float(r.execution_time or 0.0),
                "message": r.message,
                "failures": r.failures,
            })
        if res.exception is not None:
            out.error = str(res.exception).strip().splitlines()[0] if str(res.exception).strip() else type(res.exception).__name__
        elif not out.success:
            bad = out.failures()
            # every line of dbt's message: the first names the node, the next one the database error
            out.error = "\n    ".join(
                f"{r['name']}: " + " ".join(ln.strip() for ln in (r["message"] or r["status"]).strip().splitlines()[:3])
                for r in bad[:12]
            ) or "dbt failed"
        return out


# ----------------------------------------------------------------------------- what a build need not redo
# Seeds are reloaded only when the reference CSVs change, and views (the staging views and
# fct_lab_results) are recreated only when a dbt file changes: a view's definition does not depend
# on the data. Each is recorded after a successful build in a stamp file of the home's dbt folder,
# and redone whenever the stamp differs or the warehouse lacks one of the relations (a new or
# restored warehouse).


def _fingerprint(paths: list[Path]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(paths):
        h.update(str(p.relative_to(DBT_PROJECT_DIR.parent)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def _seed_fingerprint() -> str:
    # seed column types live in dbt_project.yml
    return _fingerprint([*REFERENCE_DIR.glob("*.csv"), DBT_PROJECT_DIR / "dbt_project.yml"])


def _project_fingerprint() -> str:
    files = [p for sub in ("models", "macros") for p in (DBT_PROJECT_DIR / sub).rglob("*") if p.is_file()]
    return _fingerprint([*files, DBT_PROJECT_DIR / "dbt_project.yml"])


_KINDS = {"seeds": _seed_fingerprint, "views": _project_fingerprint}


def tests_fingerprint() -> str:
    """What the data tests run with (reference tables, dbt files, the versions of dbt, dbt-duckdb and
    DuckDB): when it changes, rows that passed may now fail, so the next test run looks at every row
    (``orchestration/warehouse/tested.py``)."""
    tests = [p for p in (DBT_PROJECT_DIR / "tests").rglob("*") if p.is_file()]
    return "-".join([_seed_fingerprint(), _project_fingerprint(), _fingerprint(tests), _versions()])


@functools.cache
def _versions() -> str:
    """The installed dbt-core, dbt-duckdb and DuckDB (they cannot change while a process runs)."""
    from importlib.metadata import version

    return ",".join(version(d) for d in ("dbt-core", "dbt-duckdb", "duckdb"))


def _stamp_file(home: Home, kind: str) -> Path:
    return home.dbt_dir / f"{kind}.loaded"


def current(home: Home, kind: str, present_in_warehouse: bool) -> bool:
    """Whether the warehouse's ``kind`` (seeds, views) are those of the repository (a build may skip them)."""
    f = _stamp_file(home, kind)
    return present_in_warehouse and f.exists() and f.read_text().strip() == _KINDS[kind]()


def mark_loaded(home: Home, kind: str) -> None:
    atomic_write(_stamp_file(home, kind), (_KINDS[kind]() + "\n").encode(), tmp_dir=home.tmp)


def forget(home: Home, kind: str) -> None:
    _stamp_file(home, kind).unlink(missing_ok=True)
