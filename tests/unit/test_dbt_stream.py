"""The dbt models' materializations are recorded while dbt runs (defs/assets.py ``_DbtStream``):
each as soon as dbt has finished it *and* everything it depends on has been recorded (Dagster's
order), models dbt did not run this build at once, and never a model dbt failed (issue 16)."""

from __future__ import annotations

import threading
from types import SimpleNamespace as NS

import pytest
from dagster import AssetKey

from orchestration.defs import assets
from orchestration.defs.dbt_inprocess import DbtOutcome


def _finished(name: str, status: str = "success"):
    return NS(info=NS(name="NodeFinished"),
              data=NS(node_info=NS(node_name=name), run_result=NS(status=status, execution_time=0.1)))


K = {n: AssetKey([n]) for n in ("seed_a", "view_b", "model_c", "model_d", "model_e")}
# seed_a -> model_c -> model_d ; view_b -> model_d ; model_e alone
DEPS = {K["seed_a"]: set(), K["view_b"]: set(), K["model_c"]: {K["seed_a"]},
        K["model_d"]: {K["model_c"], K["view_b"]}, K["model_e"]: set()}


def _run(monkeypatch, events, success=True, gate=None, waited=None):
    def fake_invoke(home, args, on_event=None):
        for i, ev in enumerate(events):
            if gate is not None and i == 1:
                # the first node must be recorded before dbt goes on to the next one
                waited.append(gate.wait(5))
            on_event(ev)
        return DbtOutcome(success=success, error=None if success else "model_d: boom")

    monkeypatch.setattr(assets, "dbt_invoke", fake_invoke)
    stream = assets._DbtStream(None, ["build"], skipped={"seed_a", "view_b"})
    got = []
    for res in assets._stream_materializations(stream, assets._upstream(set(K.values()), DEPS)):
        got.append(res.asset_key.path[-1])
        if gate is not None and res.asset_key == K["model_c"]:
            gate.set()
    return stream, got


def test_recorded_in_dependency_order_while_dbt_runs(monkeypatch):
    gate, waited = threading.Event(), []
    stream, got = _run(monkeypatch, [_finished("model_c"), _finished("model_e"), _finished("model_d")],
                       gate=gate, waited=waited)
    assert waited == [True]  # model_c was recorded while dbt was still running
    assert set(got[:2]) == {"seed_a", "view_b"}  # not run this build: recorded at once
    assert got.index("model_c") < got.index("model_d")
    assert sorted(got) == sorted(n for n in K)
    assert stream.outcome().success
    assert list(stream.remaining(assets._upstream(set(K.values()), DEPS))) == []


def test_a_failed_model_and_what_depends_on_it_are_never_recorded(monkeypatch):
    stream, got = _run(monkeypatch, [_finished("model_c", "error"), _finished("model_e")], success=False)
    assert "model_c" not in got and "model_d" not in got
    assert "model_e" in got
    assert not stream.outcome().success


def test_an_exception_in_dbt_reaches_the_step(monkeypatch):
    def broken(home, args, on_event=None):
        raise RuntimeError("adapter gone")

    monkeypatch.setattr(assets, "dbt_invoke", broken)
    stream = assets._DbtStream(None, ["build"], skipped=set())
    assert list(assets._stream_materializations(stream, {K["model_e"]: set()})) == []
    with pytest.raises(RuntimeError, match="adapter gone"):
        stream.outcome()


def test_an_interrupted_build_starts_no_further_node(monkeypatch):
    started, gate = [], threading.Event()

    def fake_invoke(home, args, on_event=None):
        for name in ("model_c", "model_d", "model_e"):
            try:
                on_event(NS(info=NS(name="NodeCompiling"), data=NS(node_info=NS(node_name=name))))
            except assets.DbtCancelled:
                continue  # dbt records the node as an error and goes on with the queue
            started.append(name)
            gate.wait(5)
            on_event(_finished(name))
        return DbtOutcome(success=False, error="interrupted")

    monkeypatch.setattr(assets, "dbt_invoke", fake_invoke)
    stream = assets._DbtStream(None, ["build"], skipped=set())
    it = assets._stream_materializations(stream, {K["model_e"]: set()})
    threading.Timer(0.2, gate.set).start()  # model_c is running when the interrupt comes
    stream.cancel()
    assert started == ["model_c"]
    assert list(it) == []  # model_e never ran, so it is never recorded
