"""labkit.stats: the one bootstrap every interval goes through."""

import numpy as np
import pytest

from labkit import stats
from labkit.errors import ParameterError


def test_interval_covers_the_mean_and_narrows_with_more_items():
    rng = np.random.default_rng(0)
    small = stats.interval(rng.normal(size=30), n_resamples=500)
    large = stats.interval(rng.normal(size=3000), n_resamples=500)
    assert small.low < small.estimate < small.high
    assert large.width < small.width / 5


def test_same_seed_same_interval_other_seed_other_interval():
    x = np.random.default_rng(1).normal(size=50)
    assert stats.interval(x, seed=3) == stats.interval(x, seed=3)
    assert stats.interval(x, seed=3) != stats.interval(x, seed=4)


def test_clustered_interval_is_wider_when_groups_are_correlated():
    # 20 groups of 10 near-identical items: 200 "items" but only 20 independent units.
    rng = np.random.default_rng(2)
    centres = rng.normal(size=20)
    values = np.repeat(centres, 10) + rng.normal(scale=0.01, size=200)
    groups = np.repeat(np.arange(20), 10)
    naive = stats.interval(values)
    clustered = stats.interval(values, groups=groups)
    assert clustered.width > 2.5 * naive.width
    assert clustered.estimate == pytest.approx(naive.estimate)


def test_clustered_interval_with_a_general_statistic():
    values = np.array([1.0, 1.0, 5.0, 5.0, 9.0, 9.0])
    iv = stats.interval(values, np.median, groups=["a", "a", "b", "b", "c", "c"], n_resamples=300)
    assert iv.low >= 1.0 and iv.high <= 9.0 and iv.estimate == 5.0


def test_paired_difference_is_sharper_than_separate_intervals():
    rng = np.random.default_rng(3)
    base = rng.normal(scale=5.0, size=100)  # large item-to-item spread shared by both systems
    a, b = base + 0.3 + rng.normal(scale=0.1, size=100), base
    d = stats.paired_difference(a, b)
    ia, ib = stats.interval(a), stats.interval(b)
    assert d.excludes(0.0) and d.p_a_better == 1.0 and d.p_value < 0.01
    assert ia.low < ib.high  # the separate intervals overlap: only pairing shows the effect


def test_paired_difference_of_equal_systems_is_not_significant():
    x = np.random.default_rng(4).normal(size=80)
    d = stats.paired_difference(x, x.copy())
    assert d.estimate == 0.0 and not d.excludes(0.0) and d.p_value == 1.0


def test_distribution_shares_resamples_between_metrics():
    y = np.array([0, 1] * 20)
    s = np.linspace(0, 1, 40)
    samples = stats.distribution(lambda idx: np.array([y[idx].mean(), s[idx].mean()]), 40, n_resamples=200)
    assert samples.shape == (200, 2)
    grouped = stats.distribution(lambda idx: float(len(idx)), 40, groups=np.repeat(np.arange(8), 5), n_resamples=50)
    assert set(grouped) == {40.0}  # 8 groups of 5 drawn: always 40 items


def test_degenerate_inputs_give_nan_bounds_or_one_clear_error():
    one = stats.interval([2.0])
    assert one.estimate == 2.0 and np.isnan(one.low) and not one.clears(0.0)
    with pytest.raises(ParameterError, match="at least one value"):
        stats.interval([])
    with pytest.raises(ParameterError, match="finite"):
        stats.interval([1.0, float("nan")])
    with pytest.raises(ParameterError, match="n_resamples"):
        stats.interval([1.0, 2.0], n_resamples=0)
    with pytest.raises(ParameterError, match="same items"):
        stats.paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ParameterError, match="one label per item"):
        stats.interval([1.0, 2.0], groups=["a"])


def test_interval_helpers():
    iv = stats.Interval(1.0, 0.5, 1.5)
    assert iv.clears(0.4) and not iv.clears(0.5) and iv.below(2.0) and iv.contains(1.2)
    assert iv.as_dict("r") == {"r": 1.0, "r_low": 0.5, "r_high": 1.5}
    assert stats.from_samples(1.0, np.arange(101)).low == pytest.approx(2.5)
