"""The disclosure library (orchestration.analytics.disclosure) against the independent checker
(tests/disclosure_check.py, which does not import it), on many random tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestration.analytics import disclosure as dc
from orchestration.analytics import stats
from orchestration.config import Home
from tests import disclosure_check as chk

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
small_counts = st.integers(min_value=0, max_value=40)


def shown(values, mask):
    return [None if m else v for v, m in zip(values, mask)]


# --------------------------------------------------------------------------- the checker itself can fail


def test_checker_finds_a_visible_small_count():
    assert chk.check_counts([0, 3, 12], 5)
    assert not chk.check_counts([0, "suppressed", 12, None], 5)


def test_checker_finds_a_cell_recoverable_from_its_total():
    # 3 hidden, total 40 shown: 40 - 25 - 12 = 3
    assert chk.check_distribution([None, 25, 12], 5, total=40)
    # two hidden cells adding up to 3: both known to be small
    assert chk.check_distribution([None, None, 37], 5, total=40)
    # two hidden cells adding up to 15: not narrowed below k
    assert not chk.check_distribution([None, None, 25], 5, total=40)


def test_checker_solves_a_two_way_table():
    # the classic: a hidden 2 recoverable through its column once the row is known
    cells = [[None, 10, 20], [None, 30, 40]]
    assert chk.check_table(cells, 5, row_totals=[32, 73], col_totals=[5, 40, 60], grand=105)
    safe = [[None, None, 20], [None, None, 40]]
    assert not chk.check_table(safe, 5, row_totals=[32, 73], col_totals=[5, 40, 60], grand=105)


def test_checker_reads_percentages_and_quantiles():
    assert chk.check_counts(chk.counts_from_percentages([2.0, 98.0], 100), 5)
    df = pd.DataFrame({"n": [3, 20], "median": [1.0, 2.0], "min": [None, None]})
    assert chk.check_quantiles(df, 5)
    assert not chk.check_no_extremes(df)
    assert chk.check_no_extremes(pd.DataFrame({"Min": [1.0]}))


# --------------------------------------------------------------------------- the library against it


@SETTINGS
@given(st.lists(small_counts, min_size=1, max_size=9), st.integers(min_value=2, max_value=11))
def test_one_way_distributions_are_safe(counts, k):
    total = sum(counts)
    mask = dc.suppress_counts(counts, k)
    if total < k:
        assert mask[np.asarray(counts) > 0].all()
        return
    cells = shown(counts, mask)
    assert chk.check_distribution(cells, k, total=total) == []
    # zeros stay visible unless they had to cover a cell, and shown counts are the true ones
    assert all(v == c for v, c in zip(cells, counts) if v is not None)


@SETTINGS
@given(st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=4), st.data(),
       st.integers(min_value=2, max_value=11))
def test_two_way_tables_with_margins_are_safe(R, C, data, k):
    cells = np.array(data.draw(st.lists(st.lists(small_counts, min_size=C, max_size=C), min_size=R, max_size=R)))
    cm, rm, colm, gm = dc.suppress_table(cells, k)
    grand = int(cells.sum())
    if grand < k:
        assert gm
        return
    shown_cells = [[None if cm[i, j] else int(cells[i, j]) for j in range(C)] for i in range(R)]
    rt = [None if rm[i] else int(cells[i].sum()) for i in range(R)]
    ct = [None if colm[j] else int(cells[:, j].sum()) for j in range(C)]
    assert chk.check_table(shown_cells, k, row_totals=rt, col_totals=ct, grand=grand) == []


def test_primary_and_zero():
    assert dc.primary_mask([0, 1, 4, 5, 100], 5).tolist() == [False, True, True, False, False]
    # one small cell: the next smallest non-zero cell goes too, zeros stay
    assert dc.suppress_counts([0, 3, 50, 7], 5).tolist() == [False, True, False, True]
    # two small cells adding up to less than k: a third one is needed
    assert dc.suppress_counts([1, 1, 50, 7], 5).tolist() == [True, True, False, True]
    # nothing small, nothing hidden
    assert not dc.suppress_counts([0, 5, 50], 5).any()


def test_percentages_follow_their_cells():
    mask = dc.suppress_counts([2, 48, 50], 5)
    assert dc.share([2, 48, 50], mask, [0.02, 0.48, 0.5]) == [None, None, 0.5]


# --------------------------------------------------------------------------- Kaplan-Meier


def _cohort(seed: int, n: int):
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 800, n).astype(float)
    died = rng.random(n) < 0.55
    return days, died


@pytest.mark.parametrize("seed", range(25))
def test_safe_curve_steps_reveal_at_least_k_events_and_stop_before_k_at_risk(seed):
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(3, 120))
    k = int(rng.integers(3, 12))
    days, died = _cohort(seed, n)
    curve = stats.kaplan_meier(days, died)
    safe = dc.safe_curve(curve, k)
    if (curve["n_at_risk"] >= k).sum() == 0:
        assert safe.empty
        return
    assert set(safe.columns) == set(dc.SAFE_CURVE_COLUMNS)  # no count at all
    steps = safe[safe["drawn_step"]]["day"].tolist()
    # independently: deaths between consecutive drawn steps (from the raw data) are >= k
    for n_step, (a, b) in enumerate(zip(steps, steps[1:])):
        after_a = (days >= a) if n_step == 0 else (days > a)  # the origin's own day counts in the first step
        deaths = int((after_a & (days <= b) & died).sum())
        assert deaths >= k, (a, b, deaths)
    # every drawn day still had >= k at risk
    for d in safe["day"]:
        assert int((days >= d).sum()) >= k
    # the values drawn are the exact Kaplan-Meier estimates of those days
    drawn = safe.iloc[1:][safe["drawn_step"].iloc[1:].astype(bool)]  # after the origin
    for d, s in zip(drawn["day"], drawn["survival"]):
        assert s == pytest.approx(stats.survival_at(curve, d)[0])
    # survival at fixed days: None past the end of the safe curve
    assert dc.safe_survival_at(safe, float(safe["day"].iloc[-1]) + 1)[0] is None


def test_safe_median_and_at_risk():
    days = np.arange(1, 101, dtype=float)
    died = np.ones(100, dtype=bool)
    safe = dc.safe_curve(stats.kaplan_meier(days, died), 10)
    status, med = dc.safe_median(safe)
    assert status == "reached" and med == 50
    assert safe["survival"].diff().dropna().le(0).all()
    assert dc.safe_at_risk([100, 23, 9, 0], 10) == [100, 20, None, None]
    assert dc.safe_median(dc.safe_curve(stats.kaplan_meier(days[:3], died[:3]), 10)) == ("suppressed", None)


# --------------------------------------------------------------------------- lab distributions


@SETTINGS
@given(st.lists(st.floats(min_value=0.5, max_value=5.0), min_size=0, max_size=30), st.integers(min_value=2, max_value=11))
def test_lab_summaries_are_safe(values, k):
    s = dc.safe_quantiles(stats.lab_summary(values, 2.1, 2.6), k)
    df = pd.DataFrame([s])
    assert chk.check_no_extremes(df) == []
    assert chk.check_quantiles(df, k) == []
    if len(values) >= k:
        cells = [s["n_low"], None if s["n_low"] is None or s["n_high"] is None else len(values) - s["n_low"] - s["n_high"], s["n_high"]]
        assert chk.check_distribution(cells, k, total=len(values)) == []
        assert chk.check_counts(chk.counts_from_percentages([s["pct_low"], s["pct_high"]], len(values)), k) == []


# --------------------------------------------------------------------------- the policy


def test_policy_default_set_and_broken(tmp_path):
    home = Home(tmp_path / "home")
    assert dc.load_policy(home).min_cell == 5 and dc.load_policy(home).source is None
    dc.save_policy(home, 11)
    assert dc.load_policy(home).min_cell == 11
    dc.policy_file(home).write_text("min_cell = 'x'\n")
    with pytest.raises(ValueError):
        dc.load_policy(home)
    dc.policy_file(home).unlink()
    dc.policy_file(home).with_suffix(".json").write_text('{"min_cell": 10}')
    assert dc.load_policy(home).min_cell == 10
    for bad in (0, -1, 1001, 2.5, True):
        with pytest.raises(ValueError):
            dc.validate_min_cell(bad)


@SETTINGS
@given(st.integers(min_value=2, max_value=5), st.integers(min_value=2, max_value=3), st.data(), st.integers(min_value=2, max_value=11))
def test_two_way_tables_with_margins_fixed_elsewhere_are_safe(R, C, data, k):
    """The groups' sizes and the column totals are published on other tables with their own 1-D
    suppression; the two-way table must be safe given exactly those margins."""
    cells = np.array(data.draw(st.lists(st.lists(small_counts, min_size=C, max_size=C), min_size=R, max_size=R)))
    grand = int(cells.sum())
    if grand < k:
        return
    row_m = dc.suppress_counts(cells.sum(axis=1), k)
    col_m = dc.suppress_counts(cells.sum(axis=0), k)
    cm, rm, colm, gm = dc.suppress_table(cells, k, row_total_hidden=row_m, col_total_hidden=col_m)
    assert rm.tolist() == row_m.tolist() and colm.tolist() == col_m.tolist() and not gm
    shown_cells = [[None if cm[i, j] else int(cells[i, j]) for j in range(C)] for i in range(R)]
    rt = [None if rm[i] else int(cells[i].sum()) for i in range(R)]
    ct = [None if colm[j] else int(cells[:, j].sum()) for j in range(C)]
    assert chk.check_table(shown_cells, k, row_totals=rt, col_totals=ct, grand=grand) == []
