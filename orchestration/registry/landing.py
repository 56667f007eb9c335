"""The landing zone and the quarantine: where every submitted record ends up, exactly once.

``submit`` is shared by ``registry submit``, the web form and batch upload:

1. Each file is split into records and each record checked by the one validator (no lock held).
2. Under the landing lock, valid records are classified against the landing index and against the
   records before them in the same call: *accepted* (new case or new revision), *duplicate* (same
   case, revision and content: a no-op) or *conflict* (same case and revision, other content:
   quarantined).
3. Quarantined records, with every reason and their payload, are written as one quarantine batch;
   accepted records as one immutable JSON Lines batch (atomic rename), then its index (Parquet).
4. Every record gets one line in the audit log: the commit point. A journal written first makes
   the whole step all or nothing across crashes and full disks (see ``journal.py``).

So accepted + duplicates + quarantined = submitted, always, and a batch file is never edited
(the only exception is a consent withdrawal, which must purge a patient's payloads).

Big files use every core (issue 16). Step 1 is per-record Python (~40 µs a record: JSON parse, a
compiled check, canonical hash, the record's landing and audit lines) and needs no lock, so a
submission holding at least ``PARALLEL_MIN_BYTES`` of JSON Lines is read and judged by worker
processes (:class:`orchestration.registry.judging.WorkerPool`: fresh interpreters, one per core).
This process keeps the one writer role -- checking the file's UTF-8 and cutting it into blocks of
about a megabyte of lines (:class:`~orchestration.contract.validate.RawBlock`), classification under
the lock, files, journal and audit, in order -- and lands chunk *n* while the workers judge the
blocks up to ``AHEAD_BYTES`` further on. Both paths call the same judgement on every record
(:func:`orchestration.registry.judging.judge`; a worker's shortcut for a line the compiled check
passes gives the same verdict), so receipts, audit lines, quarantine entries and landed bytes are
the same (``tests/unit/test_parallel_submit.py``).

A record the compiled check (:mod:`orchestration.contract.fastcheck`) passes is certainly valid and
is not given to the validator; every other record is (``tests/unit/test_setbased_landing.py``: same
receipts, audit, quarantine and landed bytes with the check switched off). A valid record's landing
line and audit line are written where it is judged, with placeholders for the time, the status and
the batch id, which only this process knows when it lands the chunk; the landing batch is written
from the lines' parts around the time (``writev``), not joined and copied. Small submissions (the
web form, a few cases) stay in this process: starting workers costs ~0.3 s of imports.

Site scoping: a caller acting for a user who may submit for some sites only (site_staff, see
``orchestration.registry.access``) passes ``allowed_sites``. A record whose ``site_id`` is another
site is then *refused*: neither landed nor quarantined (it must not appear in that other site's
quarantine), with an error on ``site_id`` in its receipt and a ``submission_refused`` audit line.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import gc
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import orjson

from orchestration.config import Home
from orchestration.contract.validate import Error, FileSource, ParsedRecord, RawBlock, parse_submission, split_submission
from orchestration.registry import audit, journal, judging, uploads
from orchestration.registry.judging import INTERNAL_ERROR, Converted, Verdict, content_hash, judge
from orchestration.registry.fsutil import atomic_write, crash_point, part_name, stamp, utcnow
from orchestration.registry.withdrawals import withdrawn_case_ids

ACCEPTED, DUPLICATE, QUARANTINED, REFUSED = "accepted", "duplicate", "quarantined", "refused"
__all__ = ["INTERNAL_ERROR", "Converted", "Receipt", "content_hash", "open_file", "submit", "submit_iter"]

# A batch's index file (landing/index/<batch>.parquet): case_id VARCHAR, revision BIGINT,
# content_hash VARCHAR, batch_id VARCHAR (see _LandingIndex.parquet).


@dataclass(slots=True)
class Receipt:
    file: str
    record: int | None
    case_id: str | None
    status: str
    errors: list[Error] = field(default_factory=list)
    revision: int | None = None
    quarantine_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "record": self.record,
            "case_id": self.case_id,
            "revision": self.revision,
            "status": self.status,
            "errors": [e.as_dict() for e in self.errors],
            "quarantine_id": self.quarantine_id,
        }


class _LandingIndex:
    """The (case_id, revision, content_hash) of everything already landed, in an in-memory DuckDB
    table: loaded from the Parquet indexes, joined set-based against each chunk, extended with each
    chunk's accepted records, and refreshed (under the landing lock) with the batches other
    submitters landed in the meantime."""

    def __init__(self, home: Home):
        self.home = home
        self.seen: set[str] = set()
        self.staged: str | None = None  # the batch whose rows parquet() left in the table `chunk`
        self.con = duckdb.connect(":memory:")
        self.con.execute("CREATE TABLE idx (case_id VARCHAR, revision BIGINT, content_hash VARCHAR)")

    def parquet(self, accepted: list[Verdict], batch_id: str) -> bytes:
        """The index file of a batch (case_id, revision, content_hash, batch_id), as bytes.
        Written by DuckDB from list parameters: building it with pyarrow from Python lists imports
        pandas, 0.3-0.9 s of every `registry submit` of a single case."""
        self.home.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.home.tmp / part_name(f"{batch_id}.index.parquet")
        try:
            # kept as a table until the batch is committed: add() then extends the index from it
            self.staged = None
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE chunk AS SELECT unnest($1::VARCHAR[]) AS case_id, "
                "unnest($2::BIGINT[]) AS revision, unnest($3::VARCHAR[]) AS content_hash, $4::VARCHAR AS batch_id",
                [[v.case_id for v in accepted], [v.revision for v in accepted], [v.content_hash for v in accepted], batch_id],
            )
            self.staged = batch_id
            self.con.execute("COPY chunk TO '" + str(tmp).replace("'", "''") + "' (FORMAT parquet)")
            return tmp.read_bytes()
        except duckdb.IOException as exc:  # a full disk must read as one, as for every other file we write
            if "No space left" in str(exc):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp)) from None
            raise OSError(errno.EIO, str(exc).splitlines()[0], str(tmp)) from None
        finally:
            tmp.unlink(missing_ok=True)

    def refresh(self) -> None:
        new = [f for f in sorted(self.home.landing_index.glob("*.parquet")) if f.name not in self.seen]
        if new:
            self.con.execute(
                "INSERT INTO idx SELECT case_id, revision, content_hash FROM read_parquet(?)", [[str(f) for f in new]]
            )
            self.seen.update(f.name for f in new)

    def lookup(self, case_ids: list[str]) -> tuple[dict[tuple[str, int], str], dict[str, int]]:
        """Existing hashes of these cases' (case_id, revision) keys, and each case's highest revision."""
        if not case_ids or not self.seen:  # nothing landed yet: nothing to look up
            return {}, {}
        # the keys as a list parameter, not a registered Arrow table (registering imports pandas: 0.5 s)
        rows = self.con.execute(
            "SELECT DISTINCT i.case_id, i.revision, i.content_hash FROM idx i "
            "WHERE i.case_id IN (SELECT DISTINCT unnest(?::VARCHAR[]))",
            [case_ids],
        ).fetchall()
        existing = {(c, r): h for c, r, h in rows}
        max_rev: dict[str, int] = {}
        for c, r, _ in rows:
            max_rev[c] = max(r, max_rev.get(c, 0))
        return existing, max_rev

    def add(self, batch_id: str) -> None:
        """The batch this submission has just committed, from the rows :meth:`parquet` staged for it
        (the two come in pairs: the index file is written before the commit, the index extended after)."""
        if self.staged != batch_id:
            raise RuntimeError(f"landing index: batch {batch_id} was not staged (staged: {self.staged})")
        self.seen.add(f"{batch_id}.parquet")
        self.con.execute("INSERT INTO idx SELECT case_id, revision, content_hash FROM chunk")
        self.staged = None

    def close(self) -> None:
        self.con.close()


# Records are landed in chunks of CHUNK_RECORDS: one landing batch, one journal, one audit append each.
CHUNK_RECORDS = 10_000
# A submission holding JSON Lines of at least PARALLEL_MIN_BYTES (about 2,500 cases) is read and
# judged in worker processes (one per available core; WORKERS overrides, 0 = never): its lines go to
# them in blocks of about orchestration.contract.validate.BLOCK_BYTES, up to AHEAD_BYTES ahead of
# the chunk being landed. Smaller ones (the web form, a few cases) stay in this process: starting
# workers would cost more than it saves.
WORKERS: int | None = None
PARALLEL_MIN_BYTES = 4 << 20
AHEAD_BYTES = 32 << 20


def submit(home: Home, files: Sequence[tuple[str, Any]], *, channel: str = "cli",
           allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[Receipt]:
    """Validate, classify and land every record of ``files`` (name as submitted, bytes or mmap).
    ``allowed_sites`` (None: any site) refuses records of other sites; ``user`` goes into the audit lines."""
    out: list[Receipt] = []
    for chunk in submit_iter(home, files, channel=channel, allowed_sites=allowed_sites, user=user):
        out.extend(chunk)
    return out


def _workers(files: Sequence[tuple[str, Any]]) -> int:
    """How many worker processes this submission gets (0: judged in this process)."""
    n = WORKERS if WORKERS is not None else len(os.sched_getaffinity(0))
    if n < 2 and WORKERS is None:
        return 0  # one core: workers would only add the cost of sending records to them
    size = 0
    for name, data in files:
        if not isinstance(data, Converted) and name.lower().endswith((".jsonl", ".ndjson")):
            size += len(data)
    return n if size >= PARALLEL_MIN_BYTES else 0


def _items(files: Sequence[tuple[str, Any]], blocks: bool) -> Iterator[tuple[str, ParsedRecord | RawBlock, Any]]:
    """(file name, record, data) for every record of ``files``, read; with ``blocks``, the lines of a
    JSON Lines file come unread, many to a :class:`RawBlock`."""
    for name, data in files:
        if isinstance(data, Converted):
            yield name, data.parsed(name), data
            continue
        for p in split_submission(data, name, blocks=True) if blocks else parse_submission(data, name):
            yield name, p, data if type(p) is ParsedRecord and p.record is None else None


def _chunks(runs: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """The items of ``runs`` (lists, in order) regrouped in lists of CHUNK_RECORDS (the last may be shorter)."""
    chunk: list[Any] = []
    for run in runs:
        chunk.extend(run)
        while len(chunk) >= CHUNK_RECORDS:
            yield chunk[:CHUNK_RECORDS]
            chunk = chunk[CHUNK_RECORDS:]
    if chunk:
        yield chunk


def submit_iter(home: Home, files: Sequence[tuple[str, Any]], *, channel: str = "cli",
                allowed_sites: frozenset[str] | None = None, user: str | None = None) -> Iterator[list[Receipt]]:
    """Like :func:`submit`, but yields the receipts chunk by chunk, so that a file of a million
    records is processed in bounded memory. Each chunk is validated, then classified and landed
    under the landing lock (one batch), and only then yielded: the lock is never held while the
    caller writes receipts, so a slow reader never blocks other submitters.

    A big JSON Lines submission is read and judged in worker processes (see :func:`_workers`),
    up to AHEAD_BYTES ahead of the chunk being landed; this process keeps the writer role
    (classification, files, journal, audit, in submission order). Same verdicts, same bytes: both
    paths call :func:`orchestration.registry.judging.judge` on every record."""
    home.ensure()
    # Parsing builds many small, acyclic JSON containers; the cyclic garbage collector would rescan
    # the growing heap again and again (it more than doubled the time of a 100k-case file).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    index = _LandingIndex(home)
    n_workers = _workers(files)
    pool = judging.WorkerPool(n_workers) if n_workers else None
    done = False
    upload = uploads.Upload(home)  # automatic builds wait while a file of several chunks lands
    try:
        for chunk in _chunks(_judged(pool, _items(files, pool is not None), channel, user)):
            if len(chunk) >= CHUNK_RECORDS:  # a full chunk: more may follow
                upload.begin()
            yield _land_chunk(home, index, chunk, channel, allowed_sites, user)
        done = True
    finally:
        upload.end()
        if pool is not None:
            pool.close(kill=not done)
        index.close()
        if gc_was_enabled:
            gc.enable()


def _judge_here(parsed: list[tuple[ParsedRecord, Any]], channel: str, user: str | None) -> list[tuple[Verdict, Any]]:
    """Every record's verdict, judged in this process."""
    year = datetime.date.today().year
    return [(judge(p, data, year=year, channel=channel, user=user), p) for p, data in parsed]


def _judged(pool: judging.WorkerPool | None, items: Iterator[tuple[str, Any, Any]], channel: str,
            user: str | None) -> Iterator[list[tuple[Verdict, Any]]]:
    """The verdicts on ``items``, in order, in runs: each :class:`RawBlock` is judged by a worker
    (sent as soon as it is read, up to AHEAD_BYTES ahead of the run being yielded), any other
    record here, when its turn comes, CHUNK_RECORDS at a time. Without ``pool`` the items hold no
    block (see :func:`_items`) and everything is judged here. Each verdict comes with its source
    (the block, or the ParsedRecord), for a conflict's payload."""
    pending: deque[tuple[Any, Any]] = deque()  # (future, RawBlock) or (None, [(ParsedRecord, data)])
    ahead = 0  # bytes sent to workers and not yet yielded, or records waiting here

    def oldest() -> list[tuple[Verdict, Any]]:
        nonlocal ahead
        fut, src = pending.popleft()
        if fut is None:
            ahead -= len(src)
            return _judge_here(src, channel, user)
        ahead -= len(src.data)
        return [(v, src) for v in fut.result()]

    for name, item, data in items:
        if type(item) is RawBlock:
            assert pool is not None
            pending.append((pool.submit(name, item, channel, user), item))
            ahead += len(item.data)
        elif pending and pending[-1][0] is None:
            pending[-1][1].append((item, data))
            ahead += 1
        else:
            pending.append((None, [(item, data)]))
            ahead += 1
        while ahead > AHEAD_BYTES or (pending and pending[0][0] is None and len(pending[0][1]) >= CHUNK_RECORDS):
            yield oldest()
    while pending:
        yield oldest()


def _land_chunk(home: Home, index: _LandingIndex, verdicts: list[tuple[Verdict, Any]], channel: str,
                allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[Receipt]:
    refused: dict[int, Receipt] = {}
    if allowed_sites is not None:
        owners: dict[str, str | None] = {}
        kept = []
        for i, (v, src) in enumerate(verdicts):
            site = v.site
            mine = ", ".join(sorted(allowed_sites)) or "none"
            if site and site not in allowed_sites:
                refused[i] = Receipt(v.file, v.record, v.case_id, REFUSED, [Error(
                    "site_id", f"site_id {site!r} is not one of your sites ({mine}): you may submit and correct records of your own sites only")])
            elif (owner := _owning_site(home, v.case_id, owners)) is not None and owner not in allowed_sites:
                # a new revision may not move another site's case to one's own site
                refused[i] = Receipt(v.file, v.record, v.case_id, REFUSED, [Error(
                    "site_id", f"case {v.case_id!r} belongs to another site (not one of yours: {mine}): "
                               "you may submit and correct records of your own sites only")])
            else:
                kept.append((v, src))
        verdicts = kept
    out: list[Receipt] = []
    if verdicts:
        with journal.landing_lock(home):
            journal.recover(home)  # finish or undo a submission a crash interrupted
            index.refresh()
            out = _classify_and_write(home, index, verdicts, withdrawn_case_ids(home), channel, user)
    if refused:
        audit.append(home, ({"event": "submission_refused", "user": user, "file": r.file, "record": r.record, "case_id": r.case_id,
                             "channel": channel, "reason": "site_id"} for r in refused.values()))
        # the receipts in submission order
        it = iter(out)
        out = [refused[i] if i in refused else next(it) for i in range(len(out) + len(refused))]
    return out


def _owning_site(home: Home, case_id: Any, cache: dict[str, str | None]) -> str | None:
    """The site of a case's latest accepted revision (None for a case the registry does not hold)."""
    if not isinstance(case_id, str) or not case_id:
        return None
    if case_id not in cache:
        env = latest_landed(home, case_id)
        rec = env.get("record") if env else None
        cache[case_id] = rec.get("site_id") if isinstance(rec, dict) else None
    return cache[case_id]


class _Sources:
    """The submitted text of a valid record that turns out to be a conflict (for its quarantine
    payload): its ParsedRecord, or its line, found again in the block a worker judged it from."""

    def __init__(self) -> None:
        self.lines: dict[int, dict[int, bytes]] = {}  # id(block) -> line number -> line

    def parsed(self, v: Verdict, src: Any) -> ParsedRecord:
        if type(src) is not RawBlock:
            return src
        lines = self.lines.get(id(src))
        if lines is None:
            lines = self.lines[id(src)] = {n: line for n, line, _ in src.lines()}
        return ParsedRecord(v.file, v.record, source=lines[v.record])  # type: ignore[index]


def _classify_and_write(
    home: Home,
    index: _LandingIndex,
    verdicts: list[tuple[Verdict, Any]],
    withdrawn: set[str],
    channel: str,
    user: str | None = None,
) -> list[Receipt]:
    receipts: list[Receipt] = []
    quarantine: list[tuple[Receipt, dict[str, Any]]] = []
    valid: list[int] = []  # positions of the valid records
    for v, _ in verdicts:
        if v.errors is None:
            valid.append(len(receipts))
            receipts.append(Receipt(v.file, v.record, v.case_id, QUARANTINED, [], v.revision))
        else:
            r = Receipt(v.file, v.record, v.case_id, QUARANTINED, v.errors, v.revision)
            receipts.append(r)
            quarantine.append((r, v.payload))  # type: ignore[arg-type]
    if withdrawn and valid:
        kept = []
        withdrawn_keys = {w.lower() for w in withdrawn}  # case-insensitive: WD-1 withdrawn blocks wd-1
        for i in valid:
            case_id = verdicts[i][0].case_id or ""
            if case_id.lower() in withdrawn_keys:
                r = receipts[i]
                r.errors = [Error("case_id", f"case {case_id} was withdrawn from the registry (consent withdrawn) and cannot be submitted again")]
                # the payload of a withdrawn patient is not kept, not even in quarantine
                quarantine.append((r, {"payload": None, "payload_encoding": "withheld"}))
            else:
                kept.append(i)
        valid = kept
    seen, max_rev = index.lookup([verdicts[i][0].case_id for i in valid])  # type: ignore[misc]
    chunk_max: dict[str, int] | None = None  # each case's highest revision, this chunk included (for a conflict's advice)
    sources = _Sources()
    accepted: list[Verdict] = []
    for i in valid:
        v = verdicts[i][0]
        key = (v.case_id, v.revision)
        prior = seen.get(key)  # type: ignore[arg-type]
        if prior is None:
            seen[key] = v.content_hash  # type: ignore[index]
            receipts[i].status = ACCEPTED
            accepted.append(v)
        elif prior == v.content_hash:
            receipts[i].status = DUPLICATE
        else:
            if chunk_max is None:
                # a conflict's advice accounts for higher revisions later in the same chunk
                chunk_max = dict(max_rev)
                for j in valid:
                    w = verdicts[j][0]
                    chunk_max[w.case_id] = max(w.revision, chunk_max.get(w.case_id, 0))  # type: ignore[index, arg-type]
            r = receipts[i]
            r.errors = [
                Error(
                    "revision",
                    f"case {v.case_id} revision {v.revision} was already submitted with different content; "
                    f"to correct the case, submit it as revision {chunk_max.get(v.case_id, v.revision) + 1}",  # type: ignore[arg-type, operator]
                )
            ]
            quarantine.append((r, judging.payload(sources.parsed(v, verdicts[i][1]), None)))

    batch_id = stamp()
    now = utcnow().isoformat()
    writes: list[tuple[Path, bytes, str]] = []  # (path, content, crash point after it), in write order
    if quarantine:
        # metadata and reasons in quarantine/batches (what the warehouse loads), payloads verbatim
        # in quarantine/payloads (never loaded into the warehouse), line for line
        entries, payloads = [], []
        for i, (r, payload) in enumerate(quarantine):
            r.quarantine_id = f"{batch_id}-{i:06d}"
            entries.append(
                orjson.dumps(
                    {
                        "quarantine_id": r.quarantine_id,
                        "source_file": r.file,
                        "record": r.record,
                        "case_id": r.case_id,
                        "revision": r.revision,
                        "errors": [e.as_dict() for e in r.errors],
                        "quarantined_at": now,
                        "channel": channel,
                    }
                )
                + b"\n"
            )
            payloads.append(orjson.dumps({"quarantine_id": r.quarantine_id, "case_id": r.case_id, **payload}) + b"\n")
        writes.append((home.quarantine_payloads / f"{batch_id}.jsonl", b"".join(payloads), "submit.after_quarantine_payloads"))
        writes.append((home.quarantine_batches / f"{batch_id}.jsonl", b"".join(entries), "submit.after_quarantine"))
        del entries, payloads
    if accepted:
        # each landing line was written with its record when it was judged; only the time is new:
        # the file is written from the lines' parts around it (no copy of the batch in memory)
        now_bytes = now.encode()
        lines: list = []
        add = lines.extend
        for v in accepted:
            view = memoryview(v.line)  # type: ignore[arg-type]
            k = v.line.index(judging.SUBMITTED_AT)  # type: ignore[union-attr]
            add((view[:k], now_bytes, view[k + 1 :]))
        index_file = index.parquet(accepted, batch_id)
        writes.append((home.landing_batches / f"{batch_id}.jsonl", lines, "submit.after_batch"))
        writes.append((home.landing_index / f"{batch_id}.parquet", index_file, "submit.after_index"))
        del lines, index_file
    audit_lines = _audit_lines(receipts, verdicts, batch_id, channel, user)
    # crash safety (see journal.py): journal, files, audit lines (the commit point), journal removed
    journal.begin(home, batch_id, [w[0] for w in writes], audit_lines)
    try:
        for path, data, label in writes:
            atomic_write(path, data, tmp_dir=home.tmp)
            crash_point(label)
        del writes
        audit.append_bytes(home, audit_lines)
        crash_point("submit.after_audit")
    except BaseException:
        # nothing of this chunk was committed (a full disk, an interrupt): undo its files, so that
        # no record lands without its audit line; the error reaches the caller
        with contextlib.suppress(Exception):
            journal.rollback(home, batch_id)
        raise
    journal.commit(home, batch_id)
    crash_point("submit.after_commit")
    if accepted:
        index.add(batch_id)
    return receipts


def _audit_lines(receipts: list[Receipt], verdicts: list[tuple[Verdict, Any]], batch_id: str, channel: str, user: str | None) -> bytes:
    """The chunk's ``submission`` audit lines, as :func:`audit.encode` writes them: a record that
    landed or is a duplicate has its line ready from when it was judged (only the time, its status
    and the batch id are filled in); any other is written here."""
    at = utcnow().isoformat()
    at_bytes, batch_bytes = at.encode(), batch_id.encode()
    status_bytes = {ACCEPTED: ACCEPTED.encode(), DUPLICATE: DUPLICATE.encode()}
    out = []
    for r, (v, _) in zip(receipts, verdicts):
        if v.audit is not None and r.quarantine_id is None:
            out.append(v.audit % (at_bytes, status_bytes[r.status], batch_bytes))
        else:
            out.append(orjson.dumps({
                "at": at,
                "event": "submission",
                "file": r.file,
                "record": r.record,
                "case_id": r.case_id,
                "revision": r.revision,
                "status": r.status,
                "batch_id": batch_id,
                "channel": channel,
                **({"quarantine_id": r.quarantine_id} if r.quarantine_id else {}),
                **({"user": user} if user else {}),
            }) + b"\n")
    return b"".join(out)


def open_file(path: str | Path) -> FileSource:
    """A submission file, streamed in slices and lines rather than read into memory."""
    return FileSource(path)


def submit_paths(home: Home, paths: Iterable[str], *, channel: str = "cli") -> list[Receipt]:
    return submit(home, [(p, open_file(p)) for p in paths], channel=channel)


# --------------------------------------------------------------------------- read side (accepted records)


def index_files(home: Home) -> list[str]:
    """The landing index files (one per batch), in name order."""
    return [str(f) for f in sorted(home.landing_index.glob("*.parquet"))] if home.landing_index.exists() else []


def landed_revisions(home: Home, case_id: str) -> list[tuple[int, str]]:
    """(revision, batch_id) of every accepted revision of a case, oldest first."""
    files = index_files(home)
    if not files or not case_id:
        return []
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(
            "SELECT revision, any_value(batch_id) FROM read_parquet(?) WHERE case_id = ? GROUP BY revision ORDER BY revision",
            [files, case_id],
        ).fetchall()
    finally:
        con.close()
    return [(int(r), str(b)) for r, b in rows]


def latest_revision(home: Home, case_id: str) -> int | None:
    revs = landed_revisions(home, case_id)
    return revs[-1][0] if revs else None


def batch_of(home: Home, case_id: str, revision: int) -> str | None:
    return dict(landed_revisions(home, case_id)).get(revision)


def latest_landed(home: Home, case_id: str) -> dict[str, Any] | None:
    """The landing-zone envelope of a case's highest accepted revision (``case_id``, ``revision``,
    ``batch_id``, ``submitted_at``, ``channel``, ``record`` as submitted), or ``None``."""
    revs = landed_revisions(home, case_id)
    if not revs:
        return None
    rev, batch = revs[-1]
    path = home.landing_batches / f"{batch}.jsonl"
    needle = orjson.dumps(case_id)
    with open(path, "rb") as f:
        for line in f:
            if needle in line:
                env = orjson.loads(line)
                if env.get("case_id") == case_id and env.get("revision") == rev:
                    return {**env, "batch_id": batch}
    return None


def latest_record(home: Home, case_id: str) -> dict[str, Any] | None:
    """The latest accepted revision of a case, exactly as submitted (with its revision filled in)."""
    env = latest_landed(home, case_id)
    if env is None:
        return None
    return {**env["record"], "revision": env["revision"]}


def next_revision(home: Home, case_id: str, wanted: Any = 1) -> int:
    """The revision a correction of ``case_id`` should carry: ``wanted`` unless the registry already
    holds that revision or a later one, then the latest + 1."""
    latest = latest_revision(home, case_id) if isinstance(case_id, str) else None
    w = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) and wanted >= 1 else 1
    return w if latest is None or w > latest else latest + 1


# --------------------------------------------------------------------------- what the pipeline has to pick up


def watermark_dirs(home: Home) -> tuple[Path, ...]:
    """The folders :func:`landing_watermark` reads (a watcher of them also watches the journal's)."""
    return (home.landing_batches, home.quarantine_batches, home.quarantine_resolutions, home.withdrawals)


def landing_watermark(home: Home) -> str | None:
    """The newest thing the pipeline has to pick up: a landing or quarantine batch, a quarantine
    resolution or a withdrawal (all named by the same sortable stamp)."""
    newest = None
    entries = {}
    for d in watermark_dirs(home):
        entries[d] = [e.name for e in d.iterdir()] if d.exists() else []
    # listed after the batches: a batch whose submission has not committed yet is not a watermark
    # (a build tagged with it would skip it for good)
    pending = journal.pending_batches(home)
    for names in entries.values():
        for name in names:
            if name.startswith("."):
                continue
            stem = name.split(".", 1)[0]
            if stem in pending:
                continue
            if newest is None or stem > newest:
                newest = stem
    return newest
