"""Set-based ingestion of the landing zone into the warehouse's ``raw`` schema.

New landing batches (those not yet in ``raw.ingested_batches``) are read in one ``read_json`` call
with an explicit schema (built from the reference vocabularies), and unnested into the raw tables
``case_records``, ``labs``, ``organs``, ``lesions`` and ``treatments`` in a single transaction.
A batch is ingested once; a record version ``(case_id, revision)`` is stored once even if it
somehow reached the landing zone twice, so ingesting the same files again leaves the warehouse
unchanged. The quarantine is loaded the same way (without payloads) for the quality pages.

The batches are parsed once, into a temporary table, from which every raw table is filled. A
duplicate record version is looked for on the keys alone and removed only when there is one (a
window over the whole records, on every load, cost ~0.6 s of a 100k-case ingest). After a
successful dbt build, :func:`clear_pending` moves the recomputed cases to ``raw.case_changes``
under a new build number, so that publishing can patch only their rows (see ``publish.py``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from orchestration.config import Home
from orchestration.contract.reference import load
from orchestration.registry import journal
from orchestration.registry.withdrawals import withdrawn_case_ids
from orchestration.warehouse.holders import recorded_child
from orchestration.warehouse.locks import warehouse_lock
from orchestration.warehouse.publish import last_test_run, newest_change, published_watermark


def _struct(fields: dict[str, str]) -> str:
    return "STRUCT(" + ", ".join(f'"{k}" {v}' for k, v in fields.items()) + ")"


def record_struct() -> str:
    ref = load()
    return _struct(
        {
            "schema_version": "INTEGER",
            "case_id": "VARCHAR",
            "revision": "BIGINT",
            "site_id": "VARCHAR",
            "source": "VARCHAR",
            "citation": "VARCHAR",
            "index_year": "INTEGER",
            "onset_day": "INTEGER",
            "patient": _struct({"age_years": "INTEGER", "sex": "VARCHAR", "bmi": "DOUBLE"}),
            "kidney": _struct({"status": "VARCHAR", "dialysis_modality": "VARCHAR", "dialysis_vintage_months": "INTEGER"}),
            "comorbidities": _struct({c: "BOOLEAN" for c in ref.codes("comorbidity")}),
            "exposures": _struct({c: "BOOLEAN" for c in ref.codes("exposure")}),
            "diagnosis": _struct({"basis": "VARCHAR", "day": "INTEGER"}),
            "lesions": _struct({"site": "VARCHAR", "laterality": "VARCHAR", "features": "VARCHAR[]"}) + "[]",
            "organs": _struct({"organ": "VARCHAR", "evidence": "VARCHAR"}) + "[]",
            "labs": _struct({"analyte": "VARCHAR", "value": "DOUBLE", "unit": "VARCHAR", "day": "INTEGER", "ref_low": "DOUBLE", "ref_high": "DOUBLE"}) + "[]",
            "treatments": _struct({"treatment": "VARCHAR", "day": "INTEGER"}) + "[]",
            "outcome": _struct({"vital_status": "VARCHAR", "followup_days": "INTEGER", "cause_of_death": "VARCHAR", "autopsy": "BOOLEAN", "wound_healing": "VARCHAR"}),
        }
    )


# The list is emptied by replacing the table, never by DELETE: with the primary key's index, deleting
# every row removes the keys one by one at commit (measured, issue 16: 0.9 s for 100k pending cases,
# 7.7 s for a million; replacing the table: 0.05 s). The table itself is unchanged, so processes of
# older versions (their clear is a DELETE) and this one work on the same warehouse.
PENDING_DDL = "CREATE TABLE IF NOT EXISTS raw.pending_cases (case_id VARCHAR PRIMARY KEY)"


def _ddl() -> list[str]:
    ref = load()
    comorb = _struct({c: "BOOLEAN" for c in ref.codes("comorbidity")})
    expo = _struct({c: "BOOLEAN" for c in ref.codes("exposure")})
    return [
        "CREATE SCHEMA IF NOT EXISTS raw",
        f"""CREATE TABLE IF NOT EXISTS raw.case_records (
            batch_id VARCHAR NOT NULL, case_id VARCHAR NOT NULL, revision BIGINT NOT NULL, content_hash VARCHAR NOT NULL,
            submitted_at TIMESTAMPTZ, source_file VARCHAR, record_index BIGINT, channel VARCHAR,
            schema_version INTEGER, site_id VARCHAR, source VARCHAR, citation VARCHAR, index_year INTEGER, onset_day INTEGER,
            age_years INTEGER, sex VARCHAR, bmi DOUBLE,
            kidney_status VARCHAR, dialysis_modality VARCHAR, dialysis_vintage_months INTEGER,
            comorbidities {comorb}, exposures {expo},
            diagnosis_basis VARCHAR, diagnosis_day INTEGER,
            vital_status VARCHAR, followup_days INTEGER, cause_of_death VARCHAR, autopsy BOOLEAN, wound_healing VARCHAR,
            ingested_at TIMESTAMPTZ NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS raw.labs (
            batch_id VARCHAR, case_id VARCHAR NOT NULL, revision BIGINT NOT NULL, lab_index INTEGER NOT NULL,
            analyte VARCHAR, value DOUBLE, unit VARCHAR, day INTEGER, ref_low DOUBLE, ref_high DOUBLE)""",
        """CREATE TABLE IF NOT EXISTS raw.organs (
            batch_id VARCHAR, case_id VARCHAR NOT NULL, revision BIGINT NOT NULL, organ_index INTEGER NOT NULL,
            organ VARCHAR, evidence VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS raw.lesions (
            batch_id VARCHAR, case_id VARCHAR NOT NULL, revision BIGINT NOT NULL, lesion_index INTEGER NOT NULL,
            site VARCHAR, laterality VARCHAR, features VARCHAR[])""",
        """CREATE TABLE IF NOT EXISTS raw.treatments (
            batch_id VARCHAR, case_id VARCHAR NOT NULL, revision BIGINT NOT NULL, treatment_index INTEGER NOT NULL,
            treatment VARCHAR, day INTEGER)""",
        """CREATE TABLE IF NOT EXISTS raw.ingested_batches (
            batch_id VARCHAR PRIMARY KEY, n_records BIGINT, ingested_at TIMESTAMPTZ)""",
        """CREATE TABLE IF NOT EXISTS raw.quarantine (
            quarantine_id VARCHAR, batch_id VARCHAR, source_file VARCHAR, record BIGINT, case_id VARCHAR, revision BIGINT,
            errors STRUCT(path VARCHAR, message VARCHAR)[], quarantined_at TIMESTAMPTZ, channel VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS raw.quarantine_resolutions (
            quarantine_id VARCHAR, resolved_at TIMESTAMPTZ, note VARCHAR)""",
        # Cases whose analyst-facing rows must be recomputed by the next dbt build (new versions,
        # withdrawals). The per-case dbt models rebuild only these; cleared after a successful build.
        PENDING_DDL,
        # The cases each successful dbt build recomputed, numbered by build (seq): publishing patches
        # only their rows into a copy of the current snapshot (see publish.py). Rows the current
        # snapshot already includes are dropped at the next build.
        """CREATE TABLE IF NOT EXISTS raw.case_changes (case_id VARCHAR NOT NULL, seq BIGINT NOT NULL)""",
        # Each run of dbt's data tests (numbered by run): passed or not, the newest build whose
        # changes it covered and the fingerprint of what it ran with (see tested.py).
        """CREATE TABLE IF NOT EXISTS raw.data_test_runs (
            run BIGINT NOT NULL, passed BOOLEAN NOT NULL, seq BIGINT NOT NULL, fingerprint VARCHAR NOT NULL,
            scope VARCHAR, tested_at TIMESTAMPTZ NOT NULL)""",
    ]


MEMORY_LIMIT = "1GB"  # keeps the pipeline well inside 2 GB at a million cases


@dataclass
class IngestResult:
    batches: int = 0
    records: int = 0
    skipped_versions: int = 0
    quarantine_batches: int = 0
    quarantined: int = 0
    withdrawn: int = 0
    seconds: float = 0.0
    batch_ids: list[str] = field(default_factory=list)


def _quote_list(paths: list[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in _ddl():
        con.execute(stmt)


def ingest(home: Home, con: duckdb.DuckDBPyConnection | None = None) -> IngestResult:
    """Load every landing and quarantine batch not yet in the warehouse. Idempotent."""
    t0 = time.perf_counter()
    home.ensure()
    own = con is None
    con = con or duckdb.connect(str(home.warehouse), config={"memory_limit": MEMORY_LIMIT})
    res = IngestResult()
    try:
        ensure_schema(con)
        done = {r[0] for r in con.execute("SELECT batch_id FROM raw.ingested_batches").fetchall()}
        # listed under the landing lock after crash recovery: only committed batches, never one
        # a submitter is still writing (or one a crash left half-written)
        with journal.landing_lock(home):
            journal.recover(home)
            landing_files = sorted(home.landing_batches.glob("*.jsonl"))
            quarantine_files = sorted(home.quarantine_batches.glob("*.jsonl"))
        new = [p for p in landing_files if p.stem not in done]
        withdrawn = sorted(withdrawn_case_ids(home))
        con.execute("BEGIN")
        try:
            if new:
                _ingest_landing(con, new, res, withdrawn)
            _ingest_quarantine(con, home, res, quarantine_files)
            res.withdrawn = _apply_withdrawals(con, withdrawn)
            con.execute("COMMIT")
        except BaseException:
            # DuckDB may have aborted the transaction itself (out of disk space): then ROLLBACK
            # fails with "no transaction is active" and would hide the real error
            try:
                con.execute("ROLLBACK")
            except duckdb.Error:
                pass
            raise
        if own:
            con.execute("CHECKPOINT")
    finally:
        if own:
            con.close()
    res.seconds = time.perf_counter() - t0
    return res


class BackgroundIngest:
    """:func:`ingest` in a thread, started by ``registry build`` before it imports Dagster and dbt:
    DuckDB releases the GIL, so those ~3 s of imports, the build's other preparations (its Dagster
    instance, its job, the dbt project; ``services/build.py``) and the ingest of ~100k cases overlap.
    Ingestion is idempotent: the run's own ingest step then finds nothing new (or only what landed
    meanwhile) and reports both. On any failure :meth:`result` is None, and the run's ingest step
    repeats the work and reports the error properly. It does nothing while a dbt child of an older
    registry version is on record (the run's ingest step deals with that first)."""

    def __init__(self, home: Home):
        self._home = home
        self._result: IngestResult | None = None
        self._thread = threading.Thread(target=self._work, name="early-ingest", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            with warehouse_lock(self._home):
                if not recorded_child(self._home):
                    self._result = ingest(self._home)
        except Exception:  # noqa: BLE001 - the run's ingest step repeats it and reports the error
            pass

    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self) -> IngestResult | None:
        self._thread.join()
        return self._result


def ingest_in_background(home: Home) -> BackgroundIngest:
    return BackgroundIngest(home)


def _ingest_landing(con: duckdb.DuckDBPyConnection, files: list[Path], res: IngestResult, withdrawn: list[str]) -> None:
    columns = {
        "case_id": "VARCHAR",
        "revision": "BIGINT",
        "content_hash": "VARCHAR",
        "submitted_at": "VARCHAR",
        "source_file": "VARCHAR",
        "record_index": "BIGINT",
        "channel": "VARCHAR",
        "record": record_struct(),
    }
    cols_sql = "{" + ", ".join(f"'{k}': '{v}'" for k, v in columns.items()) + "}"
    # The records need not keep the files' order: every later step orders explicitly (the duplicate
    # check by batch and record, dbt by its keys). Measured (issue 16) at a million cases in 100
    # batches: 6.6 s -> 4.8 s for this statement, and less memory; no change at 100k. The setting is
    # the database instance's (DuckDB: global), so it is reset whatever happens; nothing else uses the
    # warehouse meanwhile (this runs under the warehouse lock).
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE new_records AS
            SELECT parse_filename(filename, true) AS batch_id, * EXCLUDE (filename)
            FROM read_json({_quote_list(files)}, format = 'newline_delimited', columns = {cols_sql},
                           filename = true, maximum_object_size = 33554432)
            """
        )
    finally:
        with contextlib.suppress(duckdb.Error):  # an aborted transaction refuses it: the real error goes on
            con.execute("RESET preserve_insertion_order")
    # a record version lands once, even if a crash let it into two batches: the first one is kept.
    # Checked on the keys alone (a window over the whole records would cost a third of the load);
    # the delete runs only when there is a duplicate, which only a crash can leave.
    if con.execute("SELECT count(*) > count(DISTINCT (case_id, revision)) FROM new_records").fetchone()[0]:
        con.execute(
            """
            DELETE FROM new_records WHERE rowid IN (
                SELECT rowid FROM new_records
                QUALIFY row_number() OVER (PARTITION BY case_id, revision ORDER BY batch_id, record_index) > 1)
            """
        )
    con.execute(
        """
        DELETE FROM new_records n
        USING raw.case_records c
        WHERE c.case_id = n.case_id AND c.revision = n.revision
        """
    )
    if withdrawn:  # a withdrawn case is never ingested, even if a batch still held it
        con.execute("DELETE FROM new_records WHERE case_id IN (SELECT unnest(?::VARCHAR[]))", [withdrawn])
    total = con.execute("SELECT count(*) FROM new_records").fetchone()[0]
    con.execute(
        """
        INSERT INTO raw.case_records
        SELECT batch_id, case_id, revision, content_hash, submitted_at::TIMESTAMPTZ, source_file, record_index, channel,
               record.schema_version, record.site_id, record.source, record.citation, record.index_year, record.onset_day,
               record.patient.age_years, record.patient.sex, record.patient.bmi,
               record.kidney.status, record.kidney.dialysis_modality, record.kidney.dialysis_vintage_months,
               record.comorbidities, record.exposures,
               record.diagnosis.basis, record.diagnosis.day,
               record.outcome.vital_status, record.outcome.followup_days, record.outcome.cause_of_death,
               record.outcome.autopsy, record.outcome.wound_healing,
               now()
        FROM new_records
        """
    )
    for table, col, cols in (
        ("labs", "labs", "x.analyte, x.value, x.unit, coalesce(x.day, 0), x.ref_low, x.ref_high"),
        ("organs", "organs", "x.organ, x.evidence"),
        ("lesions", "lesions", "x.site, x.laterality, x.features"),
        ("treatments", "treatments", "x.treatment, x.day"),
    ):
        con.execute(
            f"""
            INSERT INTO raw.{table}
            SELECT batch_id, case_id, revision, i, {cols}
            FROM (
                SELECT batch_id, case_id, revision,
                       unnest(record.{col}) AS x, generate_subscripts(record.{col}, 1) AS i
                FROM new_records
                WHERE len(record.{col}) > 0
            )
            """
        )
    con.execute("INSERT OR IGNORE INTO raw.pending_cases SELECT DISTINCT case_id FROM new_records")
    con.execute(
        """
        INSERT INTO raw.ingested_batches
        SELECT b.batch_id, count(n.case_id), now()
        FROM (SELECT unnest(?::VARCHAR[]) AS batch_id) b LEFT JOIN new_records n USING (batch_id)
        GROUP BY b.batch_id
        """,
        [[p.stem for p in files]],
    )
    con.execute("DROP TABLE new_records")
    res.batches = len(files)
    res.records = total
    res.batch_ids = [p.stem for p in files]


def _ingest_quarantine(con: duckdb.DuckDBPyConnection, home: Home, res: IngestResult, files: list[Path]) -> None:
    done = {r[0] for r in con.execute("SELECT DISTINCT batch_id FROM raw.quarantine").fetchall()}
    new = [p for p in files if p.stem not in done]
    if new:
        cols = (
            "{'quarantine_id': 'VARCHAR', 'source_file': 'VARCHAR', 'record': 'BIGINT', 'case_id': 'VARCHAR', "
            "'revision': 'BIGINT', 'errors': 'STRUCT(path VARCHAR, message VARCHAR)[]', 'quarantined_at': 'VARCHAR', "
            "'channel': 'VARCHAR'}"
        )
        n = con.execute(
            f"""
            INSERT INTO raw.quarantine
            SELECT quarantine_id, parse_filename(filename, true), source_file, record, case_id, revision, errors,
                   quarantined_at::TIMESTAMPTZ, channel
            FROM read_json({_quote_list(new)}, format = 'newline_delimited', columns = {cols}, filename = true,
                           maximum_object_size = 16777216)
            """
        ).fetchone()[0]
        res.quarantine_batches = len(new)
        res.quarantined = n
    resolutions = sorted(home.quarantine_resolutions.glob("*.jsonl")) if home.quarantine_resolutions.exists() else []
    con.execute("DELETE FROM raw.quarantine_resolutions")
    if resolutions:
        con.execute(
            f"""
            INSERT INTO raw.quarantine_resolutions
            SELECT quarantine_id, "at"::TIMESTAMPTZ, note
            FROM read_json({_quote_list(resolutions)}, format = 'newline_delimited',
                           columns = {{'quarantine_id': 'VARCHAR', 'at': 'VARCHAR', 'note': 'VARCHAR'}})
            """
        )


def _apply_withdrawals(con: duckdb.DuckDBPyConnection, ids: list[str]) -> int:
    """Delete withdrawn cases (consent withdrawn) from every raw table. Idempotent."""
    if not ids:
        return 0
    removed = con.execute(
        "DELETE FROM raw.case_records WHERE case_id IN (SELECT unnest(?::VARCHAR[])) RETURNING case_id", [ids]
    ).fetchall()
    for t in ("labs", "organs", "lesions", "treatments", "quarantine"):
        con.execute(f"DELETE FROM raw.{t} WHERE case_id IN (SELECT unnest(?::VARCHAR[]))", [ids])
    gone = sorted({r[0] for r in removed})
    if gone:  # their rows in the per-case marts must go too
        con.execute("INSERT OR IGNORE INTO raw.pending_cases SELECT unnest(?::VARCHAR[])", [gone])
    return len(removed)


def clear_pending(home: Home) -> int:
    """After a successful dbt build: the per-case models are up to date for every pending case. The
    pending cases move to ``raw.case_changes`` under a new sequence number, for the publisher and the
    data tests (``tested.py``). The changes a published snapshot includes are dropped, except those
    after the last passing test run (the warm builder tests when idle, after one or more builds):
    without them its next test run would find a gap in the list and read every row again."""
    published = published_watermark(home)
    con = duckdb.connect(str(home.warehouse), config={"memory_limit": MEMORY_LIMIT})
    try:
        ensure_schema(con)
        con.execute("BEGIN")
        n = con.execute("SELECT count(*) FROM raw.pending_cases").fetchone()[0]
        if published is not None:
            last = last_test_run(con)
            keep_after = min(published, last[1]) if last is not None and last[0] else published
            con.execute("DELETE FROM raw.case_changes WHERE seq <= ?", [keep_after])
        if n:  # numbered after the newest change, also once the published ones are dropped
            con.execute("INSERT INTO raw.case_changes SELECT case_id, ? FROM raw.pending_cases",
                        [newest_change(con, published) + 1])
        # emptied by replacing the table: a DELETE of every row costs seconds at a million cases (PENDING_DDL)
        con.execute("DROP TABLE raw.pending_cases")
        con.execute(PENDING_DDL)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        return n
    finally:
        con.close()
