"""The ``registry`` command.

Every sub-command prints plain messages, never a Python traceback (set ``REGISTRY_DEBUG=1`` to see
one). Heavy imports (Dagster, dbt, Streamlit) happen only in the commands that need them, so
``registry submit`` starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from orchestration.cli import access as access_cli
from orchestration.cli import analysis as analysis_cli
from orchestration.cli import disclosure as disclosure_cli
from orchestration.cli import fhir as fhir_cli
from orchestration.cli import ops, tabular
from orchestration.cli.common import UserError
from orchestration.cli.common import home_from_args as _home
from orchestration.cli.common import printable as _p
from orchestration.cli.common import receipt_lines as _receipt_line
from orchestration.cli.common import receipt_text
from orchestration.config import SEED_CASES_DIR, Home
from orchestration.contract import schema
from orchestration.registry import audit
from orchestration.registry.access import matches_user
from orchestration.registry.landing import open_file, submit, submit_iter
from orchestration.registry.quarantine import quarantine_entries
from orchestration.services import quarantine as service
from orchestration.warehouse import snapshot
from orchestration.warehouse.ingest import ingest_in_background

# --------------------------------------------------------------------------- submit


def cmd_submit(args: argparse.Namespace) -> int:

    home = _home(args)
    files = []
    for p in args.files:
        if p == "-":
            files.append(("<stdin>", sys.stdin.buffer.read()))
            continue
        path = Path(p)
        if not path.is_file():
            raise UserError(f"{p}: no such file")
        files.append((p, open_file(path)))
    counts = {"accepted": 0, "duplicate": 0, "quarantined": 0}
    out = sys.stdout
    first = True
    if args.format == "json":
        out.write("[")
    # receipts are written chunk by chunk, as each chunk lands: bounded memory for any file size
    for chunk in submit_iter(home, files, channel="cli"):
        for r in chunk:
            counts[r.status] += 1
        if args.format == "json":
            body = ", ".join(json.dumps(r.as_dict(), ensure_ascii=True) for r in chunk)
            if body:
                out.write(("" if first else ", ") + body)
                first = False
        else:
            out.write(receipt_text(chunk))
    if args.format == "json":
        out.write("]\n")
    else:
        total = sum(counts.values())
        print(
            f"{total} records: {counts['accepted']} accepted, {counts['duplicate']} duplicates, {counts['quarantined']} quarantined",
            file=sys.stderr,
        )
    return 1 if counts["quarantined"] else 0


# --------------------------------------------------------------------------- build


def _print_summary(s) -> None:
    sub = s.submissions
    print(f"build {'succeeded' if s.success else 'FAILED'} in {s.seconds:.1f}s (run {s.run_id})")
    steps = ", ".join(f"{k} {v:.1f}s" for k, v in s.steps.items())
    if steps:
        print(f"  steps: {steps}")
    print(f"  ingested this run: {s.ingested_records} record versions")
    print(
        f"  submissions so far: {sub.get('submitted', 0)} records: {sub.get('accepted', 0)} accepted, "
        f"{sub.get('duplicate', 0)} duplicates, {sub.get('quarantined', 0)} quarantined"
    )
    if s.version:
        print(f"  published snapshot {s.version}: {s.cases} cases")
    if s.error:
        print(f"  error: {s.error}")


@contextlib.contextmanager
def _pipeline_imports():
    """Around the imports of the commands that run the pipeline, made in the command rather than at
    the top (Dagster and dbt take seconds to import; other commands start fast).

    The cyclic garbage collector would scan the millions of objects that Dagster, dbt and their
    imports keep for the life of the process, at every full collection and once more at exit
    (measured, one new case at 100k on a busy machine: ~1-3 s of full collections, most of them
    during the imports, and 3-5 s at exit). Imports make next to no garbage: the collector is off
    meanwhile, then what they made is frozen (skipped by every later collection); what the pipeline
    creates afterwards is still collected.

    Frozen objects are never collected, not even when the process ends, and that is what makes
    DuckDB's bindings (nanobind) print "leaked ... instances" (three paragraphs) at exit when the
    freeze of the parsed dbt project (``defs/dbt_inprocess.py`` ``manifest``) is the only one:
    some of DuckDB's objects then outlive the interpreter's finalisation. It is not an unclosed
    connection (measured: no Python object holds one after a build, and the message goes away when
    the objects are unfrozen before exit, at the cost of the collection the freeze avoids). Frozen
    here as well, the bindings' module itself stays alive to the end and never runs that check;
    ``tests/pipeline/test_watch.py`` checks the watcher's output."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def cmd_build(args: argparse.Namespace) -> int:
    home = _home(args)
    if args.data_tests:
        return _data_tests(home, args.format)
    early = ingest_in_background(home)  # while the next line imports Dagster and dbt
    with _pipeline_imports():
        from orchestration.services.build import run_build
    summary = run_build(home, full_refresh=args.full_refresh, early=early)
    if args.format == "json":
        print(json.dumps(summary.as_dict(), default=str))
    else:
        _print_summary(summary)
    gc.freeze()  # the process ends now: no collection of what it leaves (a long-lived process,
    # the warm builder, must not freeze the garbage of its earlier builds: only here)
    return 0 if summary.success else 1


def _data_tests(home: Home, fmt: str) -> int:
    with _pipeline_imports():
        from orchestration.services.build import run_data_tests
    s = run_data_tests(home)
    if fmt == "json":
        print(json.dumps(s.as_dict(), default=str))
    elif s.success:
        print(f"data tests passed in {s.seconds:.1f}s (run {s.run_id}): {s.tests} tests over {s.scope}")
    else:
        print(f"data tests FAILED in {s.seconds:.1f}s (run {s.run_id})\n  error: {s.error}")
    gc.freeze()
    return 0 if s.success else 1


def cmd_watch(args: argparse.Namespace) -> int:
    with _pipeline_imports():
        from orchestration.services.watch import watch
    try:
        return watch(_home(args), log=lambda line: print(line, flush=True))  # stops on SIGTERM / Ctrl-C
    except KeyboardInterrupt:  # during start-up
        return 0


# --------------------------------------------------------------------------- sql


def cmd_sql(args: argparse.Namespace) -> int:
    # imported here: it imports pyarrow, which `registry submit` and `registry build` do not need
    from orchestration.sql.console import QueryRefused, format_result, run_query_isolated

    home = _home(args)
    query = args.query if args.query != "-" else sys.stdin.read()
    try:
        result = run_query_isolated(query, home=home, timeout_s=args.timeout, max_rows=args.max_rows)
    except QueryRefused as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "refused"
        print(f"registry sql: {reason}", file=sys.stderr)
        return 1
    except snapshot.NoSnapshot as exc:
        raise UserError(str(exc)) from None
    out = format_result(result, args.format)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    if result.truncated:
        print(f"registry sql: only the first {result.row_count} rows are shown (raise --max-rows)", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- quarantine, generate, schema


def cmd_quarantine(args: argparse.Namespace) -> int:
    home = _home(args)
    entries = quarantine_entries(home, include_resolved=not args.unresolved, with_payload=args.format == "json")
    if args.format == "json":
        print(json.dumps(entries, ensure_ascii=True))
        return 0
    if not entries:
        print("quarantine is empty")
    for e in entries:
        state = f"resolved {e['resolved_at']}" if e["resolved_at"] else "open"
        rec = "whole file" if e["record"] is None else f"record {e['record']}"
        print(_p(f"{e['quarantine_id']}  {e['source_file']} ({rec})  case {e['case_id'] or '-'}  [{state}]"))
        for err in e["errors"]:
            print(_p(f"    {err['path']}: {err['message']}"))
    return 0


def cmd_quarantine_resolve(args: argparse.Namespace) -> int:
    """Resolve a quarantine entry: with ``--record FILE`` by submitting the corrected record (resolved
    when it lands), else with a note alone. The /submit form's correction does the same."""
    home = _home(args)
    try:
        if args.record is None:
            if not args.note:
                raise UserError("give --record FILE (the corrected record) or --note TEXT (why it needs no resubmission)")
            service.resolve(home, args.quarantine_id, args.note)
            print(f"RESOLVED     {args.quarantine_id}  (note: {args.note})")
            return 0
        path = Path(args.record)
        try:
            record = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise UserError(f"{args.record}: no such file") from None
        except ValueError as exc:
            raise UserError(f"{args.record}: not a JSON object ({exc})") from None
        if not isinstance(record, dict):
            raise UserError(f"{args.record}: must hold one case record (a JSON object)")
        c = service.correct(home, args.quarantine_id, record, channel="cli", source=str(path))
    except (service.UnknownEntry, ValueError) as exc:
        raise UserError(str(exc).strip("'\"")) from None
    for line in _receipt_line(c.receipt):
        print(line)
    if c.resolved:
        print(f"RESOLVED     {c.resolved}  (corrected as {c.receipt.case_id} r{c.receipt.revision})")
        return 0
    print(f"OPEN         {args.quarantine_id}  (the correction did not land: fix it and try again)")
    return 1


def cmd_generate(args: argparse.Namespace) -> int:
    if args.cases < 0:
        raise UserError("--cases must be zero or more")
    t0 = time.perf_counter()
    from orchestration.synthetic.generate import write_jsonl  # numpy: only the commands that generate import it

    n = write_jsonl(Path(args.out), args.cases, args.seed)
    print(f"wrote {n} synthetic cases (seed {args.seed}) to {args.out} in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.write:
        print(f"wrote {schema.write()}", file=sys.stderr)
    else:
        sys.stdout.write(schema.render())
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    """Parse the dbt project once so that Dagster can load it (run by make)."""
    # imported here, not at the top: Dagster and dbt take seconds to import, other commands start fast
    from orchestration.defs.dbt_project import ensure_manifest

    print(f"dbt manifest ready: {ensure_manifest()}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- withdraw, audit


def cmd_withdraw(args: argparse.Namespace) -> int:
    # imported here, not at the top: Dagster and dbt take seconds to import, other commands start fast
    from orchestration.services.withdraw import withdraw

    home = _home(args)
    if not args.reason.strip():
        raise UserError("--reason must not be empty")
    res = withdraw(home, args.case_id, args.reason, build=not args.no_build)
    print(
        f"withdrew case {res.case_id}: {res.landing_records_purged} landed record versions and "
        f"{res.quarantine_entries_purged} quarantine entries purged; the audit log keeps only the case id, reason and time"
    )
    if res.build_success is False:
        print("the rebuild failed: run `registry build` again", file=sys.stderr)
        return 1
    if res.build_success:
        print("rebuilt and republished: the case is gone from every table and snapshot analysts can read")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    home = _home(args)
    events = list(audit.read(home))
    if args.event:
        events = [e for e in events if e.get("event") == args.event]
    if args.user:
        events = [e for e in events if matches_user(e, args.user)]
    if args.format == "json":
        print(json.dumps(events, ensure_ascii=True))
        return 0
    for e in events:
        rest = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("at", "event") and v is not None)
        print(_p(f"{e.get('at', '')}  {e.get('event', ''):<19} {rest}"))
    return 0


# --------------------------------------------------------------------------- demo


def seed_case_files() -> list[Path]:
    return sorted(p for p in SEED_CASES_DIR.glob("*.json"))


def cmd_demo(args: argparse.Namespace) -> int:
    with _pipeline_imports():
        from orchestration.services.build import run_build
    from orchestration.synthetic.generate import write_jsonl

    home = _home(args).ensure()
    empty = not any(home.landing_batches.glob("*.jsonl")) and not any(home.quarantine_batches.glob("*.jsonl"))
    if empty:
        synthetic = home.tmp / f"demo-synthetic-{args.cases}-seed{args.seed}.jsonl"
        write_jsonl(synthetic, args.cases, args.seed)
        files = [(str(p.relative_to(SEED_CASES_DIR.parent.parent)), p.read_bytes()) for p in seed_case_files()]
        files.append((synthetic.name, synthetic.read_bytes()))
        receipts = submit(home, files, channel="demo")
        n = {s: sum(1 for r in receipts if r.status == s) for s in ("accepted", "duplicate", "quarantined")}
        print(f"demo data: {len(receipts)} records submitted ({n['accepted']} accepted, {n['quarantined']} quarantined)")
    else:
        print(f"{home.root} already holds submissions: not adding demo data")
    summary = run_build(home)
    _print_summary(summary)
    if not summary.success:
        return 1
    if args.no_serve:
        return 0
    return _serve(home, args)


# --------------------------------------------------------------------------- serve


def _serve(home: Home, args: argparse.Namespace) -> int:
    try:
        # imported here, not at the top: Dagster and dbt take seconds to import, other commands start fast
        from orchestration.cli.serve import serve
    except ImportError:
        print("dashboards are not available yet; the warehouse is built and `registry sql` answers.")
        return 0
    return serve(home, port=args.port, dagster_port=args.dagster_port, with_dagster=not args.no_dagster,
                 public=getattr(args, "public", False), host=args.host)


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(_home(args), args)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="registry", description="Calciphylaxis case registry.")
    p.add_argument("--home", help="registry home (default: $REGISTRY_HOME or ./data)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("submit", help="validate case records and land them (or quarantine them with every reason)")
    s.add_argument("files", nargs="+", metavar="FILE", help="JSON (one case or an array) or JSON Lines; - reads standard input")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.set_defaults(func=cmd_submit)

    s = sub.add_parser("build", help="run the pipeline once through Dagster: ingest, dbt build, publish")
    s.add_argument("--format", choices=("text", "json"), default="text")
    only = s.add_mutually_exclusive_group()
    only.add_argument("--full-refresh", action="store_true", help="rebuild every incremental model from scratch")
    only.add_argument("--data-tests", action="store_true",
                   help="build nothing: run every dbt data test over every row (builds test the cases they changed; "
                        "the daemon of `registry serve` runs this daily)")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("watch", help="the warm builder: build and publish as soon as something lands (registry serve starts it)")
    s.set_defaults(func=cmd_watch)

    s = sub.add_parser("sql", help="query the published snapshot (read-only)")
    s.add_argument("query", metavar="QUERY", help="one read-only SQL statement; - reads standard input")
    s.add_argument("--format", choices=("table", "csv", "json"), default="table")
    s.add_argument("--timeout", type=float, default=float(os.environ.get("REGISTRY_SQL_TIMEOUT", 30)), metavar="SECONDS")
    s.add_argument("--max-rows", type=int, default=int(os.environ.get("REGISTRY_SQL_MAX_ROWS", 1_000_000)))
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser("quarantine", help="list quarantined records with their reasons")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.add_argument("--unresolved", action="store_true", help="only entries not yet resolved")
    s.set_defaults(func=cmd_quarantine)
    qsub = s.add_subparsers(dest="quarantine_action", metavar="ACTION")
    r = qsub.add_parser("resolve", help="correct a quarantined record (--record FILE) or resolve it with a note")
    r.add_argument("quarantine_id", metavar="QUARANTINE_ID")
    r.add_argument("--record", metavar="FILE", help="the corrected record (JSON object): submitted, and the entry resolved when it lands")
    r.add_argument("--note", metavar="TEXT", help="why the entry needs no resubmission (without --record)")
    r.set_defaults(func=cmd_quarantine_resolve)

    s = sub.add_parser("generate", help="write a deterministic synthetic cohort (JSON Lines, source: synthetic)")
    s.add_argument("out", metavar="OUT.jsonl")
    s.add_argument("--cases", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("demo", help="on an empty home: submit the seed case and 1,000 synthetic cases, build, serve")
    s.add_argument("--cases", type=int, default=1000)
    s.add_argument("--seed", type=int, default=2026)
    s.add_argument("--no-serve", action="store_true", help="build only, do not start the servers")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--dagster-port", type=int, default=3000)
    s.add_argument("--no-dagster", action="store_true")
    s.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address the dashboards listen on (non-loopback needs config/auth.toml)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="serve the dashboards (and the Dagster UI and daemon)")
    s.add_argument("--port", type=int, default=None, help="default 8501, or 8502 with --public")
    s.add_argument("--public", action="store_true",
                   help="serve only the public dashboard: aggregate pages under the disclosure policy, no sign-in, no Dagster")
    s.add_argument("--dagster-port", type=int, default=3000)
    s.add_argument("--no-dagster", action="store_true")
    s.add_argument("--host", default="127.0.0.1", metavar="ADDRESS", help="address the dashboards listen on (non-loopback needs config/auth.toml)")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("withdraw", help="withdraw a case (consent withdrawn): purge it everywhere analysts can read")
    s.add_argument("case_id", metavar="CASE_ID")
    s.add_argument("--reason", required=True, metavar="TEXT")
    s.add_argument("--no-build", action="store_true", help="purge now, rebuild later (the case stays visible until the next build)")
    s.set_defaults(func=cmd_withdraw)

    s = sub.add_parser("audit", help="print the append-only audit log")
    s.add_argument("--format", choices=("text", "json"), default="text")
    s.add_argument("--event", help="only events of this kind (submission, quarantine_resolved, withdrawal, build, publish, sign_in, ...)")
    s.add_argument("--user", metavar="EMAIL", help="only what this user did (or what was granted to them)")
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("schema", help="print the JSON Schema of case record v1")
    s.add_argument("--write", action="store_true", help="rewrite the committed schema file")
    s.set_defaults(func=cmd_schema)

    disclosure_cli.register(sub)

    s = sub.add_parser("prepare", help="parse the dbt project for Dagster (make runs this)")
    s.set_defaults(func=cmd_prepare)

    access_cli.register(sub)

    # Other ways in and out: each format registers its sub-commands under these three.
    s = sub.add_parser("import", help="import cases from REDCap, spreadsheets or FHIR R4 bundles (same checks as submit)")
    import_sub = s.add_subparsers(dest="import_format", required=True, metavar="FORMAT")
    s = sub.add_parser("export", help="export the registry's current records for REDCap or a spreadsheet")
    export_sub = s.add_subparsers(dest="export_format", required=True, metavar="FORMAT")
    s = sub.add_parser("template", help="write an empty submission template")
    template_sub = s.add_subparsers(dest="template_format", required=True, metavar="FORMAT")
    # each format module adds its sub-commands to these groups
    fhir_cli.register(import_sub)
    tabular.register(import_sub, export_sub, template_sub)
    ops.register(sub)
    analysis_cli.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # the registry home and everything in it: readable by its owner only
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"registry {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # no traceback ever reaches the user
        if os.environ.get("REGISTRY_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"registry {args.command}: error: {first} (set REGISTRY_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
