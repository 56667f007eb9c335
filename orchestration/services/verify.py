"""``registry verify``: does the home keep the registry's promises?

Checks, after finishing or undoing any interrupted submission (``journal.recover``), holding the
landing lock while it reads the landing zone, the quarantine and the audit log (so it sees no
submission half-way), then the warehouse lock while it reads the warehouse:

* landing zone: every batch has its index and every index its batch; every line parses; every
  record's checksum (``content_hash``, recomputed from the record) is right; the index lists
  exactly the batch's records; a record version ``(case_id, revision)`` is in one batch only;
* audit log: every line is JSON and terminated; the accepted lines of each batch are exactly the
  batch's records (every accepted record present once, no landed record without its line); the
  quarantined lines are exactly the quarantine's entries; no submission awaits recovery;
* quarantine: each batch has its payloads, line for line;
* warehouse (when built): every record of every ingested batch is in ``raw.case_records`` once,
  with the same checksum, and nothing is there that the landing zone does not hold.

Withdrawn cases are purged everywhere by design and are not counted as missing.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq

from orchestration.config import Home
from orchestration.registry import journal
from orchestration.registry.landing import content_hash
from orchestration.registry.withdrawals import withdrawn_case_ids
from orchestration.warehouse.locks import warehouse_lock
from orchestration.warehouse.publish import raw_tables_exist

MAX_PER_KIND = 20  # problems of one kind listed before "... and N more"


@dataclass
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": self.problems, "notes": self.notes, "counts": self.counts}


class _Problems:
    def __init__(self) -> None:
        self.by_kind: dict[str, list[str]] = collections.defaultdict(list)
        self.extra: collections.Counter = collections.Counter()

    def add(self, kind: str, line: str) -> None:
        if len(self.by_kind[kind]) < MAX_PER_KIND:
            self.by_kind[kind].append(line)
        else:
            self.extra[kind] += 1

    def lines(self) -> list[str]:
        out = []
        for kind, lines in self.by_kind.items():
            out += lines
            if self.extra[kind]:
                out.append(f"... and {self.extra[kind]} more like the above ({kind})")
        return out


def verify(home: Home, *, warehouse: bool = True) -> VerifyReport:
    rep = VerifyReport()
    pr = _Problems()
    if not home.root.exists():
        rep.problems.append(f"{home.root}: no registry home here")
        return rep
    home.ensure()
    withdrawn: set[str] = set()
    withdrawn_l: set[str] = set()

    def is_withdrawn(case_id: Any) -> bool:
        return isinstance(case_id, str) and (case_id in withdrawn or case_id.lower() in withdrawn_l)

    with journal.landing_lock(home):
        # the tombstones are read under the lock a withdrawal purges the landing zone under: read
        # before it, a withdrawal in between left a case purged from the landing zone but not yet
        # known as withdrawn here (reported as lost)
        withdrawn |= withdrawn_case_ids(home)
        withdrawn_l |= {w.lower() for w in withdrawn}
        rep.notes += journal.recover(home)
        for b in sorted(journal.pending_batches(home)):
            pr.add("journal", f"journal: submission {b} is interrupted and could not be recovered")
        landed = _check_landing(home, pr, rep)
        quarantine_ids = _check_quarantine(home, pr, rep)
        _check_audit(home, pr, rep, landed, quarantine_ids, is_withdrawn)
    if warehouse and home.warehouse.exists():
        _check_warehouse(home, pr, rep, landed, quarantine_ids, is_withdrawn)
    rep.problems = pr.lines()
    return rep


# ------------------------------------------------------------------------------------------ landing


def _check_landing(home: Home, pr: _Problems, rep: VerifyReport) -> dict[str, dict[tuple[str, int], str]]:
    """Checks the landing zone; returns batch id -> {(case_id, revision): content_hash}."""
    batches = {p.stem: p for p in home.landing_batches.glob("*.jsonl")}
    indexes = {p.stem: p for p in home.landing_index.glob("*.parquet")}
    for b in sorted(set(batches) - set(indexes)):
        pr.add("orphan", f"landing: batch {b}.jsonl has no index (landing/index/{b}.parquet is missing)")
    for b in sorted(set(indexes) - set(batches)):
        pr.add("orphan", f"landing: index {b}.parquet has no batch (landing/batches/{b}.jsonl is missing)")
    landed: dict[str, dict[tuple[str, int], str]] = {}
    where: dict[tuple[str, int], str] = {}
    n_records = 0
    for b in sorted(batches):
        recs: dict[tuple[str, int], str] = {}
        with open(batches[b], "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if not line.endswith(b"\n"):
                    pr.add("landing-line", f"landing: batch {b} line {n} is cut short")
                    continue
                try:
                    env = orjson.loads(line)
                    case_id, rev, stored, rec = env["case_id"], env["revision"], env["content_hash"], env["record"]
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    pr.add("landing-line", f"landing: batch {b} line {n} is not a landed record")
                    continue
                n_records += 1
                if content_hash(rec)[1] != stored:
                    pr.add("checksum", f"landing: batch {b} line {n} (case {case_id!r} r{rev}): checksum does not match the record")
                if rec.get("case_id") != case_id or rec.get("revision", 1) != rev:
                    pr.add("checksum", f"landing: batch {b} line {n}: envelope says case {case_id!r} r{rev}, the record another")
                key = (case_id, rev)
                if key in recs or key in where:
                    pr.add("twice", f"landing: case {case_id!r} r{rev} is landed more than once ({where.get(key, b)} and {b})")
                    continue
                recs[key] = stored
                where[key] = b
        landed[b] = recs
        if b in indexes:
            try:
                t = pq.read_table(indexes[b], columns=["case_id", "revision", "content_hash"])
            except Exception as exc:  # noqa: BLE001 - reported as one line
                pr.add("index", f"landing: index {b}.parquet cannot be read ({_first_line(exc)})")
                continue
            idx = collections.Counter(zip(t.column("case_id").to_pylist(), t.column("revision").to_pylist(), t.column("content_hash").to_pylist()))
            mine = collections.Counter((c, r, h) for (c, r), h in recs.items())
            if idx != mine:
                extra = sum((idx - mine).values())
                missing = sum((mine - idx).values())
                pr.add("index", f"landing: index {b}.parquet does not match its batch ({missing} records not indexed, {extra} index rows without a record)")
    rep.counts["landing_batches"] = len(batches)
    rep.counts["landed_records"] = n_records
    return landed


# --------------------------------------------------------------------------------------- quarantine


def _ids_of(path, key: str, pr: _Problems, what: str) -> list[str]:
    out = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(orjson.loads(line)[key])
            except (orjson.JSONDecodeError, KeyError, TypeError):
                pr.add("quarantine", f"quarantine: {what} {path.name} line {n} cannot be read")
    return out


def _check_quarantine(home: Home, pr: _Problems, rep: VerifyReport) -> set[str]:
    batches = {p.stem: p for p in home.quarantine_batches.glob("*.jsonl")}
    payloads = {p.stem: p for p in home.quarantine_payloads.glob("*.jsonl")}
    ids: set[str] = set()
    for b in sorted(set(payloads) - set(batches)):
        pr.add("quarantine", f"quarantine: payloads {b}.jsonl have no quarantine batch")
    for b in sorted(batches):
        entries = _ids_of(batches[b], "quarantine_id", pr, "batch")
        ids.update(entries)
        if b not in payloads:
            pr.add("quarantine", f"quarantine: batch {b}.jsonl has no payloads file")
            continue
        if sorted(entries) != sorted(_ids_of(payloads[b], "quarantine_id", pr, "payloads")):
            pr.add("quarantine", f"quarantine: batch {b}.jsonl and its payloads list different records")
    rep.counts["quarantine_entries"] = len(ids)
    return ids


# -------------------------------------------------------------------------------------------- audit


def _check_audit(home: Home, pr: _Problems, rep: VerifyReport, landed, quarantine_ids: set[str], is_withdrawn) -> None:
    accepted_by_batch: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    audited_quarantine: collections.Counter = collections.Counter()
    counts = collections.Counter()
    if home.audit_log.exists():
        with open(home.audit_log, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.endswith(b"\n"):
                    pr.add("audit", f"audit: line {n} is cut short (a write that did not finish)")
                    break
                if not line.strip():
                    continue
                try:
                    e = orjson.loads(line)
                except orjson.JSONDecodeError:
                    pr.add("audit", f"audit: line {n} is not valid JSON")
                    continue
                if e.get("event") != "submission":
                    continue
                status = e.get("status")
                counts[status] += 1
                if status not in (audit_status := ("accepted", "duplicate", "quarantined")):
                    pr.add("audit", f"audit: line {n} has status {status!r}, not one of {', '.join(audit_status)}")
                if e.get("withdrawn"):  # redacted by a withdrawal: its records were purged
                    continue
                if status == "accepted":
                    if not is_withdrawn(e.get("case_id")):  # (purged, not redacted: a withdrawal of an older version cut short by a crash)
                        accepted_by_batch[e.get("batch_id")][(e.get("case_id"), e.get("revision"))] += 1
                elif status == "quarantined" and e.get("quarantine_id"):
                    audited_quarantine[e["quarantine_id"]] += 1
    rep.counts.update({f"audit_{k}": v for k, v in counts.items() if k})
    for b, recs in landed.items():
        have = collections.Counter({k: 1 for k, _ in recs.items() if not is_withdrawn(k[0])})
        said = accepted_by_batch.get(b, collections.Counter())
        for (c, r) in sorted(have - said, key=str):
            pr.add("unaudited", f"audit: case {c!r} r{r} is landed in batch {b} but no audit line says it was accepted")
    for b, said in accepted_by_batch.items():
        have = {k for k in landed.get(b, {}) if not is_withdrawn(k[0])}
        for (c, r), k in sorted(said.items(), key=str):
            if (c, r) not in have:
                pr.add("lost", f"audit: case {c!r} r{r} was accepted in batch {b} but is not in the landing zone")
            elif k > 1:
                pr.add("twice", f"audit: case {c!r} r{r} is audited as accepted {k} times in batch {b}")
    for q in sorted(set(audited_quarantine) - quarantine_ids):
        pr.add("lost", f"audit: quarantine entry {q} is audited but not in the quarantine")
    for q in sorted(quarantine_ids - set(audited_quarantine)):
        pr.add("unaudited", f"audit: quarantine entry {q} has no audit line")
    for q, k in audited_quarantine.items():
        if k > 1:
            pr.add("twice", f"audit: quarantine entry {q} is audited {k} times")


# ---------------------------------------------------------------------------------------- warehouse


def _check_warehouse(home: Home, pr: _Problems, rep: VerifyReport, landed, quarantine_ids: set[str], is_withdrawn) -> None:
    with warehouse_lock(home):
        try:
            con = duckdb.connect(str(home.warehouse), read_only=True)
        except duckdb.Error as exc:
            pr.add("warehouse", f"warehouse: cannot be opened ({_first_line(exc)})")
            return
        try:
            if not raw_tables_exist(con, "case_records", "ingested_batches"):
                return
            rows = con.execute("SELECT case_id, revision, content_hash FROM raw.case_records").fetchall()
            ingested = [r[0] for r in con.execute("SELECT batch_id FROM raw.ingested_batches").fetchall()]
            raw_q = {r[0] for r in con.execute("SELECT quarantine_id FROM raw.quarantine").fetchall()} if raw_tables_exist(con, "quarantine") else set()
        finally:
            con.close()
    in_raw = collections.Counter((c, r) for c, r, _ in rows)
    raw_hash = {(c, r): h for c, r, h in rows}
    rep.counts["warehouse_records"] = len(rows)
    all_landed = {k: h for recs in landed.values() for k, h in recs.items()}
    for (c, r), k in in_raw.items():
        if k > 1:
            pr.add("wh-twice", f"warehouse: case {c!r} r{r} is in raw.case_records {k} times")
        if is_withdrawn(c):
            pr.add("wh-withdrawn", f"warehouse: withdrawn case {c!r} is still in raw.case_records")
        elif (c, r) not in all_landed:
            pr.add("wh-extra", f"warehouse: case {c!r} r{r} is in raw.case_records but not in the landing zone")
        elif all_landed[(c, r)] != raw_hash[(c, r)]:
            pr.add("wh-checksum", f"warehouse: case {c!r} r{r} has another checksum in raw.case_records than in the landing zone")
    for b in ingested:
        if b not in landed:
            pr.add("wh-batch", f"warehouse: ingested batch {b} is no longer in the landing zone")
            continue
        for (c, r) in landed[b]:
            if not is_withdrawn(c) and (c, r) not in in_raw:
                pr.add("wh-missing", f"warehouse: case {c!r} r{r} of ingested batch {b} is missing from raw.case_records")
    for q in sorted(raw_q - quarantine_ids):
        pr.add("wh-extra", f"warehouse: quarantine entry {q} is in raw.quarantine but not in the quarantine")



def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
