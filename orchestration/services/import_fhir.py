"""Import FHIR R4 bundles: convert each bundle into one contract-v1 record and submit it through the
one landing (same validator, receipts, quarantine and audit as ``registry submit``; channel ``fhir``).

De-identification: only the constructed record is handed to the landing, never the bundle, so the
quarantine keeps the constructed record (or nothing, for an unreadable bundle). The case id is
``--case-id`` or ``FHIR-`` + the first 24 hex digits of HMAC-SHA256(key, site, identifier system,
identifier value) of the Patient's medical-record identifier (type MR, else the first identifier).
The key is the registry's own secret, ``$REGISTRY_HOME/config/fhir_case_id.key`` (32 random bytes,
hex, mode 0600, created on first use): the same patient exported again gets the same case id, and
nobody without the key can test a guessed identifier against it. Keep the key with the registry's
backups; a new key gives every patient a new case id.

The bundle's file name is recorded as the source file only when it contains no date and none of the
patient's identifiers or names; otherwise ``bundle-<n>.json`` is recorded in its place.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets as _secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from orchestration.config import Home
from orchestration.contract.formats.fhir import Conversion, convert_bundle, looks_like_a_date
from orchestration.registry.landing import Converted, Receipt, submit

KEY_NAME = "fhir_case_id.key"


@dataclass
class ImportResult:
    receipt: Receipt
    notices: list[str] = field(default_factory=list)
    given_name: str = ""  # the path as the user gave it (shown to the user, not stored)


def key_path(home: Home) -> Path:
    return home.root / "config" / KEY_NAME


def case_id_key(home: Home) -> bytes:
    """The registry's secret for case ids, created (0600) on first use."""
    path = key_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(_secrets.token_hex(32) + "\n")
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} does not hold a key: delete it to create a new one (case ids will change)")
    return key.encode("ascii")


def _stored_name(given: str, n: int, conv: Conversion, bundle_secrets: set[str]) -> str:
    base = Path(given).name or f"bundle-{n}.json"
    low = base.lower()
    if looks_like_a_date(base) or any(s in low for s in bundle_secrets) or any(ch.isspace() and ch != " " for ch in base):
        return f"bundle-{n}.json"
    return base


def import_bundles(
    home: Home,
    bundles: Sequence[tuple[str, bytes]],
    *,
    site_id: str,
    index_date: dt.date | None = None,
    case_id: str | None = None,
    source: str = "chart_review",
    revision: int = 1,
) -> list[ImportResult]:
    """Convert and submit each (path as given, bytes) bundle; one receipt per bundle, in order."""
    home.ensure()
    key = None if case_id else case_id_key(home)
    files: list[tuple[str, Converted]] = []
    notices: list[list[str]] = []
    for n, (given, data) in enumerate(bundles, start=1):
        conv = convert_bundle(data, site_id=site_id, index_date=index_date, case_id=case_id, case_id_key=key, source=source, revision=revision)
        name = _stored_name(given, n, conv, conv.secrets)
        files.append(
            (name, Converted(conv.record, tuple(conv.errors), dict(conv.where), frozenset(conv.explained), record=0 if conv.record is not None else None))
        )
        notices.append(conv.notices)
    receipts = submit(home, files, channel="fhir")
    return [ImportResult(r, ns, given) for r, ns, (given, _) in zip(receipts, notices, bundles)]
