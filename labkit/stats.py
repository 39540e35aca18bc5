"""Bootstrap intervals for every study: one implementation, one resample-count name, one seed rule.

Every interval labkit reports comes from here, so that "95% interval" means the same thing in
every table: a **percentile bootstrap** (``scipy.stats.bootstrap(method="percentile")``) with
``n_resamples`` resamples drawn from ``numpy.random.default_rng(seed)``.

Why percentile and not BCa: several statistics here are costly (AUC, pooled perplexity) and
BCa's jackknife would evaluate them once per item, and BCa has no clustered form. Why a wrapper
at all: scipy resamples single observations only, and labkit's data are often **clustered**
(two pairs share a question, many queries share a meeting, prompts share a document). With
``groups=`` the resampling unit is the group: whole groups are drawn with replacement and every
item of a drawn group comes along, which keeps the within-group correlation in each resample
and gives honest (wider) intervals.

Three entry points cover the studies:

- :func:`interval` -- a statistic of one sample (mean by default) and its interval;
- :func:`paired_difference` -- ``a - b`` on the same items, resampled together (paired);
- :func:`distribution` -- the bootstrap distribution of any statistic of item indices (several
  metrics of one resample, pooled statistics), turned into intervals by :func:`from_samples`.

>>> iv = interval([1.0, 2.0, 3.0, 4.0], n_resamples=200)
>>> iv.estimate, iv.low < iv.estimate < iv.high
(2.5, True)
>>> d = paired_difference([3.0, 4.0, 5.0, 6.0], [1.0, 2.0, 3.0, 4.0], n_resamples=200)
>>> d.estimate, d.excludes(0.0), d.p_a_better
(2.0, True, 1.0)
>>> grouped = interval([1.0, 1.0, 5.0, 5.0], groups=["x", "x", "y", "y"], n_resamples=200)
>>> grouped.low, grouped.high
(1.0, 5.0)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

from labkit.errors import ParameterError

#: Resamples per interval unless a caller says otherwise (``n_resamples`` everywhere).
N_RESAMPLES = 1000
#: Two-sided coverage of every interval unless a caller says otherwise.
CONFIDENCE = 0.95

__all__ = [
    "CONFIDENCE",
    "Interval",
    "N_RESAMPLES",
    "PairedDifference",
    "distribution",
    "from_samples",
    "group_codes",
    "interval",
    "paired_difference",
    "paired_from_samples",
    "percentile_bounds",
]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile-bootstrap interval (``nan`` bounds: no interval,
    e.g. a single item)."""

    estimate: float
    low: float
    high: float
    confidence: float = CONFIDENCE
    n_resamples: int = N_RESAMPLES

    @property
    def width(self) -> float:
        return self.high - self.low

    def clears(self, floor: float) -> bool:
        """True when the whole interval lies above ``floor`` (a target met, a floor beaten)."""
        return bool(np.isfinite(self.low) and self.low > floor)

    def below(self, ceiling: float) -> bool:
        """True when the whole interval lies below ``ceiling``."""
        return bool(np.isfinite(self.high) and self.high < ceiling)

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside the interval (a difference that is not noise)."""
        return self.clears(value) or self.below(value)

    def contains(self, value: float) -> bool:
        return bool(np.isfinite(self.low) and self.low <= value <= self.high)

    def as_dict(self, name: str) -> dict[str, float]:
        """``{name, name_low, name_high}``: the column convention of labkit's tables."""
        return {name: self.estimate, f"{name}_low": self.low, f"{name}_high": self.high}


@dataclass(frozen=True)
class PairedDifference(Interval):
    """``a - b`` on the same items, with the share of resamples in which ``a`` is ahead and a
    two-sided bootstrap p-value (twice the smaller tail beyond 0, at most 1)."""

    p_a_better: float = float("nan")
    p_value: float = float("nan")

    def as_dict(self, name: str) -> dict[str, float]:
        out = super().as_dict(name)
        out.update({f"{name}_p_a_better": self.p_a_better, f"{name}_p_value": self.p_value})
        return out


def group_codes(groups: Sequence | None, n: int) -> np.ndarray | None:
    """Integer code per item for ``groups`` (any hashable labels), or None for no clustering."""
    if groups is None:
        return None
    labels = np.asarray(groups, dtype=object)
    if labels.shape != (n,):
        raise ParameterError(
            f"groups must give one label per item ({n} items, got {labels.shape[0] if labels.ndim else 'a scalar'})"
        )
    _, codes = np.unique(labels.astype(str), return_inverse=True)
    return codes.ravel()


def _check(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ParameterError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if not 0 < confidence < 1:
        raise ParameterError(f"confidence must lie in (0, 1), got {confidence!r}")


def percentile_bounds(samples, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of a bootstrap sample (nan-aware; ``(nan, nan)`` if all are nan)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0 or np.all(np.isnan(x)):
        return float("nan"), float("nan")
    tail = 100 * (1 - confidence) / 2
    return float(np.nanpercentile(x, tail)), float(np.nanpercentile(x, 100 - tail))


def from_samples(estimate: float, samples, confidence: float = CONFIDENCE) -> Interval:
    """An :class:`Interval` around ``estimate`` from a given bootstrap sample of it."""
    low, high = percentile_bounds(samples, confidence)
    return Interval(float(estimate), low, high, confidence, int(np.asarray(samples).size))


def distribution(
    statistic: Callable[[np.ndarray], float | np.ndarray],
    n: int,
    *,
    groups: Sequence | None = None,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap distribution of ``statistic(indices)`` over ``n`` items.

    ``statistic`` receives an integer array of item indices (a resample, with repeats) and
    returns a number or a 1-d array (several metrics of the same resample). With ``groups``,
    whole groups are drawn and the indices of their items passed. Returns shape
    ``(n_resamples,)`` or ``(n_resamples, k)``.
    """
    _check(n_resamples, CONFIDENCE)
    if n < 2:
        raise ParameterError(f"a bootstrap needs at least 2 items, got {n}")
    codes = group_codes(groups, n)
    rng = np.random.default_rng(seed)
    if codes is None:
        units = np.arange(n)

        def on_units(idx):
            return np.asarray(statistic(np.asarray(idx, dtype=int)), dtype=float)
    else:
        members = [np.flatnonzero(codes == g) for g in range(codes.max() + 1)]
        if len(members) < 2:
            raise ParameterError("a clustered bootstrap needs at least 2 groups")
        units = np.arange(len(members))

        def on_units(idx):
            items = np.concatenate([members[int(g)] for g in idx])
            return np.asarray(statistic(items), dtype=float)

    res = _scipy_stats.bootstrap(
        (units,), on_units, vectorized=False, method="percentile", n_resamples=n_resamples, rng=rng
    )
    return np.moveaxis(np.asarray(res.bootstrap_distribution, dtype=float), -1, 0)


def _mean_by_units(values: np.ndarray, codes: np.ndarray | None):
    """Data and a vectorised mean statistic for scipy: items, or (sum, count) per group."""
    if codes is None:
        return values, lambda x, axis=-1: np.mean(x, axis=axis)
    sums = np.bincount(codes, weights=values)
    counts = np.bincount(codes).astype(float)
    return np.arange(sums.size), lambda g, axis=-1: np.sum(sums[g], axis=axis) / np.sum(counts[g], axis=axis)


def interval(
    values: Sequence[float],
    statistic: Callable | None = None,
    *,
    groups: Sequence | None = None,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """``statistic`` of ``values`` (default: the mean) with its percentile-bootstrap interval.

    ``statistic`` must take an array and an ``axis`` keyword, like ``np.median``; with
    ``groups`` and the default mean, each resample's mean is over the items of the drawn groups
    (a ratio estimator: large groups weigh more, as they do in the point estimate). Fewer than
    two items (or groups) give ``nan`` bounds.
    """
    _check(n_resamples, confidence)
    x = np.asarray(values, dtype=float).ravel()
    if x.size == 0:
        raise ParameterError("an interval needs at least one value")
    if not np.all(np.isfinite(x)):
        raise ParameterError("an interval needs finite values (got nan or inf)")
    estimate = float(np.mean(x) if statistic is None else statistic(x, axis=-1))
    codes = group_codes(groups, x.size)
    if statistic is None:
        data, stat = _mean_by_units(x, codes)
    elif codes is None:
        data, stat = x, statistic
    else:  # a general statistic of clustered data: expand the drawn groups, resample by resample
        samples = distribution(
            lambda idx: statistic(x[idx], axis=-1),
            x.size,
            groups=groups,
            n_resamples=n_resamples,
            seed=seed,
        )
        return from_samples(estimate, samples, confidence)
    if data.size < 2:
        return Interval(estimate, float("nan"), float("nan"), confidence, n_resamples)
    res = _scipy_stats.bootstrap(
        (data,),
        stat,
        vectorized=True,
        method="percentile",
        n_resamples=n_resamples,
        confidence_level=confidence,
        rng=np.random.default_rng(seed),
    )
    return Interval(
        estimate,
        float(res.confidence_interval.low),
        float(res.confidence_interval.high),
        confidence,
        n_resamples,
    )


def _paired_from_samples(estimate: float, samples, confidence: float) -> PairedDifference:
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        nan = float("nan")
        return PairedDifference(float(estimate), nan, nan, confidence, 0, nan, nan)
    low, high = percentile_bounds(s, confidence)
    p_value = min(1.0, 2 * min(float(np.mean(s <= 0)), float(np.mean(s >= 0))))
    return PairedDifference(float(estimate), low, high, confidence, int(s.size), float(np.mean(s > 0)), p_value)


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    statistic: Callable | None = None,
    *,
    groups: Sequence | None = None,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> PairedDifference:
    """``statistic(a) - statistic(b)`` on the same items, both computed on each resample.

    ``a[i]`` and ``b[i]`` must be scores of the same item (the same prompt, pair or query), so
    the resampling keeps them together: the item-to-item spread that both systems share cancels,
    which is what makes a paired comparison sharper than two separate intervals.
    """
    _check(n_resamples, confidence)
    xa, xb = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if xa.shape != xb.shape:
        raise ParameterError(f"a paired comparison needs scores on the same items ({xa.size} vs {xb.size})")
    if xa.size == 0:
        raise ParameterError("a paired comparison needs at least one item")
    stat = statistic if statistic is not None else (lambda v, axis=-1: np.mean(v, axis=axis))
    estimate = float(stat(xa, axis=-1) - stat(xb, axis=-1))
    units = xa.size if groups is None else len(set(np.asarray(groups, dtype=str)))
    if units < 2:
        nan = float("nan")
        return PairedDifference(estimate, nan, nan, confidence, n_resamples, nan, nan)
    if statistic is None and groups is None:  # the common case, vectorised
        res = _scipy_stats.bootstrap(
            (xa - xb,),
            stat,
            vectorized=True,
            method="percentile",
            n_resamples=n_resamples,
            confidence_level=confidence,
            rng=np.random.default_rng(seed),
        )
        return _paired_from_samples(estimate, res.bootstrap_distribution, confidence)
    samples = distribution(
        lambda idx: stat(xa[idx], axis=-1) - stat(xb[idx], axis=-1),
        xa.size,
        groups=groups,
        n_resamples=n_resamples,
        seed=seed,
    )
    return _paired_from_samples(estimate, samples, confidence)


def paired_from_samples(estimate: float, samples, confidence: float = CONFIDENCE) -> PairedDifference:
    """A :class:`PairedDifference` from a bootstrap sample of a difference (see
    :func:`distribution`, e.g. two metrics of the same resample subtracted)."""
    return _paired_from_samples(estimate, samples, confidence)
