"""The house a newcomer walks through (docs/architecture.md): layers point one way, no import cycle
anywhere (imports inside functions included), importing does no work, settings are not written into
the process environment at run time, and what is published is chosen by dbt's ``meta``."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from orchestration.config import REPO_ROOT
from orchestration.warehouse.publish import NothingToPublish, publish_marked

PACKAGES = ("orchestration", "dashboards")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in graph.modules:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_counting_imports_inside_functions(package):
    graph = grimp.build_graph(package, cache_dir=None)
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for m in ("a", "a.x", "a.y", "a.z"):
        g.add_module(m)
    g.add_import(importer="a.x", imported="a.y")
    g.add_import(importer="a.y", imported="a.z")
    g.add_import(importer="a.z", imported="a.x")
    assert _cycles(g) == [["a.x", "a.y", "a.z"]]


def test_the_layer_contracts_hold():
    """The same check `make test` runs first (import-linter, contracts in pyproject.toml)."""
    exe = Path(sys.executable).with_name("lint-imports")
    p = subprocess.run([str(exe)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:]
    assert "0 broken" in p.stdout


def _python_files():
    for pkg in PACKAGES:
        yield from sorted((REPO_ROOT / pkg).rglob("*.py"))


def test_settings_are_not_written_into_the_process_environment():
    """The registry home, Dagster's home and dbt's warehouse path travel as values, not as
    environment variables rewritten mid-run (child processes get an environment of their own)."""
    offenders = []
    for f in _python_files():
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            target = None
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                target = next((t for t in targets if isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ"), None)
            elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.update", "os.environ.setdefault", "os.putenv"):
                target = node
            if target is not None:
                offenders.append(f"{f.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == []


def test_importing_the_dagster_code_location_does_no_work(tmp_path):
    """No `dbt parse`, no PATH edit, no definitions built at import: that happens when the code
    location loads."""
    code = (
        "import os, sys; path = os.environ['PATH']; "
        "import orchestration.definitions as d, orchestration.defs.dbt_project as p, orchestration.defs.assets as a; "
        "assert os.environ['PATH'] == path, 'PATH edited'; "
        "assert p.dbt_project.cache_info().currsize == 0 and d.build_defs.cache_info().currsize == 0, 'built at import'; "
        "assert a.build_assets.cache_info().currsize == 0"
    )
    env = {**os.environ, "REGISTRY_HOME": str(tmp_path / "home")}
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not (tmp_path / "home").exists()  # and no registry home was created by an import


def test_published_relations_come_from_dbt_meta_not_from_names():
    manifest = {"nodes": {
        "model.x.dim_cases": {"resource_type": "model", "name": "dim_cases", "config": {"meta": {"publish": True}}},
        "model.x.cohort_summary": {"resource_type": "model", "name": "cohort_summary", "config": {"meta": {"publish": True}}},
        "model.x.mart_scratch": {"resource_type": "model", "name": "mart_scratch", "config": {"meta": {}}},
        "model.x.stg_labs": {"resource_type": "model", "name": "stg_labs", "config": {}},
        "seed.x.vocabularies": {"resource_type": "seed", "name": "vocabularies", "meta": {"publish": True}},
        "test.x.not_null": {"resource_type": "test", "name": "not_null", "config": {"meta": {"publish": True}}},
    }}
    assert publish_marked(manifest) == ["cohort_summary", "dim_cases", "vocabularies"]


def test_the_project_publishes_every_mart_and_reference_table_and_nothing_else():
    import json

    from orchestration.defs.dbt_project import ensure_manifest

    manifest = json.loads(ensure_manifest().read_text())
    marked = set(publish_marked(manifest))
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed")}
    in_marts = {name for name, n in models.items() if n["resource_type"] == "model" and "/marts/" in "/" + n["original_file_path"]}
    seeds = {name for name, n in models.items() if n["resource_type"] == "seed"}
    assert marked == in_marts | seeds
    assert {"dim_cases", "fct_lab_results", "mart_survival", "quality_quarantine", "vocabularies"} <= marked
    assert not any(m.startswith(("stg_", "int_")) for m in marked)


def test_a_manifest_that_publishes_nothing_is_refused():
    import duckdb

    from orchestration.warehouse.publish import published_tables

    with pytest.raises(NothingToPublish):
        published_tables(duckdb.connect(), {"nodes": {}})
