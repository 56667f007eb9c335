"""The landing zone and the quarantine: where every submitted record ends up, exactly once.

``submit`` is shared by ``registry submit``, the web form and batch upload:

1. Each file is split into records and each record checked by the one validator (no lock held).
2. Under the landing lock, valid records are classified against the landing index and against the
   records before them in the same call: *accepted* (new case or new revision), *duplicate* (same
   case, revision and content: a no-op) or *conflict* (same case and revision, other content:
   quarantined).
3. Accepted records are written as one immutable JSON Lines batch (atomic rename), then its index
   (Parquet); quarantined records, with every reason and their payload, as one quarantine batch.
4. Every record gets one line in the audit log.

So accepted + duplicates + quarantined = submitted, always, and a batch file is never edited
(the only exception is a consent withdrawal, which must purge a patient's payloads).
"""

from __future__ import annotations

import base64
import gc
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from orchestration.registry import audit
from orchestration.contract.setbased import SetChecker
from orchestration.contract.validate import Error, FileSource, ParsedRecord, parse_submission, validate_record
from orchestration.registry.fsutil import atomic_write, file_lock, stamp, utcnow
from orchestration.config import Home

ACCEPTED, DUPLICATE, QUARANTINED = "accepted", "duplicate", "quarantined"

INDEX_SCHEMA = pa.schema(
    [("case_id", pa.string()), ("revision", pa.int64()), ("content_hash", pa.string()), ("batch_id", pa.string())]
)


@dataclass
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


@dataclass
class _Valid:
    seq: int
    parsed: ParsedRecord
    case_id: str
    revision: int
    content_hash: str
    canonical: bytes


def content_hash(obj: dict[str, Any]) -> tuple[bytes, str]:
    """The canonical form of a record (sorted keys, revision filled in) and its hash: two records
    with the same hash are the same submission."""
    canon = orjson.dumps({**obj, "revision": obj.get("revision", 1)}, option=orjson.OPT_SORT_KEYS)
    return canon, hashlib.blake2b(canon, digest_size=16).hexdigest()


def _payload(p: ParsedRecord, data: Any) -> dict[str, Any]:
    """What was submitted, kept verbatim so that nothing is lost."""
    if p.obj is not None or (p.raw is None and p.record is not None):
        try:
            return {"payload": orjson.dumps(p.obj).decode(), "payload_encoding": "json"}
        except TypeError:  # NaN / Infinity / huge integers: keep the text as the standard library writes it
            import json

            return {"payload": json.dumps(p.obj), "payload_encoding": "json"}
    if p.raw is not None:
        return {"payload": p.raw, "payload_encoding": "text"}
    raw = data.read() if isinstance(data, FileSource) else (data or b"")
    return {"payload": base64.b64encode(raw).decode(), "payload_encoding": "base64"}


class _LandingIndex:
    """The (case_id, revision, content_hash) of everything already landed, in an in-memory DuckDB
    table: loaded from the Parquet indexes, joined set-based against each chunk, extended with each
    chunk's accepted records, and refreshed (under the landing lock) with the batches other
    submitters landed in the meantime."""

    def __init__(self, home: Home):
        self.home = home
        self.seen: set[str] = set()
        self.con = duckdb.connect(":memory:")
        self.con.execute("CREATE TABLE idx (case_id VARCHAR, revision BIGINT, content_hash VARCHAR)")

    def refresh(self) -> None:
        new = [f for f in sorted(self.home.landing_index.glob("*.parquet")) if f.name not in self.seen]
        if new:
            self.con.execute(
                "INSERT INTO idx SELECT case_id, revision, content_hash FROM read_parquet(?)", [[str(f) for f in new]]
            )
            self.seen.update(f.name for f in new)

    def lookup(self, valid: list[_Valid]) -> tuple[dict[tuple[str, int], str], dict[str, int]]:
        """Existing hashes of this chunk's (case_id, revision) keys, and each case's highest revision."""
        if not valid:
            return {}, {}
        keys = pa.table({"case_id": [v.case_id for v in valid]})
        self.con.register("chunk_keys", keys)
        try:
            rows = self.con.execute(
                "SELECT DISTINCT i.case_id, i.revision, i.content_hash FROM idx i "
                "WHERE i.case_id IN (SELECT DISTINCT case_id FROM chunk_keys)"
            ).fetchall()
        finally:
            self.con.unregister("chunk_keys")
        existing = {(c, r): h for c, r, h in rows}
        max_rev: dict[str, int] = {}
        for c, r, _ in rows:
            max_rev[c] = max(r, max_rev.get(c, 0))
        return existing, max_rev

    def add(self, index: pa.Table, batch_id: str) -> None:
        self.seen.add(f"{batch_id}.parquet")
        self.con.register("new_keys", index)
        try:
            self.con.execute("INSERT INTO idx SELECT case_id, revision, content_hash FROM new_keys")
        finally:
            self.con.unregister("new_keys")

    def close(self) -> None:
        self.con.close()


CHUNK_RECORDS = 10_000
# Chunks of at least this many records are first checked set-based in DuckDB
# (orchestration.contract.setbased); the Python validator then runs only on the records that do
# not certainly pass, for its verdict and messages. Smaller chunks (the web form, a few cases) go
# straight to the Python validator: a DuckDB connection would cost more than it saves.
# Set SET_BASED = False to run the Python validator on every record (same receipts either way).
SET_BASED = True
SET_BASED_MIN_RECORDS = 500


def submit(home: Home, files: Sequence[tuple[str, Any]], *, channel: str = "cli") -> list[Receipt]:
    """Validate, classify and land every record of ``files`` (name as submitted, bytes or mmap)."""
    out: list[Receipt] = []
    for chunk in submit_iter(home, files, channel=channel):
        out.extend(chunk)
    return out


def submit_iter(home: Home, files: Sequence[tuple[str, Any]], *, channel: str = "cli") -> Iterator[list[Receipt]]:
    """Like :func:`submit`, but yields the receipts chunk by chunk, so that a file of a million
    records is processed in bounded memory. Each chunk is validated, then classified and landed
    under the landing lock (one batch), and only then yielded: the lock is never held while the
    caller writes receipts, so a slow reader never blocks other submitters."""
    home.ensure()
    # Parsing builds many small, acyclic JSON containers; the cyclic garbage collector would rescan
    # the growing heap again and again (it more than doubled the time of a 100k-case file).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    index = _LandingIndex(home)
    checker: SetChecker | None = None
    try:
        pending: list[tuple[ParsedRecord, Any]] = []
        for name, data in files:
            for p in parse_submission(data, name):
                pending.append((p, data if p.record is None else None))
                if len(pending) >= CHUNK_RECORDS:
                    if checker is None and SET_BASED:
                        checker = SetChecker()
                    yield _land_chunk(home, index, pending, channel, checker)
                    pending = []
        if pending:
            if checker is None and SET_BASED and len(pending) >= SET_BASED_MIN_RECORDS:
                checker = SetChecker()
            yield _land_chunk(home, index, pending, channel, checker)
    finally:
        index.close()
        if checker is not None:
            checker.close()
        if gc_was_enabled:
            gc.enable()


def _land_chunk(
    home: Home, index: _LandingIndex, parsed: list[tuple[ParsedRecord, Any]], channel: str, checker: SetChecker | None = None
) -> list[Receipt]:
    validated = _validate_chunk(parsed, checker)
    from orchestration.services.withdraw import withdrawn_case_ids

    with file_lock(home.locks / "landing.lock"):
        index.refresh()
        return _classify_and_write(home, index, *validated, withdrawn_case_ids(home), channel)


def _canonical(p: ParsedRecord) -> tuple[bytes, str] | None:
    # a record whose reading found problems (duplicate keys and the like) is left to the validator
    if p.error is not None or type(p.obj) is not dict or getattr(p, "problems", None):
        return None
    try:
        return content_hash(p.obj)
    except (TypeError, ValueError, OverflowError):  # e.g. an integer beyond 64 bits: the validator decides
        return None


def _validate_chunk(parsed: list[tuple[ParsedRecord, Any]], checker: SetChecker | None = None):
    receipts: list[Receipt] = []
    quarantine: list[tuple[Receipt, dict[str, Any]]] = []
    valid: list[_Valid] = []
    # The canonical form is needed for the content hash of every valid record anyway; the
    # set-based check reads it too. A record it passes is certainly valid (validate_record would
    # return no error); every other record is judged by validate_record, as before.
    canonical = [_canonical(p) for p, _ in parsed] if checker is not None else [None] * len(parsed)
    certain = (
        checker.passing([(p.obj, c[0]) if c is not None else None for (p, _), c in zip(parsed, canonical)])
        if checker is not None
        else [False] * len(parsed)
    )
    for (p, data), canon_hash, ok in zip(parsed, canonical, certain):
        if p.error is not None:
            r = Receipt(p.source_file, p.record, None, QUARANTINED, [p.error])
            quarantine.append((r, _payload(p, data)))
            receipts.append(r)
            continue
        errors = [] if ok else validate_record(p.obj)
        rev = p.obj.get("revision", 1) if isinstance(p.obj, dict) else None
        r = Receipt(p.source_file, p.record, p.case_id, QUARANTINED, errors, rev if isinstance(rev, int) and not isinstance(rev, bool) else None)
        receipts.append(r)
        if errors:
            quarantine.append((r, _payload(p, None)))
        else:
            canon, h = canon_hash if canon_hash is not None else content_hash(p.obj)
            valid.append(_Valid(len(receipts) - 1, p, p.case_id or "", rev, h, canon))
    return receipts, quarantine, valid


def _classify_and_write(
    home: Home,
    index: _LandingIndex,
    receipts: list[Receipt],
    quarantine: list[tuple[Receipt, dict[str, Any]]],
    valid: list[_Valid],
    withdrawn: set[str],
    channel: str,
) -> list[Receipt]:
    if withdrawn:
        kept = []
        for v in valid:
            if v.case_id in withdrawn:
                r = receipts[v.seq]
                r.errors = [Error("case_id", f"case {v.case_id} was withdrawn from the registry (consent withdrawn) and cannot be submitted again")]
                # the payload of a withdrawn patient is not kept, not even in quarantine
                quarantine.append((r, {"payload": None, "payload_encoding": "withheld"}))
            else:
                kept.append(v)
        valid = kept
    existing, max_rev = index.lookup(valid)
    for v in valid:  # a conflict's advice accounts for higher revisions later in the same chunk
        max_rev[v.case_id] = max(v.revision, max_rev.get(v.case_id, 0))
    seen: dict[tuple[str, int], str] = dict(existing)
    accepted: list[_Valid] = []
    for v in valid:
        r = receipts[v.seq]
        key = (v.case_id, v.revision)
        prior = seen.get(key)
        if prior is None:
            seen[key] = v.content_hash
            r.status = ACCEPTED
            accepted.append(v)
        elif prior == v.content_hash:
            r.status = DUPLICATE
        else:
            r.status = QUARANTINED
            r.errors = [
                Error(
                    "revision",
                    f"case {v.case_id} revision {v.revision} was already submitted with different content; "
                    f"to correct the case, submit it as revision {max_rev.get(v.case_id, v.revision) + 1}",
                )
            ]
            quarantine.append((r, {"payload": v.canonical.decode(), "payload_encoding": "json"}))

    batch_id = stamp()
    now = utcnow().isoformat()
    if accepted:
        lines = b"".join(
            orjson.dumps(
                {
                    "case_id": v.case_id,
                    "revision": v.revision,
                    "content_hash": v.content_hash,
                    "submitted_at": now,
                    "source_file": v.parsed.source_file,
                    "record_index": v.parsed.record,
                    "channel": channel,
                    "record": v.parsed.obj,
                }
            )
            + b"\n"
            for v in accepted
        )
        atomic_write(home.landing_batches / f"{batch_id}.jsonl", lines, tmp_dir=home.tmp)
        del lines
        keys = pa.table(
            {
                "case_id": [v.case_id for v in accepted],
                "revision": [v.revision for v in accepted],
                "content_hash": [v.content_hash for v in accepted],
                "batch_id": [batch_id] * len(accepted),
            },
            schema=INDEX_SCHEMA,
        )
        sink = pa.BufferOutputStream()
        pq.write_table(keys, sink)
        atomic_write(home.landing_index / f"{batch_id}.parquet", sink.getvalue().to_pybytes(), tmp_dir=home.tmp)
        index.add(keys, batch_id)
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
        atomic_write(home.quarantine_payloads / f"{batch_id}.jsonl", b"".join(payloads), tmp_dir=home.tmp)
        atomic_write(home.quarantine_batches / f"{batch_id}.jsonl", b"".join(entries), tmp_dir=home.tmp)
    audit.append(
        home,
        (
            {
                "event": "submission",
                "file": r.file,
                "record": r.record,
                "case_id": r.case_id,
                "revision": r.revision,
                "status": r.status,
                "batch_id": batch_id,
                "channel": channel,
                **({"quarantine_id": r.quarantine_id} if r.quarantine_id else {}),
            }
            for r in receipts
        ),
    )
    return receipts


def open_file(path: str | Path) -> FileSource:
    """A submission file, streamed in slices and lines rather than read into memory."""
    return FileSource(path)


def submit_paths(home: Home, paths: Iterable[str], *, channel: str = "cli") -> list[Receipt]:
    return submit(home, [(p, open_file(p)) for p in paths], channel=channel)


# --------------------------------------------------------------------------- quarantine


def _payloads(home: Home, batch_stem: str) -> dict[str, dict[str, Any]]:
    f = home.quarantine_payloads / f"{batch_stem}.jsonl"
    out = {}
    if f.exists():
        with open(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    p = orjson.loads(line)
                    out[p["quarantine_id"]] = p
    return out


def quarantine_entries(home: Home, *, with_payload: bool = False, include_resolved: bool = True) -> list[dict[str, Any]]:
    """Every quarantined record, oldest first, with its resolution when it has one."""
    resolutions = {r["quarantine_id"]: r for r in _resolutions(home)}
    out = []
    for f in sorted(home.quarantine_batches.glob("*.jsonl")):
        payloads = _payloads(home, f.stem) if with_payload else {}
        with open(f, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                e = orjson.loads(line)
                res = resolutions.get(e["quarantine_id"])
                if res is not None and not include_resolved:
                    continue
                item = {
                    "quarantine_id": e["quarantine_id"],
                    "source_file": e["source_file"],
                    "record": e["record"],
                    "case_id": e["case_id"],
                    "errors": e["errors"],
                    "quarantined_at": e["quarantined_at"],
                    "resolved_at": res["at"] if res else None,
                    "resolution": res.get("note") if res else None,
                }
                if with_payload:
                    p = payloads.get(e["quarantine_id"], {})
                    item["payload"] = p.get("payload")
                    item["payload_encoding"] = p.get("payload_encoding")
                out.append(item)
    return out


def _resolutions(home: Home) -> Iterable[dict[str, Any]]:
    for f in sorted(home.quarantine_resolutions.glob("*.jsonl")) if home.quarantine_resolutions.exists() else []:
        with open(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    yield orjson.loads(line)


def resolve_quarantine(home: Home, quarantine_id: str, *, note: str, resolved_by_batch: str | None = None) -> None:
    """Mark a quarantine entry resolved (it is kept, never deleted)."""
    rec = {"quarantine_id": quarantine_id, "at": utcnow().isoformat(), "note": note, "batch_id": resolved_by_batch}
    atomic_write(home.quarantine_resolutions / f"{stamp()}.jsonl", orjson.dumps(rec) + b"\n", tmp_dir=home.tmp)
    audit.event(home, "quarantine_resolved", quarantine_id=quarantine_id, note=note)
