"""The per-record half of a submission: read a record, judge it, hash it and write its landing
line and audit line. It needs no lock and no file of the registry, so it runs in this process or,
for a big JSON Lines file, in worker processes (:mod:`orchestration.registry.landing` keeps the one
writer role: classification under the landing lock, files, journal and audit, in order).

Both paths call :func:`judge` on a :class:`~orchestration.contract.validate.ParsedRecord` and get
a :class:`Verdict`, a plain tuple (cheap to send between processes): so a record's receipt, its
quarantine entry and payload, its content hash and its landed bytes cannot depend on where it was
judged. A record the compiled check passes (:mod:`orchestration.contract.fastcheck`) is valid
without the validator. A worker reads a line the compiled check passes without building a
ParsedRecord (:func:`_certainly_valid_line`, the same verdict). The landed JSON of a record is
its canonical form, ``orjson.dumps`` of the record as validated with sorted keys: the bytes the
duplicate-key check wrote while reading it, unless the validator normalised the record (``40.0``
read as ``40``), which is then written again; it is spliced into the landing line
(:func:`landing_line`) instead of serialising the record a second time, and when the record states
its revision, its content hash is the hash of these very bytes.

This module imports no DuckDB and no pyarrow: a worker process starts with the validator only.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import fcntl
import gc
import hashlib
import json
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple

import orjson

from orchestration.contract.fastcheck import certainly_valid
from orchestration.contract.validate import (
    Error,
    FileSource,
    ParsedRecord,
    RawBlock,
    canonical,
    has_u_escape,
    may_have_duplicate_keys,
    parse_line,
    record_errors,
)

INTERNAL_ERROR = "internal error while validating this record: it is kept in quarantine (please report it)"


@dataclass(frozen=True)
class Converted:
    """A record built from another format (FHIR, REDCap, a spreadsheet), handed to :func:`submit` in
    place of a file's bytes. It goes through the same validator, receipts, quarantine and audit.

    ``obj`` is the constructed contract-v1 record, or ``None`` when the input could not be read at
    all; ``errors`` are the converter's own, in the input format's coordinates; ``where`` maps
    contract paths (``labs[3]``, ``labs[3].unit``) to those coordinates, so that the validator's
    errors are reported where the user can find them; validator errors on a path in ``explained``
    (or below it) are left out, because a converter error already says why that fact is missing.
    What is kept in the quarantine is the constructed record, never the input (which may identify
    the patient); an unreadable input keeps no payload at all."""

    obj: dict[str, Any] | None
    errors: tuple[Error, ...] = ()
    where: Mapping[str, str] = field(default_factory=dict)
    explained: frozenset[str] = frozenset()
    record: int | None = 0

    def parsed(self, name: str) -> ParsedRecord:
        if self.obj is None:
            return ParsedRecord(name, None, error=self.errors[0] if self.errors else Error("$", "could not be read"))
        return ParsedRecord(name, self.record, obj=self.obj)

    def _locate(self, path: str) -> str | None:
        p = path
        while p:
            if p in self.where:
                return self.where[p]
            cut = max(p.rfind("."), p.rfind("["))
            p = p[:cut] if cut > 0 else ""
        return None

    def merge(self, validator_errors: list[Error]) -> list[Error]:
        out = list(self.errors)
        for e in validator_errors:
            if any(e.path == x or e.path.startswith((x + ".", x + "[")) for x in self.explained):
                continue
            loc = self._locate(e.path)
            out.append(Error(f"{loc} ({e.path})", e.message) if loc and loc != e.path else e)
        return out


#: The bytes of a valid record in its landing line: the record as validated, in its canonical form
#: (keys sorted), the one the validator writes too
landed_body = canonical


def content_hash(obj: dict[str, Any], body: bytes | None = None) -> tuple[bytes, str]:
    """The canonical form of a record (sorted keys, revision filled in) and its hash: two records
    with the same hash are the same submission. ``body``, the record's :func:`landed_body` when the
    caller has it, is that form already when the record states its revision (one serialisation a
    record less: ~6 µs, a tenth of a worker's time per record)."""
    if "revision" in obj:
        canon = body if body is not None else landed_body(obj)
    else:
        canon = landed_body({**obj, "revision": 1})
    return canon, hashlib.blake2b(canon, digest_size=16).hexdigest()


def payload(p: ParsedRecord, data: Any) -> dict[str, Any]:
    """What was submitted, kept verbatim so that nothing is lost: the record's original text (the
    JSON Lines line or array element: a NaN stays NaN, 1e309 stays 1e309); for a converted record the
    record as constructed, never the input it was built from; else the whole file."""
    if isinstance(data, Converted) and p.obj is None:
        return {"payload": None, "payload_encoding": "withheld"}
    text = p.verbatim()
    if text is not None:
        return {"payload": text, "payload_encoding": "json" if p.error is None else "text"}
    if p.obj is not None or p.record is not None:
        try:
            return {"payload": orjson.dumps(p.obj).decode(), "payload_encoding": "json"}
        except TypeError:  # NaN / Infinity / huge integers: keep the text as the standard library writes it
            try:
                return {"payload": json.dumps(p.obj), "payload_encoding": "json"}
            except (TypeError, ValueError, RecursionError):
                return {"payload": repr(p.obj), "payload_encoding": "text"}
    raw = data.read() if isinstance(data, FileSource) else (data or b"")
    return {"payload": base64.b64encode(raw).decode(), "payload_encoding": "base64"}


# A record the compiled check (orchestration.contract.fastcheck) passes is certainly valid and is
# not given to the validator. Set FAST_CHECK = False to run the validator on every record (same
# receipts, landing and audit either way: tests/unit/test_setbased_landing.py).
FAST_CHECK = True

# A valid record's landing line and audit line are written when it is judged, with placeholders for
# what only the writer knows when it lands the record's chunk: in Verdict.line, SUBMITTED_AT (orjson
# writes every control character of a string as an escape, so this byte appears nowhere else in the
# line); Verdict.audit is a %-template (its own "%" doubled) of the time, the status and the batch id.
SUBMITTED_AT = b"\x00"


class Verdict(NamedTuple):
    """What one record contributes to its chunk, before classification (which needs the lock)."""

    file: str
    record: int | None
    case_id: str | None  # as the receipt shows it (None when the record could not be read)
    site: str | None  # its site_id, when text (for site scoping)
    revision: int | None
    errors: list[Error] | None  # None: valid
    payload: dict[str, Any] | None  # the quarantine payload, when not valid
    content_hash: str | None  # when valid
    line: bytes | None  # when valid: its line in a landing batch (see landing_line), SUBMITTED_AT to fill in
    audit: bytes | None  # when valid: a template of its audit line if it lands or is a duplicate (see audit_line)


def judge(p: ParsedRecord, data: Any = None, *, year: int | None = None, channel: str = "cli", user: str | None = None,
          fast: bool | None = None) -> Verdict:
    """The verdict on one record: read errors, the validator's errors (a converted record's merged
    in), or valid with its content hash, landing line and audit line. A record the compiled check
    passes (``year``: the current year; ``fast``: whether to ask it, FAST_CHECK by default) is valid
    without the validator. One record's failure never spoils its file."""
    obj = p.obj
    site = obj.get("site_id") if p.error is None and type(obj) is dict else None
    site = site if isinstance(site, str) else None
    if p.error is not None:
        errs = list(data.errors) if isinstance(data, Converted) and data.errors else [p.error]
        return Verdict(p.source_file, p.record, None, site, None, errs, payload(p, data), None, None, None)
    h = body = None
    try:
        # a record the compiled check passes is certainly valid; every other one is judged by the
        # validator, which reads whole-number floats in integer fields as ints, in place
        certain = (FAST_CHECK if fast is None else fast) and not p.problems and certainly_valid(obj, _dt.date.today().year if year is None else year)
        errors = [] if certain else record_errors(p)
        if isinstance(data, Converted):
            errors = data.merge(errors)
        if not errors:
            # hash what the validator validated (it may have normalised the record in place)
            body = p.dumped if p.dumped is not None else landed_body(obj)
            h = content_hash(obj, body)[1]
    except Exception:  # noqa: BLE001 - one record fails, never its file
        errors = [Error("$", INTERNAL_ERROR)]
    rev = obj.get("revision", 1) if isinstance(obj, dict) else None
    rev = rev if isinstance(rev, int) and not isinstance(rev, bool) else None
    if errors:
        return Verdict(p.source_file, p.record, p.case_id, site, rev, errors, payload(p, None), None, None, None)
    return _valid(p.source_file, p.record, p.case_id, site, rev, h, orjson.dumps(p.source_file), orjson.dumps(channel), body, user)  # type: ignore[arg-type]


def _valid(source_file: str, record: int | None, case_id: str | None, site: str | None, revision: int, h: str,
           file: bytes, channel: bytes, body: bytes, user: str | None) -> Verdict:
    """A valid record's verdict (``h``: its content hash), with its landing line and audit line
    (``file``, ``channel``: their JSON)."""
    record_json = orjson.dumps(record)
    return Verdict(source_file, record, case_id, site, revision, None, None, h,
                   landing_line(case_id, revision, h, file, record_json, channel, body),
                   audit_line(file, record_json, case_id, revision, channel, user))


def judge_block(source_file: str, lineno: int, data: bytes, channel: str, user: str | None, fast: bool = True) -> list[Verdict]:
    """A worker's task: read and judge the lines of a :class:`RawBlock` (``fast``: the submitting
    process's FAST_CHECK)."""
    year = _dt.date.today().year
    file, channel_json = orjson.dumps(source_file), orjson.dumps(channel)
    out = []
    for n, line, newline in RawBlock(lineno, data).lines():
        v = _certainly_valid_line(source_file, file, channel_json, user, n, line, year) if fast else None
        if v is None or v is REFUSED_BY_CHECK:
            # refused by the compiled check: the validator decides, without asking the check again
            v = judge(parse_line(source_file, n, line + b"\n" if newline else line), year=year, channel=channel, user=user,
                      fast=fast and v is None)
        out.append(v)
    return out


#: :func:`_certainly_valid_line` read the record as :func:`judge` would and the compiled check refused it.
REFUSED_BY_CHECK: Any = object()


def _certainly_valid_line(source_file: str, file: bytes, channel: bytes, user: str | None, n: int, line: bytes, year: int) -> Verdict | None:
    """The verdict on a JSON Lines record the compiled check passes; else :data:`REFUSED_BY_CHECK`
    when the check refused the record, or None when the line is not for this shortcut: then
    :func:`judge` decides. The same verdict as ``judge(parse_line(...))``, without its intermediate objects: the
    same reading (orjson; a record with a ``\\u`` escape or a repeated key is left to judge, see
    ``validate.may_have_duplicate_keys``), the same hash and landed bytes."""
    if has_u_escape(line):  # left to judge (see may_have_duplicate_keys), before any work
        return None
    try:
        obj = orjson.loads(line)
        if type(obj) is not dict:
            return None
        body = landed_body(obj)
        if may_have_duplicate_keys(line, obj, body):
            return None
        if not certainly_valid(obj, year):
            return REFUSED_BY_CHECK
    except Exception:  # noqa: BLE001 - not JSON, not writable, or anything unexpected: judge decides
        return None
    return _valid(source_file, n, obj["case_id"], obj["site_id"], obj.get("revision", 1), content_hash(obj, body)[1], file, channel, body, user)


def landing_line(case_id: str | None, revision: int, content_hash: str, file: bytes, record: bytes, channel: bytes, body: bytes) -> bytes:
    """A landed record's line in its landing batch, with SUBMITTED_AT for its time of landing:
    ``orjson.dumps`` of the envelope (``case_id``, ``revision``, ``content_hash``, ``submitted_at``,
    ``source_file``, ``record_index``, ``channel``) with ``record`` spliced in as the bytes ``body``
    (``file``, ``record``, ``channel``: their JSON)."""
    return (
        b'{"case_id":' + orjson.dumps(case_id or "") + b',"revision":' + orjson.dumps(revision)
        + b',"content_hash":' + orjson.dumps(content_hash) + b',"submitted_at":"' + SUBMITTED_AT
        + b'","source_file":' + file + b',"record_index":' + record + b',"channel":' + channel
        + b',"record":' + body + b"}\n"
    )


def audit_line(file: bytes, record: bytes, case_id: str | None, revision: int | None, channel: bytes, user: str | None) -> bytes:
    """A record's ``submission`` audit line without a quarantine id, as :func:`audit.encode` writes it,
    as a template: ``audit_line(...) % (time, status, batch id)`` (``file``, ``record``, ``channel``: their JSON)."""
    middle = (
        b'","event":"submission","file":' + file + b',"record":' + record + b',"case_id":' + orjson.dumps(case_id)
        + b',"revision":' + orjson.dumps(revision) + b',"status":"'
    )
    tail = b'","channel":' + channel + (b',"user":' + orjson.dumps(user) if user else b"") + b"}\n"
    return b'{"at":"%s' + middle.replace(b"%", b"%%") + b'%s","batch_id":"%s' + tail.replace(b"%", b"%%")


# --------------------------------------------------------------------------- worker processes


class WorkerPool:
    """``n`` worker processes, each a fresh interpreter running this module (``python -m
    orchestration.registry.judging``): never a fork of the submitting process (whose DuckDB threads
    may hold locks), and no re-import of the caller's main script (which multiprocessing's spawn and
    forkserver do). A task is a :class:`RawBlock` of many lines (about 1 MB), so that a big file
    costs few messages and no per-line pickling: a pickled ``(file name, first line number, size,
    channel, user, FAST_CHECK)`` followed by the block's bytes, written to a worker's standard
    input; its answer, the pickled list of :class:`Verdict`, is read from its standard output.
    Tasks go to the workers in turn and each worker answers in order, so :meth:`submit` returns
    futures that complete in task order. One thread per worker sends, one receives: a worker
    never waits for the submitter to collect an answer. A worker exits at the end of its input, so
    it never outlives a submitter that was killed."""

    def __init__(self, n: int) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the directory holding the orchestration package
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(x for x in (root, os.environ.get("PYTHONPATH")) if x))
        self._workers = [_Worker(i, env) for i in range(n)]
        self._turn = 0

    def submit(self, name: str, block: RawBlock, channel: str, user: str | None) -> Future:
        w = self._workers[self._turn]
        self._turn = (self._turn + 1) % len(self._workers)
        # the block's bytes follow their pickled header as they are (no pickled copy of a megabyte)
        return w.submit((pickle.dumps((name, block.lineno, len(block.data), channel, user, FAST_CHECK), protocol=5), block.data))

    def close(self, *, kill: bool = False) -> None:
        """Let the workers finish and exit (``kill``: stop them now, e.g. when the submission failed)."""
        for w in self._workers:
            w.close(kill)
        for w in self._workers:
            w.join()


def _widen(pipe: Any) -> None:
    """A pipe of 1 MB (Linux; the default is 64 kB): a task or an answer of a megabyte passes in one
    write instead of sixteen, each a wake-up of the other side."""
    size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if pipe is None or size is None:
        return
    with contextlib.suppress(OSError):  # above /proc/sys/fs/pipe-max-size, or not a pipe
        fcntl.fcntl(pipe.fileno(), size, 1 << 20)


class _Worker:
    def __init__(self, i: int, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestration.registry.judging"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        for pipe in (self.proc.stdin, self.proc.stdout):
            _widen(pipe)
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.pending: deque[Future] = deque()
        self.lock = threading.Lock()
        self.failed: BaseException | None = None
        self.threads = [
            threading.Thread(target=self._send, name=f"submit-worker-{i}-send", daemon=True),
            threading.Thread(target=self._receive, name=f"submit-worker-{i}-receive", daemon=True),
        ]
        for t in self.threads:
            t.start()

    def submit(self, task: tuple[bytes, bytes]) -> Future:
        fut: Future = Future()
        with self.lock:
            if self.failed is not None:
                fut.set_exception(self.failed)
                return fut
            self.pending.append(fut)
        self.outbox.put(task)
        return fut

    def _send(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while (task := self.outbox.get()) is not None:
                head, data = task
                stdin.write(len(head).to_bytes(8, "little"))
                stdin.write(head)
                stdin.write(data)
                stdin.flush()
        except (OSError, ValueError):
            pass  # the worker is gone: the receiver fails its tasks
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def _receive(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while len(head := stdout.read(8)) == 8:
                answer = pickle.loads(stdout.read(int.from_bytes(head, "little")))
                with self.lock:
                    fut = self.pending.popleft()
                fut.set_result(answer)
        except Exception as exc:  # noqa: BLE001 - reported through the tasks' futures
            error: BaseException = exc
        else:
            error = RuntimeError(f"a submission worker process ended unexpectedly (exit status {self.proc.wait()})")
        with self.lock:
            self.failed = error
            failed, self.pending = list(self.pending), deque()
        for fut in failed:
            fut.set_exception(error)

    def close(self, kill: bool) -> None:
        self.outbox.put(None)
        if kill:
            with contextlib.suppress(OSError):
                self.proc.kill()

    def join(self) -> None:
        # the receiver ends when the worker closes its output, i.e. exits: waiting for the thread
        # blocks on a lock, where Popen.wait(timeout) would poll in sleeps of up to 50 ms
        self.threads[1].join(timeout=60)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for t in self.threads:
            t.join(timeout=5)


def main() -> None:
    """A worker: answer tasks from standard input until it ends (see :class:`WorkerPool`)."""
    gc.disable()  # parsing builds many small acyclic containers: no cyclic GC needed
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while len(head := inp.read(8)) == 8:
        name, lineno, size, channel, user, fast = pickle.loads(inp.read(int.from_bytes(head, "little")))
        answer = pickle.dumps(judge_block(name, lineno, inp.read(size), channel, user, fast), protocol=5)
        out.write(len(answer).to_bytes(8, "little"))
        out.write(answer)
        out.flush()


if __name__ == "__main__":
    # run as the module's own name, so that what is pickled refers to orchestration.registry.judging
    from orchestration.registry.judging import main as _main

    _main()
