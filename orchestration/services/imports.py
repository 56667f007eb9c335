"""Import and export in the formats sites keep their cases in: REDCap and spreadsheets.

Import converts a file into contract-v1 records (:mod:`orchestration.contract.formats`) and lands
them through :func:`orchestration.registry.landing.submit`: the same validator, receipts,
quarantine and audit as ``registry submit``; the audit records the channel (``redcap``, ``xlsx`` or
``csv``). Every receipt's errors are then mapped from JSON paths (``labs[2].unit``) to the format's
coordinates (``record 17, labs #3, lab_unit`` or ``labs!D7``).

A file that cannot be read at all is quarantined whole with the reason (its content is not kept,
only its size and SHA-256: it may be anything, and nothing of it lands).

Export reads the registry's current records from the landing zone: for each case the highest
accepted revision (withdrawn cases are purged from the landing zone and skipped). It needs no build
and gives back exactly what was submitted, so exporting and importing again yields duplicates (no-ops).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence
from urllib.parse import urlparse

import orjson
from redcap import Project
from redcap.request import RedcapError

from orchestration.config import SEED_CASES_DIR, Home
from orchestration.contract.formats import redcap, xlsx
from orchestration.contract.formats.flat import FlatConversion
from orchestration.contract.validate import Error
from orchestration.registry.landing import ACCEPTED, DUPLICATE, QUARANTINED, REFUSED, Receipt, submit
from orchestration.registry.withdrawals import withdrawn_case_ids

CHANNELS = ("redcap", "xlsx", "csv")


@dataclass
class FormatReceipt:
    """A landing receipt in the words of the format the records came in."""

    receipt: Receipt
    where: str  # "record 17", "cases!5", or "whole file"
    errors: list[Error] = field(default_factory=list)  # path = the format's coordinate
    json_paths: list[str] = field(default_factory=list)

    # the attributes of a landing Receipt, so that a page shows both kinds with the same code
    @property
    def status(self) -> str:
        return self.receipt.status

    @property
    def file(self) -> str:
        return self.receipt.file

    @property
    def record(self) -> int | None:
        return self.receipt.record

    @property
    def case_id(self) -> str | None:
        return self.receipt.case_id

    @property
    def revision(self) -> int | None:
        return self.receipt.revision

    @property
    def quarantine_id(self) -> str | None:
        return self.receipt.quarantine_id

    def as_dict(self) -> dict[str, Any]:
        d = self.receipt.as_dict()
        d["where"] = self.where
        d["errors"] = [{"path": e.path, "message": e.message, "json_path": jp} for e, jp in zip(self.errors, self.json_paths)]
        return d


class ImportProblem(Exception):
    """An import that cannot start (no such API, a bad token file): one clear line."""


def counts(receipts: Iterable[FormatReceipt]) -> dict[str, int]:
    n = {ACCEPTED: 0, DUPLICATE: 0, QUARANTINED: 0}
    for r in receipts:
        n[r.status] += 1
    return n


# ----------------------------------------------------------------------------- landing converted records


def _land(home: Home, name: str, converted: Sequence[FlatConversion], channel: str, *,
          allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[FormatReceipt]:
    if not converted:
        return []
    records = [c.record for c in converted]
    try:
        payload = orjson.dumps(records)
    except TypeError:  # a whole number beyond 64 bits, as typed: the validator reports it at its place
        payload = json.dumps(records).encode()
    out = []
    for r in submit(home, [(name, payload)], channel=channel, allowed_sites=allowed_sites, user=user):
        conv = converted[r.record] if r.record is not None and r.record < len(converted) else None
        if conv is None:  # pragma: no cover - the array is ours, every receipt names one of its records
            out.append(FormatReceipt(r, "whole file", list(r.errors), [e.path for e in r.errors]))
            continue
        errors, paths = [], []
        for e in r.errors:
            if conv.only_own_errors and e.path not in conv.messages and r.status != REFUSED:
                continue
            where, message = conv.map_error(e.path, e.message)
            errors.append(Error(where, message))
            paths.append(e.path)
        out.append(FormatReceipt(r, conv.where, errors, paths))
    return out


def _land_unreadable(home: Home, name: str, data: bytes, fmt: str, problem: str, channel: str, *,
                     user: str | None = None) -> list[FormatReceipt]:
    """Quarantine a file that cannot be read, whole, with the reason in the format's words. Its
    content is not kept, only its size and SHA-256: an unreadable upload may be anything (a
    hospital's patient list), and it cannot be corrected in the quarantine anyway: the site fixes
    the file and imports it again."""
    kept = [fmt, problem, {"bytes": len(data), "sha256": hashlib.sha256(bytes(data)).hexdigest()}]
    (r,) = submit(home, [(name, orjson.dumps([kept]))], channel=channel, user=user)
    r.record = None
    return [FormatReceipt(r, "whole file", [Error(name, problem)], ["$"])]


# ----------------------------------------------------------------------------- REDCap


def import_redcap(home: Home, name: str, data: bytes, *, allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[FormatReceipt]:
    """Land a REDCap records export (CSV) of the registry's project."""
    try:
        converted = redcap.read_export(data, name)
    except redcap.FileProblem as exc:
        return _land_unreadable(home, name, data, "redcap", f"{exc}", "redcap", user=user)
    if not converted:
        return _land_unreadable(home, name, data, "redcap", "has no records", "redcap", user=user)
    return _land(home, name, converted, "redcap", allowed_sites=allowed_sites, user=user)


def fetch_redcap_api(url: str, token: str, *, timeout: float = 60) -> bytes:
    """The records export of a REDCap project through its API (PyCap), as CSV with raw values and
    data access groups. Refuses to send a token over plain http except to this machine."""
    parsed = urlparse(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ImportProblem(f"--api-url {url!r} is not an http(s) URL")
    if parsed.scheme == "http" and not _is_local(parsed.hostname):
        raise ImportProblem("--api-url must use https (the token would cross the network in clear text)")
    if not parsed.path.endswith("/api/"):
        raise ImportProblem(f"--api-url must end with /api/ (REDCap's API endpoint), e.g. https://{parsed.hostname}/api/")
    if len(token) != 32 or not token.isalnum():
        raise ImportProblem("the token file must hold the project's 32-character REDCap API token")
    try:
        project = Project(url, token, timeout=timeout)
    except AssertionError:  # PyCap's message would repeat the token: never print it
        raise ImportProblem("REDCap refused the URL or token format") from None
    try:
        text = project.export_records(format_type="csv", raw_or_label="raw", export_data_access_groups=True)
    except RedcapError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "the API refused the request"
        raise ImportProblem(f"REDCap API: {first[:300]}") from None
    except Exception as exc:  # connection refused, timeout, TLS ...
        raise ImportProblem(f"REDCap API at {parsed.hostname} cannot be reached ({type(exc).__name__})") from None
    return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def import_redcap_api(home: Home, url: str, token: str) -> list[FormatReceipt]:
    data = fetch_redcap_api(url, token)
    return import_redcap(home, f"redcap-api:{urlparse(url).hostname}", data)


# ----------------------------------------------------------------------------- spreadsheets


def import_xlsx(home: Home, name: str, data: bytes, *, allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[FormatReceipt]:
    """Land the cases of a workbook (the registry's template, filled in)."""
    try:
        converted = xlsx.read_workbook(data)
    except xlsx.FileProblem as exc:
        return _land_unreadable(home, name, data, "xlsx", f"{exc}", "xlsx", user=user)
    if not converted:
        return _land_unreadable(home, name, data, "xlsx", "has no cases (the sheet cases is empty)", "xlsx", user=user)
    return _land(home, name, converted, "xlsx", allowed_sites=allowed_sites, user=user)


def import_csv_sheets(home: Home, files: Sequence[tuple[str, bytes]], *, allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[FormatReceipt]:
    """Land the cases of CSV files of the template's sheets (cases.csv, labs.csv, ...)."""
    name = " + ".join(n for n, _ in files)
    try:
        converted = xlsx.read_csv_sheets(list(files))
    except xlsx.FileProblem as exc:
        joined = b"".join(b"--- " + n.encode() + b"\n" + bytes(d) for n, d in files)
        return _land_unreadable(home, name, joined, "csv", f"{exc}", "csv", user=user)
    if not converted:
        return _land_unreadable(home, name, b"", "csv", "has no cases (cases.csv is empty or missing)", "csv", user=user)
    return _land(home, name, converted, "csv", allowed_sites=allowed_sites, user=user)


# ----------------------------------------------------------------------------- the /submit page


def import_uploads(home: Home, files: Sequence[tuple[str, bytes]], *, allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[FormatReceipt]:
    """Land uploaded REDCap exports, workbooks and CSV sheets (for the ``/submit`` page): a
    ``.xlsx`` is a workbook; a ``.csv`` with a ``record_id`` column is a REDCap export; the other
    ``.csv`` files are sheets of the template (``cases.csv``, ``labs.csv``, ...), imported together.
    JSON files are not handled here: they go to :func:`~orchestration.registry.landing.submit`."""
    out: list[FormatReceipt] = []
    sheets = []
    for name, data in files:
        low = name.lower()
        if low.endswith((".xlsx", ".xlsm")):
            out += import_xlsx(home, name, data, allowed_sites=allowed_sites, user=user)
        elif (low.endswith(".csv") and _first_line(data).startswith(b"record_id")) or xlsx.sheet_of(name) is None:
            out += import_redcap(home, name, data, allowed_sites=allowed_sites, user=user)
        else:
            sheets.append((name, data))
    if sheets:
        out += import_csv_sheets(home, sheets, allowed_sites=allowed_sites, user=user)
    return out


UPLOAD_TYPES = ("json", "jsonl", "xlsx", "csv")


def submit_uploads(home: Home, files: Sequence[tuple[str, bytes]], *, allowed_sites: frozenset[str] | None = None, user: str | None = None) -> list[Any]:
    """Everything uploaded on ``/submit`` in one call: JSON and JSON Lines go to
    :func:`~orchestration.registry.landing.submit` (channel ``upload``), REDCap exports, workbooks
    and CSV sheets to :func:`import_uploads`. The receipts of both kinds have the same attributes
    (``file``, ``record``, ``case_id``, ``revision``, ``status``, ``errors``, ``quarantine_id``).
    ``allowed_sites`` (site_staff's sites) refuses a record of another site, whatever its format."""
    as_json = [(n, d) for n, d in files if n.lower().endswith((".json", ".jsonl", ".ndjson"))]
    others = [(n, d) for n, d in files if not n.lower().endswith((".json", ".jsonl", ".ndjson"))]
    out: list[Any] = list(submit(home, as_json, channel="upload", allowed_sites=allowed_sites, user=user)) if as_json else []
    return out + (import_uploads(home, others, allowed_sites=allowed_sites, user=user) if others else [])


def is_fhir_bundle(name: str, data: bytes) -> bool:
    """A ``.json`` upload that is a FHIR Bundle (its ``resourceType`` near the start), not a case record."""
    if not name.lower().endswith(".json"):
        return False
    head = bytes(data[:4096])
    return b'"resourceType"' in head and b'"Bundle"' in head


def _first_line(data: bytes) -> bytes:
    return bytes(data[:4096]).removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip().strip(b'"')


def template_xlsx() -> bytes:
    """The spreadsheet template (for the download on ``/submit``), with the seed case as example."""
    examples = [orjson.loads(p.read_bytes()) for p in sorted(SEED_CASES_DIR.glob("*.json"))]
    return xlsx.write_workbook([], example=examples)


# ----------------------------------------------------------------------------- export


def current_records(home: Home) -> list[dict[str, Any]]:
    """The registry's current records: the highest accepted revision of each case, from the
    landing zone, sorted by case_id (withdrawn cases excluded)."""
    best: dict[str, tuple[int, dict[str, Any]]] = {}
    if home.landing_batches.exists():
        for f in sorted(home.landing_batches.glob("*.jsonl")):
            with open(f, "rb") as fh:
                for line in fh:
                    if not line.strip():
                        continue
                    row = orjson.loads(line)
                    cid, rev = row["case_id"], row["revision"]
                    prior = best.get(cid)
                    if prior is None or rev > prior[0]:
                        best[cid] = (rev, row["record"])
    withdrawn = withdrawn_case_ids(home)
    return [best[c][1] for c in sorted(best) if c not in withdrawn]


def export_redcap(home: Home) -> tuple[bytes, int]:
    records = current_records(home)
    return redcap.write_export(records), len(records)


def export_xlsx(home: Home) -> tuple[bytes, int]:
    records = current_records(home)
    return xlsx.write_workbook(records), len(records)
