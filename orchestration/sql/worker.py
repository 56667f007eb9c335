"""The child process of the SQL console (see ``sqlconsole.run_query_isolated``).

Reads one JSON request on standard input, caps its own address space, runs the query with
``sqlconsole.run_query`` and writes a JSON header line, then (when the query answered) the result as
an Arrow IPC stream, on standard output. A dedicated module run with ``python -m``, so the child
never depends on what the parent's ``__main__`` is (under Streamlit it is a page script)."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path


def main() -> int:
    req = json.loads(sys.stdin.buffer.read())
    cap = int(req["memory_cap"])
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    except (ValueError, OSError):  # pragma: no cover - a platform without RLIMIT_AS
        pass
    # imported once the address-space cap is set, so that DuckDB and Arrow load under it
    import pyarrow as pa

    from orchestration.sql import console as sqlconsole

    out = sys.stdout.buffer
    try:
        res = sqlconsole.run_query(
            req["sql"],
            database=Path(req["database"]),
            timeout_s=float(req["timeout_s"]),
            max_rows=req["max_rows"],
            memory_limit=req["memory_limit"],
        )
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, res.table.schema) as writer:
            writer.write_table(res.table)
        out.write(json.dumps({"ok": True, "elapsed_s": res.elapsed_s, "truncated": res.truncated}).encode() + b"\n")
        out.write(sink.getvalue().to_pybytes())
    except sqlconsole.QueryRefused as e:
        out.write(json.dumps({"ok": False, "message": str(e)}).encode() + b"\n")
    except MemoryError:
        out.write(json.dumps({"ok": False, "message": f"query stopped: it needed more than the {req['memory_limit']} memory limit"}).encode() + b"\n")
    except BaseException as e:  # noqa: BLE001 - one line, never a traceback
        out.write(json.dumps({"ok": False, "message": sqlconsole._first_line(e)}).encode() + b"\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
