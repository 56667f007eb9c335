"""`registry backup` / `registry restore`: a backup taken while the registry runs restores into an
empty home, and a rebuild gives identical marts (issue 15)."""

from __future__ import annotations

import json
import subprocess

import duckdb
import pytest

from orchestration.config import Home
from orchestration.registry.landing import submit
from orchestration.services.backup import DATA, BackupError, backup, restore
from orchestration.services.withdraw import withdraw
from orchestration.warehouse import snapshot
from tests.pipeline.crashkit import assert_consistent, cohort, registry, start
from tests.support import record

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backup")]

# columns that say when a row was (re)built, not what it holds
VOLATILE = {"ingested_at", "published_at", "built_at", "refreshed_at", "loaded_at"}


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backup")
    home = Home(tmp / "home").ensure()
    f = cohort(tmp / "cohort.jsonl", 300, seed=7)
    bad = tmp / "bad.jsonl"
    bad.write_text(json.dumps(record(case_id="BAD-1", patient={"age_years": 400, "sex": "male"})) + "\n")
    submit(home, [(f.name, f.read_bytes()), (bad.name, bad.read_bytes())])
    first = json.loads(f.read_text().splitlines()[0])["case_id"]
    withdraw(home, first, "consent withdrawn", build=False)
    res = registry(home, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    return home, tmp


def _norm(v):
    """Floats to 10 significant digits: a parallel aggregate may differ in the last bit."""
    return float(f"{v:.10g}") if isinstance(v, float) else v


def _tables(home: Home) -> dict[str, list]:
    con = snapshot.connect(home)
    try:
        out = {}
        for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'registry' ORDER BY 1").fetchall():
            cols = [c for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'registry' AND table_name = ? ORDER BY column_index", [t]
            ).fetchall() if c not in VOLATILE]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[t] = [tuple(_norm(v) for v in row) for row in con.execute(f'SELECT {sel} FROM "{t}" ORDER BY ALL').fetchall()]
        return out
    finally:
        con.close()


def test_restore_and_rebuild_gives_identical_marts(original):
    home, tmp = original
    res = registry(home, "backup", str(tmp / "bk"))
    assert res.returncode == 0, res.stderr
    manifest = json.loads((tmp / "bk" / "manifest.json").read_text())
    paths = {f["path"] for f in manifest["files"]}
    assert "audit/audit.jsonl" in paths and any(p.startswith("withdrawals/") for p in paths)
    assert not any(p.startswith(("warehouse/", "published/", "dagster/", "locks/")) for p in paths)

    new = Home(tmp / "restored")
    res = registry(new, "restore", str(tmp / "bk"))
    assert res.returncode == 0, res.stderr
    assert registry(new, "verify").returncode == 0
    res = registry(new, "build")
    assert res.returncode == 0, res.stdout + res.stderr
    a, b = _tables(home), _tables(new)
    assert set(a) == set(b) and len(a) > 10
    for t in a:
        if t == "data_dictionary":
            continue
        assert a[t] == b[t], f"table {t} differs after restore"
    assert_consistent(new)


def test_restore_refuses_a_non_empty_home_and_a_damaged_backup(original, tmp_path):
    home, _ = original
    bk = tmp_path / "bk"
    backup(home, bk)
    with pytest.raises(BackupError, match="not empty"):
        restore(bk, home)
    with pytest.raises(BackupError, match="not empty"):
        backup(home, bk)
    victim = next((bk / "home" / "landing" / "batches").glob("*.jsonl"))
    data = victim.read_bytes()
    victim.unlink()  # (a hard link: do not edit the home's file in place)
    victim.write_bytes(data.replace(b'"revision":1', b'"revision":2', 1))
    res = registry(Home(tmp_path / "new"), "restore", str(bk))
    assert res.returncode == 2 and "does not match its checksum" in res.stderr
    assert not (tmp_path / "new").exists() or not any((tmp_path / "new").iterdir())


def test_online_backup_during_submits_and_a_build(original, tmp_path):
    """Backups taken while two submitters land files and a build runs are each consistent: every
    landed record has its audit line, nothing is half-written (the issue saw a `cp -a` fail 2 in 52)."""
    home, _ = original
    files = [cohort(tmp_path / f"on{i}.jsonl", 4000, seed=40 + i, prefix=f"ON{i}") for i in range(2)]
    procs = [start(home, "submit", str(f)) for f in files]
    build = start(home, "build")
    try:
        for i in range(4):
            dest = tmp_path / f"bk{i}"
            backup(home, dest, with_warehouse=(i == 3))
            restored = Home(tmp_path / f"r{i}")
            restore(dest, restored)
            assert_consistent(restored, warehouse=(i == 3))
    finally:
        for p in [*procs, build]:
            p.wait(timeout=600)
    assert all(p.returncode in (0, 1) for p in procs)
    assert build.returncode == 0, build.stderr.read()
    assert_consistent(home)
    _ = (subprocess, duckdb)


def test_a_backup_during_a_withdrawal_holds_it_whole_or_not_at_all(tmp_path, monkeypatch):
    """A backup whose locked phase comes while a withdrawal is under way: the backup holds the
    withdrawal whole (tombstone, the case's audit lines redacted, the `withdrawal` event) or not at
    all, never a tombstone beside the case's unredacted audit lines (which name the file and record
    it came from). The backup is started just before the withdrawal redacts the audit log and given
    3 s: the withdrawal held only the landing lock's part then, so the backup used to finish in
    between."""
    import threading

    from orchestration.registry import erasure, withdrawals

    home = Home(tmp_path / "home").ensure()
    f = cohort(tmp_path / "cohort.jsonl", 20, seed=23, prefix="WD")
    submit(home, [(f.name, f.read_bytes())])
    victim = json.loads(f.read_text().splitlines()[3])["case_id"]
    real_redact, done = withdrawals._redact_audit, {}

    def redact_with_a_backup_racing(h, case_id, *more):
        t = threading.Thread(target=lambda: done.update(result=backup(h, tmp_path / "bk")), daemon=True)
        t.start()
        t.join(3)
        done["thread"] = t
        return real_redact(h, case_id, *more)

    monkeypatch.setattr(withdrawals, "_redact_audit", redact_with_a_backup_racing)
    erasure.purge(home, victim, "consent withdrawn")
    done["thread"].join(60)
    assert "result" in done, "the backup did not finish"
    data = tmp_path / "bk" / DATA
    tombstones = [json.loads(p.read_text())["case_id"] for p in (data / "withdrawals").glob("*.json")] if (data / "withdrawals").exists() else []
    events = [json.loads(line) for line in (data / "audit" / "audit.jsonl").read_text().splitlines()] \
        if (data / "audit" / "audit.jsonl").exists() else []
    mine = [e for e in events if e.get("case_id") == victim]
    landed = "".join(p.read_text() for p in (data / "landing" / "batches").glob("*.jsonl"))
    assert tombstones == [victim]  # started once the tombstone was written, the backup holds it
    assert victim not in landed
    assert any(e["event"] == "withdrawal" for e in mine), mine
    assert all(e.get("withdrawn") or e["event"] == "withdrawal" for e in mine), mine
    assert not [e for e in mine if "file" in e or "record" in e], mine
