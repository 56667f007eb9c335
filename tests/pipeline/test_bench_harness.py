"""The benchmark harness (``make bench``) on a tiny cohort: every measure is present and positive
and the JSON file has the documented structure. No timing is asserted: the targets are for the
harness to report, never for the test suite to enforce."""

from __future__ import annotations

import json

import pytest

from bench import run as bench

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("build")]

SIZE = 200

EXPECTED = {
    "generate", "bare_load", "submit", "build", "build.ingest", "build.dbt", "build.publish", "build.other",
    "end_to_end", "incremental", "incremental.submit", "incremental.build", "incremental.sql", "snapshot_connect",
    "peak_rss", "serve", "serve_next", "serve_upload",
}
# measured on their own process: each has a peak RSS
WITH_RSS = {"generate", "bare_load", "submit", "build", "end_to_end", "incremental", "incremental.submit",
            "incremental.build", "incremental.sql", "snapshot_connect", "peak_rss"}


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out = d / "result.json"
    bench.run([SIZE], out=out, workdir=d, page_repeats=1)
    assert out.is_file()
    return json.loads(out.read_text())


def test_json_structure_and_machine(doc):
    assert set(doc) >= {"started_at", "finished_at", "machine", "sizes", "results", "failed", "markdown"}
    assert doc["failed"] == [], doc["results"][0].get("error")
    m = doc["machine"]
    assert m["nproc"] >= 1 and m["cpu_model"] and m["memory_total_gb"] > 0
    assert m["versions"]["python"] and m["versions"]["duckdb"] and m["git_commit"]
    assert doc["sizes"] == [SIZE] and [r["size"] for r in doc["results"]] == [SIZE]


def test_every_measure_is_present_and_positive(doc):
    measures = doc["results"][0]["measures"]
    pages = {k for k in measures if k.startswith("page.")}
    assert pages, "no dashboard page was measured"
    assert EXPECTED <= set(measures)
    for key, m in measures.items():
        assert set(m) >= {"key", "label", "seconds", "ratio", "max_rss_mb", "tree_rss_mb", "target", "verdict"}
        if key != "peak_rss":
            assert m["seconds"] is not None and m["seconds"] > 0, key
            assert m["ratio"] is not None and m["ratio"] > 0, key
        if key in WITH_RSS:
            assert m["max_rss_mb"] and m["max_rss_mb"] > 0, key
            assert m["tree_rss_mb"] and m["tree_rss_mb"] > 0, key
        if key.startswith("page."):
            assert "ERRORS" not in m["note"], m["note"]
    assert measures["bare_load"]["ratio"] == pytest.approx(1.0)
    assert measures["end_to_end"]["seconds"] == pytest.approx(measures["submit"]["seconds"] + measures["build"]["seconds"])
    for key in ("end_to_end", "incremental", "peak_rss", *pages):
        assert measures[key]["target"] and measures[key]["verdict"], key


def test_details_and_markdown(doc):
    res = doc["results"][0]
    details = res["details"]
    assert details["build_summary"]["success"] is True
    assert details["build_summary"]["cases"] == SIZE
    assert details["bare_load"]["rows"]["cases"] == SIZE
    assert details["incremental"]["build_summary"]["cases"] == SIZE + 1
    assert details["pages"]["pages"]
    # `registry serve` opens its dashboards last: when they answer, the warm builder is ready (cli/serve.py)
    assert details["serve"]["builder_ready_at_submit"] is True, details["serve"]
    # the next cases, one after another: each became visible, and the slowest is the measure
    nxt = details["serve"]["next_all"]
    assert len(nxt) == bench.SERVE_NEXT_CASES and all(s and s > 0 for s in nxt), nxt
    assert res["measures"]["serve_next"]["seconds"] == pytest.approx(max(nxt), abs=1e-3)
    # the whole cohort, submitted to `registry serve` on a fresh home, became visible: every case
    assert details["serve_upload"].get("visible") and details["serve_upload"]["visible"][-1][1] == SIZE, details["serve_upload"]
    md = doc["markdown"]
    assert md.splitlines()[2].startswith("| size | measure | seconds | × bare load | CPU s |")
    for m in res["measures"].values():
        assert m["label"].strip() in md


def test_sizes_and_large_flag(monkeypatch):
    monkeypatch.delenv("BENCH_LARGE", raising=False)
    assert bench.parse_sizes(None) == [10_000, 100_000]
    assert bench.parse_sizes("200, 1_000") == [200, 1000]
    monkeypatch.setenv("BENCH_LARGE", "1")
    assert bench.parse_sizes(None) == [10_000, 100_000, 1_000_000]


def test_tree_rss_sees_the_current_process():
    import os

    assert bench.tree_rss(os.getpid()) > 0
