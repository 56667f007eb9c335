"""The pieces of the fast submit path write exactly what the plain path writes:

* a valid record's landing line and audit line, written by the worker that judged it with
  placeholders for the time, status and batch id, are byte for byte what ``orjson.dumps`` of the
  envelope and ``audit.encode`` of the event write (any file name, case id, user);
* a JSON Lines file cut into blocks of lines gives the same records, numbered the same way (byte
  order mark, blank lines, CR LF, a last line without a newline), as reading it line by line;
* the UTF-8 check names the same line and column wherever the bad byte falls;
* the CLI's receipt text is the text of ``receipt_lines``, receipt by receipt.
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestration.cli.common import printable, receipt_lines, receipt_text
from orchestration.contract import validate
from orchestration.contract.validate import Error, RawLine, parse_submission, split_submission
from orchestration.registry import audit, judging
from orchestration.registry.landing import Receipt

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["cohort.jsonl", 'a"b\\c.json', "caf\u00e9\u202e.jsonl", "\x1b[2J", "x\ny", "\u2028", "", "100%s.jsonl", "%%", "%"]
)
small = st.none() | st.integers(-(2**40), 2**40)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(file=text, record=small, case_id=st.none() | text, revision=small, channel=text, user=st.none() | text,
       body=st.dictionaries(text, small | text, max_size=3), now=st.sampled_from(["2026-11-30T16:00:00.123456+00:00", "x"]))
def test_landing_and_audit_lines_are_what_orjson_writes(file, record, case_id, revision, channel, user, body, now):
    content_hash = "0123456789abcdef0123456789abcdef"
    line = judging.landing_line(case_id, revision, content_hash, orjson.dumps(file), orjson.dumps(record), orjson.dumps(channel), orjson.dumps(body))
    envelope = {"case_id": case_id or "", "revision": revision, "content_hash": content_hash, "submitted_at": now,
                "source_file": file, "record_index": record, "channel": channel, "record": body}
    assert line.count(judging.SUBMITTED_AT) == 1
    assert line.replace(judging.SUBMITTED_AT, now.encode()) == orjson.dumps(envelope) + b"\n"

    template = judging.audit_line(orjson.dumps(file), orjson.dumps(record), case_id, revision, orjson.dumps(channel), user)
    for status in ("accepted", "duplicate"):
        event = {"event": "submission", "file": file, "record": record, "case_id": case_id, "revision": revision,
                 "status": status, "batch_id": "B-1", "channel": channel, **({"user": user} if user else {})}
        expected = audit.encode([event])
        at = orjson.loads(expected)["at"]
        assert template % (at.encode(), status.encode(), b"B-1") == expected


def _lines_reference(data: bytes) -> list[tuple[int, bytes]]:
    """What reading the file line by line gives: (line number, line with its newline), BOM dropped, blanks skipped."""
    out = []
    for n, line in enumerate(data.splitlines(keepends=True) if b"\r" not in data else _split_nl(data), 1):
        if n == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if line.strip():
            out.append((n, line))
    return out


def _split_nl(data: bytes) -> list[bytes]:
    parts = data.split(b"\n")
    lines = [p + b"\n" for p in parts[:-1]]
    return lines + ([parts[-1]] if parts[-1] else [])


line_st = st.sampled_from([b'{"a":1}', b"", b"   ", b"\t", b'{"b":"\xc2\xb5"}\r', b"[1,2]", b"not json", b"\xef\xbb\xbf{}", b"{}" * 40])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(lines=st.lists(line_st, max_size=40), bom=st.booleans(), final_newline=st.booleans(), block=st.integers(1, 120))
def test_blocks_give_the_lines_of_the_file(lines, bom, final_newline, block):
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    old = validate.BLOCK_BYTES
    validate.BLOCK_BYTES = block
    try:
        for source in (data,):
            items = list(split_submission(source, "f.jsonl"))
            raw = [(x.lineno, x.line) for x in items if type(x) is RawLine]
            assert raw == _lines_reference(data)
            blocks = list(split_submission(source, "f.jsonl", blocks=True))
            from_blocks = [(x.lineno, x.line) for b in blocks if type(b) is validate.RawBlock for x in b.raw_lines()]
            assert from_blocks == raw
            empty = [x for x in items if type(x) is validate.ParsedRecord]
            assert bool(empty) == (not raw) and bool(empty) == bool([b for b in blocks if type(b) is validate.ParsedRecord])
    finally:
        validate.BLOCK_BYTES = old


def test_blocks_of_a_file_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(validate, "BLOCK_BYTES", 7)
    data = b"\xef\xbb\xbf" + b'{"a":1}\n\n  \n{"b":2}\r\n' * 5 + b'{"c":3}'
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    a = [(p.record, p.obj, p.verbatim()) for p in parse_submission(validate.FileSource(path), "f.jsonl")]
    b = [(p.record, p.obj, p.verbatim()) for p in parse_submission(data, "f.jsonl")]
    assert a == b and [r for r, _, _ in a] == [1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21]


@pytest.mark.parametrize("data", [b"x" * 10, b"\n" * 100, (b"y" * 300 + b"\n") * 50, b"a\nb\n" * 1000, b""])
def test_count_newlines(data):
    assert validate._count_newlines(data) == data.count(b"\n")


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(before=st.lists(st.sampled_from([b"ab", b"\n", b"\xc2\xb5", b"{}", b"\r\n"]), max_size=30),
       bad=st.sampled_from([b"\xff", b"\xc2", b"\xe2\x82", b"\xc0\xaf"]), after=st.sampled_from([b"", b"x\n", b"\xc2\xb5"]),
       slice_size=st.integers(1, 9))
def test_utf8_error_names_line_and_column(before, bad, after, slice_size):
    data = b"".join(before) + bad + after
    old = validate._SLICE
    validate._SLICE = slice_size
    try:
        got = validate._utf8_error(data, "f.jsonl")
    finally:
        validate._SLICE = old
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        pos = exc.start
        assert got is not None
        message = got.error.message
        if "ends inside a character" in message:
            assert pos + len(data[pos:]) == len(data)
        else:
            line = data[:pos].count(b"\n") + 1
            column = pos - data[:pos].rfind(b"\n")
            assert message == f"file is not UTF-8 text: byte 0x{data[pos]:02x} at line {line}, column {column}"
    else:
        assert got is None


def _receipt_lines_reference(r) -> list[str]:
    """The receipt format written out plainly (receipt_text computes it chunk-wise, with caches)."""
    where = printable(r.file) + ("" if r.record is None else (f":{r.record}" if r.file.lower().endswith((".jsonl", ".ndjson")) else f"[{r.record}]"))
    case = printable(r.case_id) if r.case_id else "-"
    rev = f" r{r.revision}" if r.revision is not None else ""
    return [f"{r.status.upper():<12} {where}  {case}{rev}", *(f"    {printable(e.path)}: {printable(e.message)}" for e in r.errors)]


def test_receipt_text_and_receipt_lines_follow_the_receipt_format():
    receipts = [
        Receipt("c.jsonl", 3, "SYN-1", "accepted", [], 1),
        Receipt("c.jsonl", 4, "SYN-2", "duplicate", [], 2),
        Receipt("a.json", 0, None, "quarantined", [Error("$", "is not valid JSON")], None),
        Receipt("a.json", None, None, "quarantined", [Error("$", "file is empty")], None),
        Receipt("caf\u00e9\x1b[2J.JSONL", 7, "caf\u00e9\u202e-1", "quarantined", [Error("case_id\r", "bad\x07")], 1),
        Receipt("x.ndjson", 1, "", "refused", [Error("site_id", "not yours")], None),
        Receipt("c.jsonl", 5, "SYN-1\nX", "quarantined", [Error("a\u2028b", "line\nbreak")], 2),
    ]
    assert receipt_text(receipts) == "".join(ln + "\n" for r in receipts for ln in _receipt_lines_reference(r))
    for r in receipts:
        assert receipt_lines(r) == _receipt_lines_reference(r)
    assert receipt_text([]) == ""


@pytest.mark.parametrize("workers", [0, 2])
def test_a_landed_record_is_its_canonical_form(tmp_path, monkeypatch, workers):
    """Whatever the order of the submitted keys, and on every path (the worker's shortcut, the
    validator with the bytes its read wrote, the validator after it normalised the record): the
    landing line holds the record with sorted keys, and its content hash is the hash of those bytes
    (revision stated) or of the record with revision 1 filled in (revision left out)."""
    import hashlib
    import json

    from orchestration.config import Home
    from orchestration.registry import landing
    from orchestration.synthetic.generate import generate_records

    home = Home(tmp_path / "home").ensure()
    monkeypatch.setattr(landing, "WORKERS", workers)
    monkeypatch.setattr(landing, "PARALLEL_MIN_BYTES", 1)
    pools: list = []
    real_pool = judging.WorkerPool
    monkeypatch.setattr(judging, "WorkerPool", lambda n: pools.append(n) or real_pool(n))
    recs = list(generate_records(40, seed=5))
    for r in recs[::2]:
        r.pop("revision", None)

    def reverse(v):  # keys in reverse order, nested ones too
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        if isinstance(v, list):
            return [reverse(x) for x in v]
        return v

    texts = [json.dumps(reverse(r), ensure_ascii=i % 3 == 0).encode() for i, r in enumerate(recs)]
    # a whole number written as a float: the validator reads it as an int, in place
    texts[5] = texts[5].replace(b'"age_years": %d' % recs[5]["patient"]["age_years"], b'"age_years": %d.0' % recs[5]["patient"]["age_years"])
    assert b".0" in texts[5]
    receipts = landing.submit(home, [("c.jsonl", b"".join(t + b"\n" for t in texts))])
    assert [r.status for r in receipts] == ["accepted"] * 40
    assert pools == ([workers] if workers else [])
    lines = [ln for f in sorted(home.landing_batches.glob("*.jsonl")) for ln in f.read_bytes().splitlines()]
    assert len(lines) == 40
    for ln, rec in zip(lines, recs):
        body = ln[ln.index(b',"record":') + len(b',"record":'):-1]
        assert body == orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)
        stated = "revision" in rec
        expect = judging.content_hash(rec)
        assert orjson.loads(ln)["content_hash"] == expect[1]
        assert (hashlib.blake2b(body, digest_size=16).hexdigest() == expect[1]) is stated


# Content hashes as the registry computed them before landed records were written in their
# canonical form (commit ea72c81): duplicate detection compares new records with every landed one,
# so these values may never change.
KNOWN_HASHES = {
    "seed": "b151ec6f1b92820a332fc1495a143de5",
    "minimal": "233a313c3b03f1cfa05963e9fec3396a",
    "no_revision": "233a313c3b03f1cfa05963e9fec3396a",  # revision 1 filled in: the same submission
    "whole_float_age": "d7f949c5597ebead22e20191619e6dab",
}


@pytest.mark.parametrize("name", sorted(KNOWN_HASHES))
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_content_hashes_never_change(name, ensure_ascii):
    import json

    from tests.support import record, seed_case

    rec = {
        "seed": seed_case,
        "minimal": record,
        "no_revision": lambda: record(revision=...),
        "whole_float_age": lambda: {**record(), "patient": {**record()["patient"], "age_years": 67.0}},
    }[name]()
    line = json.dumps(rec, ensure_ascii=ensure_ascii).encode()
    (p,) = list(parse_submission(line + b"\n", "x.jsonl"))
    assert judging.judge(p, None, year=2026, channel="cli", user=None).content_hash == KNOWN_HASHES[name]
    fast = judging._certainly_valid_line("x.jsonl", b'"x.jsonl"', b'"cli"', None, 0, line, 2026)
    if isinstance(fast, judging.Verdict):  # the worker's shortcut (not taken for escapes and floats)
        assert fast.content_hash == KNOWN_HASHES[name]
