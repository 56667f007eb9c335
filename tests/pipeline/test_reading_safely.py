"""Reading safely: while ``registry build`` ingests and publishes more cases, every read through
``registry sql`` and through the dashboards' own path (resolve ``published/current``, attach that
version read-only) must answer, with no lock error, and show the old state or the new one, never
a mix of the two."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dashboards import queries
from dashboards.lib.cohort import CohortFilter
from orchestration.config import Home
from orchestration.synthetic.generate import generate_records
from orchestration.warehouse import snapshot
from tests.support import run_cli, write_jsonl

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("reading_safely")]

N_BASE = 300
N_EXTRA = 5_000  # the acceptance check uses 30,000; the mechanism does not depend on the size

#: Several tables in one answer: a mix of two snapshots would pair counts that never coexisted.
STATE_SQL = (
    "SELECT (SELECT count(*) FROM dim_cases) AS cases, (SELECT count(*) FROM fct_lab_results) AS labs, "
    "(SELECT count(*) FROM fct_organ_involvement) AS organs, (SELECT count(DISTINCT case_id) FROM fct_lab_results) AS lab_cases"
)


def state(home: Home) -> dict:
    p = run_cli("sql", "--format", "json", STATE_SQL, home=home, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)[0]


def test_reads_answer_old_or_new_state_during_a_build(tmp_path):
    home = Home(tmp_path / "home").ensure()
    write_jsonl(tmp_path / "base.jsonl", list(generate_records(N_BASE, seed=21)))
    write_jsonl(tmp_path / "extra.jsonl", list(generate_records(N_EXTRA, seed=22)))
    assert run_cli("submit", str(tmp_path / "base.jsonl"), home=home).returncode == 0
    p = run_cli("build", home=home)
    assert p.returncode == 0, p.stdout + p.stderr
    old = state(home)
    assert old["cases"] == N_BASE
    assert run_cli("submit", str(tmp_path / "extra.jsonl"), home=home).returncode == 0
    assert state(home) == old  # submitting publishes nothing

    env = {**os.environ, "REGISTRY_HOME": str(home.root)}
    env.pop("REGISTRY_DEBUG", None)
    build = subprocess.Popen([str(Path(sys.executable).with_name("registry")), "build"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    # the dashboards' path, in this process, as fast as it goes
    dash_answers: list[tuple] = []
    dash_errors: list[str] = []
    stop = threading.Event()

    def dashboard_reader() -> None:
        while not stop.is_set():
            try:
                con = snapshot.connect(home, database=snapshot.current_database(home))
                try:
                    size = queries.cohort_size(con, CohortFilter())["n_cases"]
                    labs = con.execute("SELECT count(*) FROM fct_lab_results").fetchone()[0]
                finally:
                    con.close()
                dash_answers.append((size, labs))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                dash_errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.05)

    reader = threading.Thread(target=dashboard_reader, daemon=True)
    reader.start()
    cli_answers: list[dict] = []
    cli_failures: list[str] = []
    try:
        while build.poll() is None:
            p = run_cli("sql", "--format", "json", STATE_SQL, home=home, timeout=120)
            if p.returncode != 0 or "lock" in p.stderr.lower():
                cli_failures.append(f"exit {p.returncode}: {p.stderr.strip()[:500]}")
            else:
                cli_answers.append(json.loads(p.stdout)[0])
    finally:
        stop.set()
        reader.join(timeout=30)
        out = build.communicate(timeout=600)[0]
    assert build.returncode == 0, out
    new = state(home)
    assert new["cases"] == N_BASE + N_EXTRA and new != old

    assert not cli_failures, cli_failures
    assert not dash_errors, dash_errors[:5]
    assert len(cli_answers) >= 3, f"only {len(cli_answers)} reads while the build ran"
    assert cli_answers[0] == old  # the build had not published yet
    mixed = [a for a in cli_answers if a not in (old, new)]
    assert not mixed, mixed[:5]
    dash_states = {(old["cases"], old["labs"]), (new["cases"], new["labs"])}
    assert dash_answers and set(dash_answers) <= dash_states, set(dash_answers) - dash_states
