"""The order in which an in-process dbt run starts its ready nodes (``orchestration/defs/dbt_inprocess.py``):
at most the profile's threads handed out at once, and among the ready nodes the one with the
heaviest chain of work behind it first. dbt's own queue hands every ready node to its thread pool at
once (first come, first served), so a first build's seeds and staging views kept the head of its
longest chain (int_cases_current) waiting."""

from __future__ import annotations

import threading

import networkx as nx
import pytest

from orchestration.config import Home
from orchestration.defs import dbt_inprocess
from orchestration.defs.dbt_project import profile_threads

P = "model.calciphylaxis_registry."
S = "seed.calciphylaxis_registry."


def test_scores_follow_the_heaviest_path_to_the_end():
    g = nx.DiGraph([("a", "b"), ("b", "c"), ("c", "d"), ("s", "d"), ("x", "y")])
    w = {"a": 0.2, "b": 1.0, "c": 1.0, "d": 1.0, "s": 0.2, "x": 1.0, "y": 0.2}
    scores = dbt_inprocess.critical_path_scores(g, w.__getitem__)
    assert scores == pytest.approx({"a": -3.2, "b": -3.0, "c": -2.0, "d": -1.0, "s": -1.2, "x": -1.2, "y": -0.2})
    assert sorted(g, key=lambda n: (scores[n], n))[:3] == ["a", "b", "c"]


@pytest.fixture(scope="module")
def project():
    """The parsed project (the prepared parse of ``registry prepare``) and its job graph of models and seeds."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        man = dbt_inprocess.manifest(Home(Path(d) / "home").ensure())
    g = nx.DiGraph()
    for uid, node in man.nodes.items():
        if uid.split(".")[0] in ("model", "seed"):
            g.add_node(uid)
            for parent in getattr(node.depends_on, "nodes", []):
                if parent.split(".")[0] in ("model", "seed"):
                    g.add_edge(parent, uid)
    return man, g


def _queue(project):
    from dbt.graph.queue import GraphQueue

    dbt_inprocess._order_ready_nodes(2)
    man, g = project
    return GraphQueue(g.copy(), man, set(g))


def test_the_longest_chain_starts_before_the_seeds(project):
    """A first build: the seeds and staging views are ready together; the head of the longest chain
    is handed out as soon as its view is done, before the seeds and views queued earlier. (The gets
    do not block: a wrong order fails here instead of waiting.)"""
    q = _queue(project)
    first = q.get(block=False).unique_id
    assert first == P + "stg_case_records"  # the head of int_cases_current -> ... -> mart_mortality
    second = q.get(block=False).unique_id
    assert second.startswith((P + "stg_", S))
    q.mark_done(first)
    assert q.get(block=False).unique_id == P + "int_cases_current"  # not a seed ready since the start
    q.mark_done(second)
    q.mark_done(P + "int_cases_current")
    # one node at a time from here: int_labs_normalized's chain (-> dim_cases -> the marts) goes on
    # before any fct_* table
    order: list[str] = []
    while P + "int_labs_normalized" not in order:
        order.append(q.get(block=False).unique_id)
        q.mark_done(order[-1])
    assert not [n for n in order if n.startswith(P + "fct_")], order


def test_no_more_nodes_are_handed_out_than_threads(project):
    q = _queue(project)
    a, b = q.get(), q.get()
    got: list[str] = []
    t = threading.Thread(target=lambda: got.append(q.get().unique_id), daemon=True)
    t.start()
    t.join(0.3)
    assert t.is_alive() and not got  # both threads busy: the next node waits for one of them
    q.mark_done(a.unique_id)
    t.join(5)
    assert got and got[0] not in (a.unique_id, b.unique_id)
    q.mark_done(b.unique_id)
    q.mark_done(got[0])


def test_the_limit_is_the_profiles_threads():
    assert profile_threads() >= 1
    dbt_inprocess._order_ready_nodes(profile_threads())
    assert dbt_inprocess._QUEUE["threads"] == profile_threads()
