"""``registry build``'s summary takes the submission totals from the run's check
``nothing_submitted_is_lost`` (the audit log is counted once per build), and counts them itself when
the run has no such evaluation (a run without the ingest step)."""

from __future__ import annotations

from types import SimpleNamespace as NS

from dagster import IntMetadataValue

from orchestration.config import Home
from orchestration.registry import audit
from orchestration.services.build import submission_totals


def _evaluation(check_name: str, **counts: int):
    return NS(event_type_value="ASSET_CHECK_EVALUATION",
              event_specific_data=NS(check_name=check_name, metadata={k: IntMetadataValue(v) for k, v in counts.items()}))


def _home(tmp_path) -> Home:
    home = Home(tmp_path / "home").ensure()
    audit.append(home, [{"event": "submission", "status": "accepted"}] * 3 + [{"event": "submission", "status": "quarantined"}])
    return home


def test_the_totals_of_the_runs_check(tmp_path):
    events = [NS(event_type_value="STEP_START", event_specific_data=None),
              _evaluation("snapshot_matches_warehouse"),
              _evaluation("nothing_submitted_is_lost", submitted=9, accepted=7, duplicate=1, quarantined=1, withdrawals=0)]
    assert submission_totals(_home(tmp_path), events) == {"submitted": 9, "accepted": 7, "duplicate": 1, "quarantined": 1}


def test_counted_from_the_audit_log_without_the_check(tmp_path):
    home = _home(tmp_path)
    expected = {"submitted": 4, "accepted": 3, "duplicate": 0, "quarantined": 1}
    assert submission_totals(home) == expected
    assert submission_totals(home, [_evaluation("nothing_submitted_is_lost", submitted=9)]) == expected  # incomplete
