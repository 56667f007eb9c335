"""A hardened, read-only SQL engine for analysts (``registry sql`` and the dashboards' ``/sql`` page).

An analyst may type anything; nothing typed here may change the warehouse, touch the file system,
reach the network, change settings or take the process down. Two independent layers enforce that:

1. **Classification** (:func:`classify`), done with DuckDB's own parser, never regular expressions:

   * ``extract_statements`` (DuckDB's parser) must return exactly one statement, of type ``SELECT`` (which in
     DuckDB also covers ``WITH``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``, ``UNPIVOT``, ``VALUES``,
     ``TABLE x`` and the ``FROM tbl`` shorthand, and ``PIVOT ... IN (...)``), ``EXPLAIN`` of such a
     statement (``EXPLAIN ANALYZE`` runs its statement, so the inner statement is classified
     too), or ``MULTI`` when it is a ``PIVOT`` whose columns come from the data (DuckDB expands
     that into several internal statements). Every other type (``COPY``, ``ATTACH``, ``SET``,
     ``PRAGMA``, ``CALL``, ``LOAD``/``INSTALL``, DDL, DML, transactions, ...) is refused.
   * A ``SELECT`` is then serialised to its syntax tree with ``json_serialize_sql`` and walked:
     data-modifying nodes (``WITH x AS (DELETE ... RETURNING *)``) are refused, so are table and
     scalar functions that read files or the network or have side effects (``read_csv``, ``glob``,
     ``read_text``, ``parquet_scan``, ``sniff_csv``, ``query``, ``checkpoint``, ``write_log``, ...),
     and table references that look like file paths or URLs (``FROM '/etc/passwd'``).

2. **The connection** (:func:`open_console`): a private in-memory DuckDB instance (its settings are
   its own; the dashboards' connection and any other instance are untouched) that ATTACHes the
   published snapshot ``READ_ONLY``, then turns off external access (files, network, ATTACH,
   INSTALL), extension auto-install/auto-load, Python replacement scans and spilling to disk,
   caps memory and threads, and finally locks the configuration so nothing can be SET back.

Queries run under a watchdog timer that calls ``con.interrupt()``; a connection is used for one
query only and then closed, so an interrupted connection is never reused. Every failure surfaces as
:class:`QueryRefused` with a one-line message, never a traceback.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import decimal
import getpass
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from orchestration.config import Home
from orchestration.registry.textsafety import escape_controls, safe_csv_cell
from orchestration.sql import limits
from orchestration.warehouse import snapshot

__all__ = [
    "DEFAULT_DISPLAY_ROWS",
    "DEFAULT_DOWNLOAD_ROWS",
    "QueryRefused",
    "QueryResult",
    "classify",
    "format_result",
    "open_console",
    "run_query",
]

#: Rows shown on screen (callers pass it as ``run_query(max_rows=...)``; ``format_result`` in
#: ``table`` format also never renders more than this many).
DEFAULT_DISPLAY_ROWS = 1_000
#: Rows a download (CSV / JSON) may hold; the default of ``run_query(max_rows=...)``.
DEFAULT_DOWNLOAD_ROWS = 100_000
#: Longest SQL text accepted (guards the parser and the syntax-tree walk).
MAX_SQL_CHARS = 100_000
#: Longest error message handed back.
_MAX_MESSAGE_CHARS = 500


class QueryRefused(Exception):
    """The query was refused or stopped; ``str(e)`` is a one-line reason to show the user."""

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


@dataclass
class QueryResult:
    columns: list[str]
    table: pa.Table
    elapsed_s: float
    truncated: bool
    row_count: int


# --------------------------------------------------------------------------------------------
# Layer 1: classification with DuckDB's parser
# --------------------------------------------------------------------------------------------

_ST = duckdb.StatementType

# Statement kinds reported by classify(), from the statement's first keyword.
_KIND_BY_KEYWORD = {
    "select": "select",
    "with": "select",
    "from": "select",
    "values": "select",
    "table": "select",
    "describe": "describe",
    "desc": "describe",
    "show": "show",
    "summarize": "summarize",
    "pivot": "pivot",
    "pivot_wider": "pivot",
    "unpivot": "unpivot",
    "pivot_longer": "unpivot",
    "explain": "explain",
}

_REFUSED_TYPES = {
    "INSERT": "INSERT changes data",
    "UPDATE": "UPDATE changes data",
    "DELETE": "DELETE/TRUNCATE changes data",
    "MERGE_INTO": "MERGE changes data",
    "CREATE": "CREATE changes the catalog",
    "CREATE_FUNC": "CREATE FUNCTION/MACRO changes the catalog",
    "DROP": "DROP/DEALLOCATE changes the catalog",
    "ALTER": "ALTER/COMMENT changes the catalog",
    "COPY": "COPY reads or writes files",
    "COPY_DATABASE": "COPY FROM DATABASE writes a database",
    "EXPORT": "EXPORT DATABASE writes files",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes the attached databases",
    "SET": "SET/RESET/USE changes settings",
    "VARIABLE_SET": "SET VARIABLE changes session state",
    "PRAGMA": "PRAGMA can change settings",
    "CALL": "CALL/CHECKPOINT is not allowed",
    "LOAD": "INSTALL/LOAD adds extensions",
    "EXTENSION": "extension statements are not allowed",
    "TRANSACTION": "transaction control is not needed for read-only queries",
    "VACUUM": "VACUUM/ANALYZE is not allowed",
    "PREPARE": "PREPARE is not allowed",
    "EXECUTE": "EXECUTE is not allowed",
    "ANALYZE": "ANALYZE is not allowed",
    "RELATION": "relation statements are not allowed",
    "LOGICAL_PLAN": "logical plans are not allowed",
    "MULTI": "a PIVOT without an explicit IN (...) list works only as a top-level statement, not under EXPLAIN or in a subquery",
}

# Functions (table or scalar) that read files / the network, run SQL text, or have side effects.
_DENIED_FUNCTIONS = frozenset(
    {
        "glob",
        "sniff_csv",
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "checkpoint",
        "force_checkpoint",
        "enable_checkpoint_on_shutdown",
        "disable_checkpoint_on_shutdown",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "write_log",
        "enable_profiling",
        "disable_profiling",
        "enable_profile",
        "disable_profile",
        "create_external_resource",
        "register_external_resource",
        "register_external_resource_type",
        "deregister_external_resource",
        "destroy_external_resource",
        "getenv",
        "nextval",
        "setval",
        "install_extension",
        "load_extension",
        "load_aws_credentials",
        "st_read",
        "st_read_meta",
        "st_drivers",
    }
)
_DENIED_PREFIXES = (
    "read_",  # read_csv, read_csv_auto, read_json*, read_ndjson*, read_parquet, read_text, read_blob, read_duckdb, ...
    "parquet_",  # parquet_scan, parquet_metadata, parquet_schema, ...
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "pandas_",
    "python_",
    "arrow_",
    "http",
    "ducklake",
)
_DENIED_SUFFIXES = ("_scan", "_scan_auto")

# Query nodes allowed inside a SELECT's syntax tree (anything else, e.g. DELETE_QUERY_NODE, is not).
_ALLOWED_QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
# A single identifier part containing one of these is a file path or URL (replacement scan).
_PATH_CHARS = frozenset("/\\:.~")

_parser_lock = threading.Lock()
_parser_con: duckdb.DuckDBPyConnection | None = None


def _denied_function(name: str) -> bool:
    n = name.strip('"').lower()
    return n in _DENIED_FUNCTIONS or n.startswith(_DENIED_PREFIXES) or n.endswith(_DENIED_SUFFIXES)


def classify(sql: str) -> str:
    """The kind of the single read statement in ``sql`` (``select``, ``describe``, ``show``,
    ``summarize``, ``pivot``, ``unpivot``, ``explain``); raises :class:`QueryRefused` otherwise."""
    if not isinstance(sql, str):
        raise QueryRefused("refused: the query must be text")
    if len(sql) > MAX_SQL_CHARS:
        raise QueryRefused(f"refused: the query is longer than {MAX_SQL_CHARS:,} characters")
    if "\x00" in sql:
        raise QueryRefused("refused: the query contains a NUL character")
    return _classify(sql, inner=False)


def _classify(sql: str, *, inner: bool) -> str:
    try:
        statements = _extract_statements(sql)
    except duckdb.Error as e:
        raise QueryRefused(_first_line(e)) from None
    except ValueError:
        raise QueryRefused("refused: only read statements (SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PIVOT) are allowed") from None
    if not statements:
        raise QueryRefused("refused: the query is empty")
    if len(statements) > 1:
        raise QueryRefused("refused: one statement at a time (remove the extra ';' statements)")
    try:
        stype = statements[0].type
    except ValueError:  # a statement type the Python enum does not know (e.g. UPDATE EXTENSIONS)
        raise QueryRefused("refused: only read statements (SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PIVOT) are allowed") from None
    kind = _KIND_BY_KEYWORD.get(_first_keyword(sql), "select")

    if stype == _ST.SELECT:
        _check_select_tree(sql)
        return kind
    if stype == _ST.EXPLAIN and not inner:
        inner_sql = _explained_statement(sql)
        inner_kind = _classify(inner_sql, inner=True)
        if inner_kind == "explain":  # the parser rejects it already; belt and braces
            raise QueryRefused("refused: EXPLAIN of EXPLAIN")
        return "explain"
    if stype == _ST.MULTI and kind == "pivot":
        # PIVOT with columns taken from the data: DuckDB expands it into several statements
        # (not serialisable to JSON), so check its tokens instead.
        _check_tokens(sql)
        return kind
    name = getattr(stype, "name", str(stype))
    reason = _REFUSED_TYPES.get(name, f"{name} statements are not allowed")
    if name == "MULTI":
        raise QueryRefused(f"refused: {reason}")
    raise QueryRefused(f"refused: {reason}; only read statements (SELECT, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN, PIVOT) are allowed")


def _tokens(sql: str) -> list[tuple[int, str, str]]:
    """(position, token type name, text) for each non-comment token, via DuckDB's tokenizer."""
    raw = duckdb.tokenize(sql)
    out = []
    for i, (pos, ttype) in enumerate(raw):
        end = raw[i + 1][0] if i + 1 < len(raw) else len(sql)
        tname = getattr(ttype, "name", str(ttype))
        if tname == "comment":
            continue
        out.append((pos, tname, sql[pos:end].strip()))
    return out


def _first_keyword(sql: str) -> str:
    for _pos, tname, text in _tokens(sql):
        if text == "(":
            continue  # "(SELECT 1)"
        return text.lower() if tname == "keyword" else ""
    return ""


def _explained_statement(sql: str) -> str:
    """The statement under ``EXPLAIN [ANALYZE] [(options)]``, found with DuckDB's tokenizer."""
    toks = _tokens(sql)
    i = 0
    if not toks or toks[0][2].lower() != "explain":
        raise QueryRefused("refused: could not find the statement under EXPLAIN")
    i = 1
    if i < len(toks) and toks[i][1] == "keyword" and toks[i][2].lower() in ("analyze", "analyse"):
        i += 1
    if i < len(toks) and toks[i][2] == "(":
        depth = 0
        while i < len(toks):
            if toks[i][2] == "(":
                depth += 1
            elif toks[i][2] == ")":
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            i += 1
    if i >= len(toks):
        raise QueryRefused("refused: could not find the statement under EXPLAIN")
    return sql[toks[i][0]:]


# Keywords that never belong in a read-only PIVOT (checked only where no syntax tree is available).
_WRITE_KEYWORDS = frozenset(
    {
        "insert", "update", "delete", "merge", "returning", "copy", "attach", "detach", "create",
        "drop", "alter", "truncate", "install", "load", "pragma", "call", "export", "import",
        "checkpoint", "vacuum", "set", "reset", "use", "prepare", "execute",
    }
)


def _check_tokens(sql: str) -> None:
    """Token-level check for statements DuckDB cannot serialise to a syntax tree (a PIVOT whose
    columns come from the data): no data-modifying keyword, no denied function call, and no
    string literal or path-like quoted name used as a table (``FROM '/etc/passwd'``)."""
    toks = _tokens(sql)
    for i, (_pos, tname, text) in enumerate(toks):
        low = text.lower()
        nxt = toks[i + 1][2] if i + 1 < len(toks) else ""
        if tname == "keyword" and low in _WRITE_KEYWORDS:
            raise QueryRefused(f"refused: {text.upper()} is not allowed in a read-only query")
        if tname in ("identifier", "keyword") and nxt == "(" and _denied_function(text):
            raise QueryRefused(f"refused: the function {text.strip(chr(34))}() reads files or has side effects")
        if tname == "identifier" and text.startswith('"') and set(text.strip('"')) & _PATH_CHARS:
            raise QueryRefused("refused: reading files or URLs is not allowed")
        if tname == "string_const" and i > 0:
            prev = toks[i - 1][2].lower()
            if prev in ("from", "join", ",", "pivot", "pivot_wider", "unpivot", "pivot_longer"):
                raise QueryRefused("refused: reading files or URLs is not allowed")


def _parser() -> duckdb.DuckDBPyConnection:
    """A private, locked-down in-memory connection used only to parse (never to run) the
    analyst's text, so the process-wide default connection is never touched. Call with
    ``_parser_lock`` held."""
    global _parser_con
    if _parser_con is None:
        con = duckdb.connect(":memory:")
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET enable_progress_bar = false")
        con.execute("SET lock_configuration = true")
        _parser_con = con
    return _parser_con


def _reset_parser() -> None:
    global _parser_con
    if _parser_con is not None:
        try:
            _parser_con.close()
        except duckdb.Error:
            pass
    _parser_con = None


def _extract_statements(sql: str) -> list:
    with _parser_lock:
        return _parser().extract_statements(sql)


def _serialize(sql: str) -> dict:
    with _parser_lock:
        try:
            text = _parser().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
        except duckdb.Error:
            _reset_parser()
            raise QueryRefused("refused: the query could not be analysed") from None
    try:
        return json.loads(text)
    except ValueError:
        raise QueryRefused("refused: the query could not be analysed") from None


def _check_select_tree(sql: str) -> None:
    tree = _serialize(sql)
    if tree.get("error"):
        msg = tree.get("error_message") or "the query could not be analysed"
        raise QueryRefused(f"refused: {msg}")
    _walk(tree.get("statements", []))


def _walk(node: Any) -> None:
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, list):
            stack.extend(cur)
            continue
        if not isinstance(cur, dict):
            continue
        ntype = cur.get("type")
        if isinstance(ntype, str):
            if ntype.endswith("_NODE") and ntype not in _ALLOWED_QUERY_NODES:
                what = ntype.removesuffix("_NODE").removesuffix("_QUERY").replace("_", " ")
                raise QueryRefused(f"refused: {what} inside a query changes data")
            if ntype in ("BASE_TABLE", "SHOW_REF"):
                for part in (cur.get("table_name"), cur.get("schema_name"), cur.get("catalog_name")):
                    if isinstance(part, str) and (set(part) & _PATH_CHARS):
                        raise QueryRefused("refused: reading files or URLs is not allowed")
        fname = cur.get("function_name")
        if isinstance(fname, str) and _denied_function(fname):
            raise QueryRefused(f"refused: the function {fname}() reads files or has side effects")
        stack.extend(v for v in cur.values() if isinstance(v, (dict, list)))


# --------------------------------------------------------------------------------------------
# Layer 2: the locked-down connection
# --------------------------------------------------------------------------------------------


def open_console(database: Path, *, memory_limit: str = "1GB", threads: int = 2) -> duckdb.DuckDBPyConnection:
    """A fresh, private in-memory DuckDB instance with ``database`` attached read-only as
    ``registry`` (selected), external access off and the configuration locked."""
    threads = int(threads)
    if threads < 1:
        raise ValueError("threads must be at least 1")
    con = duckdb.connect(":memory:")
    try:
        # Order matters: ATTACH and temp_directory need external access, so they come first;
        # lock_configuration comes last.
        con.execute(f"ATTACH '{_sql_str(str(database))}' AS registry (READ_ONLY)")
        con.execute("USE registry")
        con.execute("SET temp_directory = ''")  # never spill to disk (default: ./.tmp)
        con.execute("SET enable_external_access = false")
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET allow_community_extensions = false")
        con.execute("SET allow_persistent_secrets = false")
        con.execute("SET python_enable_replacements = false")  # no scans of Python variables
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{_sql_str(memory_limit)}'")
        con.execute("SET max_temp_directory_size = '0B'")
        con.execute(f"SET threads = {threads}")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


# --------------------------------------------------------------------------------------------
# Running a query
# --------------------------------------------------------------------------------------------


def _database(database: Path | None, home: Home | None) -> Path:
    """The snapshot to query: the one given, else the current one of ``home`` (or $REGISTRY_HOME)."""
    if database is not None:
        return Path(database)
    try:
        return snapshot.current_database(home or Home.from_env())
    except snapshot.NoSnapshot as e:
        raise QueryRefused(str(e)) from None


def run_query(
    sql: str,
    *,
    database: Path | None = None,
    home: Home | None = None,
    timeout_s: float = 30.0,
    max_rows: int | None = DEFAULT_DOWNLOAD_ROWS,
    memory_limit: str = "1GB",
) -> QueryResult:
    """Classify, then run ``sql`` on a fresh console connection under a timeout. At most
    ``max_rows`` rows are returned (``truncated`` tells whether there were more). Raises
    :class:`QueryRefused` with a one-line message for anything refused or failed."""
    classify(sql)
    if max_rows is not None and max_rows < 0:
        raise QueryRefused("max_rows must not be negative")
    database = _database(database, home)
    if not Path(database).is_file():
        raise QueryRefused(f"no published database at {database}")
    try:
        con = open_console(Path(database), memory_limit=memory_limit)
    except duckdb.Error as e:
        raise QueryRefused(f"could not open the SQL console: {_first_line(e)}") from None

    state = {"done": False, "fired": False}
    lock = threading.Lock()

    def _stop() -> None:
        with lock:
            if not state["done"]:
                state["fired"] = True
                con.interrupt()

    timer = threading.Timer(max(float(timeout_s), 0.0), _stop)
    timer.daemon = True
    started = time.perf_counter()
    timer.start()
    try:
        table, truncated = _fetch(con, sql, max_rows)
    except duckdb.OutOfMemoryException:
        raise QueryRefused(f"query stopped: it needed more than the {memory_limit} memory limit") from None
    except Exception as e:  # noqa: BLE001 - every failure becomes a one-line message
        if state["fired"] or isinstance(e, duckdb.InterruptException):
            raise QueryRefused(_timeout_message(timeout_s)) from None
        if isinstance(e, MemoryError):
            raise QueryRefused(f"query stopped: it needed more than the {memory_limit} memory limit") from None
        raise QueryRefused(_first_line(e)) from None
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        try:
            con.close()  # never reused, interrupted or not
        except duckdb.Error:
            pass
    if state["fired"]:  # finished at the wire; still honour the limit consistently
        raise QueryRefused(_timeout_message(timeout_s))
    elapsed = time.perf_counter() - started
    return QueryResult(
        columns=list(table.column_names),
        table=table,
        elapsed_s=elapsed,
        truncated=truncated,
        row_count=table.num_rows,
    )


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, max_rows: int | None) -> tuple[pa.Table, bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rel = con.sql(sql)
        if rel is None:  # not a relation-producing statement (cannot happen after classify)
            return pa.table({}), False
        if max_rows is None:
            return rel.to_arrow_table(), False
        batch = max(1, min(max_rows + 1, 65_536))
        reader = rel.to_arrow_reader(batch)
        try:
            batches: list[pa.RecordBatch] = []
            have = 0
            while have <= max_rows:
                try:
                    b = reader.read_next_batch()
                except StopIteration:
                    break
                batches.append(b)
                have += b.num_rows
            table = pa.Table.from_batches(batches, schema=reader.schema)
        finally:
            reader.close()
    truncated = table.num_rows > max_rows
    if truncated:
        table = table.slice(0, max_rows)
    return table, truncated


def _timeout_message(timeout_s: float) -> str:
    return f"query stopped: it ran longer than the {timeout_s:g} s limit"


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def format_result(result: QueryResult, fmt: str, *, max_display_rows: int | None = DEFAULT_DISPLAY_ROWS) -> str:
    """``table`` (aligned text, at most ``max_display_rows`` rows), ``csv`` or ``json`` (a list of
    objects; dates as ISO text, decimals as numbers, bytes as base64, NaN/inf as null)."""
    rows = result.table.to_pylist()
    cols = result.columns
    if fmt == "json":
        return json.dumps([{c: _json_safe(r.get(c)) for c in cols} for r in rows], ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([safe_csv_cell(c) for c in cols])
        for r in rows:
            w.writerow([safe_csv_cell(_csv_cell(r.get(c))) if isinstance(r.get(c), str) else _csv_cell(r.get(c)) for c in cols])
        return buf.getvalue()
    if fmt == "table":
        return _text_table(result, rows, max_display_rows)
    raise ValueError(f"unknown format {fmt!r}: use table, csv or json")


def _json_safe(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, decimal.Decimal):
        return float(v) if v.is_finite() else None
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, _dt.timedelta):
        return str(v)
    if isinstance(v, pa.MonthDayNano):
        return _interval_text(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        # Arrow maps come back as lists of (key, value) tuples
        return [_json_safe(x) for x in v]
    return str(v)


def _interval_text(v: "pa.MonthDayNano") -> str:
    months, days, ns = v.months, v.days, v.nanoseconds
    parts = []
    if months:
        y, m = divmod(abs(months), 12)
        sign = "-" if months < 0 else ""
        if y:
            parts.append(f"{sign}{y} year{'s' if y != 1 else ''}")
        if m:
            parts.append(f"{sign}{m} month{'s' if m != 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if abs(days) != 1 else ''}")
    if ns or not parts:
        sign = "-" if ns < 0 else ""
        us = abs(ns) // 1000
        secs, us = divmod(us, 1_000_000)
        h, rem = divmod(secs, 3600)
        mi, se = divmod(rem, 60)
        parts.append(f"{sign}{h:02d}:{mi:02d}:{se:02d}" + (f".{us:06d}" if us else ""))
    return " ".join(parts)


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, pa.MonthDayNano):
        return _interval_text(v)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_json_safe(v), ensure_ascii=False)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


_MAX_CELL = 60


def _text_cell(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, pa.MonthDayNano):
        return _interval_text(v)
    if isinstance(v, (dict, list, tuple)):
        s = json.dumps(_json_safe(v), ensure_ascii=False)
    elif isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        s = v.isoformat(sep=" ") if isinstance(v, _dt.datetime) else v.isoformat()
    elif isinstance(v, (bytes, bytearray, memoryview)):
        s = "\\x" + bytes(v).hex()
    else:
        s = str(v)
    s = escape_controls(s.replace("\t", " "))  # no raw ESC, BEL or CR from submitted text in a terminal
    return s if len(s) <= _MAX_CELL else s[: _MAX_CELL - 1] + "…"


def _text_table(result: QueryResult, rows: list[dict], max_display_rows: int | None) -> str:
    cols = result.columns
    shown = rows if max_display_rows is None else rows[:max_display_rows]
    numeric = []
    for field in result.table.schema:
        t = field.type
        numeric.append(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t))
    cells = [[_text_cell(r.get(c)) for c in cols] for r in shown]
    widths = [len(c) for c in cols]
    for row in cells:
        for i, s in enumerate(row):
            widths[i] = max(widths[i], len(s))

    def fmt_row(values: list[str]) -> str:
        parts = [v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)]
        return " | ".join(parts).rstrip()

    lines = [fmt_row(list(cols)), "-+-".join("-" * w for w in widths)] if cols else []
    lines += [fmt_row(r) for r in cells]
    n = result.row_count
    note = f"({n:,} row{'s' if n != 1 else ''}"
    if len(shown) < n:
        note += f", showing the first {len(shown):,}"
    if result.truncated:
        note += "; more rows exist: result truncated"
    note += f"; {result.elapsed_s:.2f} s)"
    lines.append(note)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _first_line(e: BaseException | str) -> str:
    text = str(e).strip()
    for line in text.splitlines():
        if line.strip():
            return _one_line(line)
    return type(e).__name__ if isinstance(e, BaseException) else "error"


def _one_line(text: str) -> str:
    s = " ".join(str(text).split())
    return s if len(s) <= _MAX_MESSAGE_CHARS else s[: _MAX_MESSAGE_CHARS - 1] + "…"


def _sql_str(s: str) -> str:
    return s.replace("'", "''")


# --------------------------------------------------------------------------------------------
# Process isolation: the hard stop
# --------------------------------------------------------------------------------------------
# Some work cannot be interrupted from inside DuckDB: one huge scalar value (a 10^9-element list
# cast to text) allocates outside memory_limit and ignores interrupt() until it finishes, which
# was measured at 50 s and 20 GB. So `registry sql` and the /sql page run each query in a child
# process whose address space is capped (RLIMIT_AS: an allocation beyond it fails cleanly inside
# DuckDB) and which is killed outright if it outlives the timeout by GRACE_S.

GRACE_S = 2.0
PROCESS_MEMORY_CAP = int(float(os.environ.get("REGISTRY_SQL_PROCESS_MEMORY_GB", "3")) * 2**30)


def run_query_isolated(
    sql: str,
    *,
    database: Path | None = None,
    home: Home | None = None,
    timeout_s: float = 30.0,
    max_rows: int | None = DEFAULT_DOWNLOAD_ROWS,
    memory_limit: str = "1GB",
    user: str | None = None,
) -> QueryResult:
    """:func:`run_query` in a memory-capped child process (``python -m orchestration.sql.worker``)
    with a hard deadline. Same arguments, same result, same one-line :class:`QueryRefused`
    messages; the statement is classified here first, so refused statements never start a process.

    At most a configured number of these run at once, per ``user`` (the signed-in user of the
    dashboards; the OS user by default) and overall (see ``limits.py``): a query waits for a free
    slot, then is refused with one line."""
    classify(sql)
    database = _database(database, home)
    slot_home = home or _slot_home(database)
    who = user if user else _os_user()
    try:
        lim = limits.limits_for(slot_home, who)
    except ValueError as exc:  # a bad limit in the configuration
        raise QueryRefused(str(exc)) from None
    try:
        with limits.slot(slot_home, who, lim):
            return _run_in_worker(sql, database, timeout_s=timeout_s, max_rows=max_rows, memory_limit=memory_limit)
    except limits.ConsoleBusy as exc:
        raise QueryRefused(str(exc)) from None


def _slot_home(database: Path) -> Home:
    """Where the query slots live when the caller passes a snapshot file, not a home: the home the
    snapshot belongs to (``<home>/published/versions/<id>/registry.duckdb``), else a folder of this
    machine's temporary directory (so a stray call never creates ``./data``)."""
    p = Path(database).resolve()
    if len(p.parents) > 3 and p.parents[2].name == "published":
        return Home(p.parents[3])
    return Home(Path(tempfile.gettempdir()) / f"registry-sql-{os.getuid()}")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment
        return f"uid-{os.getuid()}"


def _run_in_worker(sql: str, database: Path, *, timeout_s: float, max_rows: int | None, memory_limit: str) -> QueryResult:
    request = json.dumps(
        {
            "sql": sql,
            "database": str(database),
            "timeout_s": float(timeout_s),
            "max_rows": max_rows,
            "memory_limit": memory_limit,
            "memory_cap": PROCESS_MEMORY_CAP,
        }
    ).encode()
    deadline = max(float(timeout_s), 0.0) + GRACE_S + 3.0  # + the child's start-up
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestration.sql.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        out, _ = proc.communicate(request, timeout=deadline)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise QueryRefused(_timeout_message(timeout_s)) from None
    head, _, body = out.partition(b"\n")
    if not head:
        raise QueryRefused(f"query stopped: it needed more memory than the SQL console allows ({memory_limit})")
    meta = json.loads(head)
    if not meta["ok"]:
        raise QueryRefused(meta["message"])
    table = pa.ipc.open_stream(body).read_all()
    return QueryResult(
        columns=list(table.column_names),
        table=table,
        elapsed_s=meta["elapsed_s"],
        truncated=meta["truncated"],
        row_count=table.num_rows,
    )
