"""Bootstrap confidence intervals for a scaling-law fit.

Each resample draws the points with replacement and refits. The resamples are drawn by
:func:`labkit.stats.distribution` (``scipy.stats.bootstrap``, ``numpy.random.default_rng(seed)``)
and the intervals are :func:`labkit.stats.from_samples` percentile intervals, so "95% interval"
means here what it means in every other study; only the refits (costly, so spread over
processes) happen outside it. The unit is one training run (one point): runs of a sweep are
separate trainings, not repeated measurements of one, so no clustering applies. A refit starts from the full-data
optimum plus a few points of the published grid: the resampled optimum lies near the full-data
one, so this finds the same minimum as the 4,500-start grid at a thousandth of the cost (the
benchmark ``benchmarks/scaling_fit.py`` checks both: time per fit and agreement). Resamples are
split over processes with joblib; each worker's loop runs with one BLAS thread
(``threadpoolctl``), since the arrays are tiny and a thread team per product only costs time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from labkit import stats
from labkit.device import cpu_threads
from labkit.errors import ParameterError
from labkit.scaling.fit import (
    _FORMS,
    HUBER_DELTA,
    FitResult,
    _minimize_starts,
    grid_starts,
    load_points,
)

#: optimiser coordinates that are logs of a human parameter get that name in the samples table
RAW_NAMES = {"a": "log_A", "b": "log_B", "e": "log_E"}


def refit_starts(full: FitResult, n_grid: int, seed: int = 0) -> np.ndarray:
    """The full-data optimum, then ``n_grid`` points drawn from the published grid."""
    _, _, grid, order = _FORMS[full.form]
    starts = [full.theta]
    if n_grid > 0:
        everything = grid_starts(grid, order)
        pick = np.random.default_rng(seed).choice(len(everything), size=min(n_grid, len(everything)), replace=False)
        starts.extend(everything[pick])
    return np.array(starts, dtype=float)


def _refit_many(indices: np.ndarray, logN, logD, logL, starts, form, delta) -> np.ndarray:
    out = np.full((len(indices), starts.shape[1] + 2), np.nan)
    with threadpool_limits(1):
        for i, idx in enumerate(indices):
            theta, obj, _, _, ok = _minimize_starts(starts, logN[idx], logD[idx], logL[idx], form, delta)
            out[i, :-2], out[i, -2], out[i, -1] = theta, obj, float(ok)
    return out


def resample_indices(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """``(n_resamples, n)`` point indices drawn with replacement by :func:`labkit.stats.distribution`
    (the statistic of each resample is its own index set; the refits happen afterwards)."""
    drawn = stats.distribution(lambda idx: idx, n, n_resamples=n_resamples, seed=seed)
    return np.asarray(drawn, dtype=np.int64).reshape(n_resamples, n)


def bootstrap(
    points: pd.DataFrame,
    full: FitResult,
    n_resamples: int = 1000,
    *,
    seed: int = 0,
    n_grid: int = 4,
    n_jobs: int = 1,
    delta: float = HUBER_DELTA,
) -> pd.DataFrame:
    """Refit ``full.form`` on ``n_resamples`` resamples of ``points``.

    Args:
        points: the points ``full`` was fitted on (``N, D, loss``).
        full: the fit on all points (its optimum seeds every refit).
        n_resamples: number of bootstrap resamples (Epoch used 4,000; 1,000 is the minimum
            this study reports).
        seed: seeds the resampling and the grid points.
        n_grid: extra starts from the published grid per refit.
        n_jobs: processes (joblib); results do not depend on it.

    Returns:
        One row per resample: ``resample``, human parameters (``E, A, B, alpha, beta`` or
        Kaplan's), the optimiser's log coordinates (``log_A, log_B, log_E`` or ``log_Nc,
        log_Dc``), ``objective`` and ``converged``.
    """
    if n_resamples < 1:
        raise ParameterError(f"n_resamples={n_resamples} must be >= 1")
    points = load_points(points, n_params=len(full.theta))
    logN, logD, logL = (np.log(points[c].to_numpy(float)) for c in ("N", "D", "loss"))
    indices = resample_indices(len(points), n_resamples, seed)
    starts = refit_starts(full, n_grid, seed)
    n_jobs = min(n_jobs, cpu_threads())  # never more workers than this process's threads
    if n_jobs > 1 and n_resamples >= 2 * n_jobs:
        from joblib import Parallel, delayed

        parts = Parallel(n_jobs=n_jobs)(
            delayed(_refit_many)(chunk, logN, logD, logL, starts, full.form, delta)
            for chunk in np.array_split(indices, n_jobs)
        )
        raw = np.vstack(parts)
    else:
        raw = _refit_many(indices, logN, logD, logL, starts, full.form, delta)
    _, _, _, order = _FORMS[full.form]
    human = pd.DataFrame(
        [FitResult(full.form, row, 0.0, 0, 0, 0, True, "", np.empty(0), np.empty(0)).params for row in raw[:, :-2]]
    )
    raw_names = [RAW_NAMES.get(k, k) for k in order]
    keep = [i for i, k in enumerate(raw_names) if k not in human.columns]
    frame = pd.concat([human, pd.DataFrame(raw[:, keep], columns=[raw_names[i] for i in keep])], axis=1)
    frame["objective"], frame["converged"] = raw[:, -2], raw[:, -1].astype(bool)
    frame.insert(0, "resample", np.arange(n_resamples))
    return frame


def intervals(
    samples: pd.DataFrame,
    estimate: dict[str, float],
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Percentile intervals (:func:`labkit.stats.from_samples`) of each human parameter beside
    the full-data estimate; refits that returned no finite value are left out."""
    rows = []
    for name, value in estimate.items():
        col = samples[name].to_numpy(float)
        col = col[np.isfinite(col)]
        iv = stats.from_samples(value, col, confidence)
        rows.append(
            {
                "parameter": name,
                "estimate": value,
                "low": iv.low,
                "high": iv.high,
                "std": float(col.std(ddof=1)) if len(col) > 1 else float("nan"),
            }
        )
    return pd.DataFrame(rows)
