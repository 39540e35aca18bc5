"""Scaling-law fits: Chinchilla's approach 3 exactly as published, and Kaplan's joint form.

Hoffmann et al. (2022) fit L(N, D) = E + A/N^alpha + B/D^beta by minimising the *sum* of Huber
losses (delta = 1e-3) between log L and ``logsumexp(a - alpha log N, b - beta log D, e)``
(A = e^a, B = e^b, E = e^e) with L-BFGS-B from a grid of initialisations, keeping the best.
Epoch AI's replication (Besiroglu et al. 2024) showed the published fit was stopped early
because the loss was averaged rather than summed; we sum. The objective is vectorised over
points and has an analytic gradient, so one L-BFGS-B run costs a few milliseconds and the
4,500-start published grid or 1,000 bootstrap refits fit in seconds (scipy.optimize does all
the optimising). Each optimiser loop runs with one BLAS thread
(:func:`threadpoolctl.threadpool_limits`): the vectors are a few hundred long, and letting
OpenBLAS start a thread team per small matrix-vector product made one start 35x slower.

:func:`load_points` validates any (N, D, loss) table a user brings; every bad input raises a
:class:`labkit.errors.DataError` naming the file, row and field.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from labkit.device import cpu_threads
from labkit.errors import LabkitError, ParameterError
from labkit.scaling.allocation import compute_optimal  # noqa: F401  (re-exported)
from labkit.scaling.points import REQUIRED_COLUMNS, drop_highest_loss, load_points  # noqa: F401 (re-exported)

HUBER_DELTA = 1e-3
#: L-BFGS-B stopping tolerances. With delta = 1e-3 the summed objective is about 1e-3 and
#: nearly flat along A and B, so scipy's defaults (ftol 2.2e-9 relative) stop a refit a few
#: steps from its start: bootstrap intervals then collapse onto the starting point. These make
#: a warm-started refit land on the same optimum as the full 4,500-start grid.
LBFGS_OPTIONS = {"ftol": 1e-15, "gtol": 1e-12}
#: Published approach-3 initialisation grid (Hoffmann et al. 2022, Epoch's "replicate exactly"
#: cell): alpha, beta in {0, 0.5, ..., 2}; e in {-1, -0.5, ..., 1}; a, b in {0, 5, ..., 25}.
CHINCHILLA_GRID = {
    "a": np.arange(0.0, 30.0, 5.0),
    "b": np.arange(0.0, 30.0, 5.0),
    "e": np.arange(-1.0, 1.5, 0.5),
    "alpha": np.arange(0.0, 2.5, 0.5),
    "beta": np.arange(0.0, 2.5, 0.5),
}
CHINCHILLA_PARAMS = ("a", "b", "e", "alpha", "beta")
#: Kaplan joint form L = [(Nc/N)^(aN/aD) + Dc/D]^aD, fitted as (log Nc, log Dc, aN/aD, aD).
KAPLAN_GRID = {
    "log_Nc": np.array([15.0, 25.0, 35.0]),
    "log_Dc": np.array([15.0, 25.0, 35.0]),
    "ratio": np.array([0.5, 1.0, 2.0]),
    "alpha_D": np.array([0.05, 0.1, 0.3]),
}
KAPLAN_PARAMS = ("log_Nc", "log_Dc", "ratio", "alpha_D")


class FitDidNotConverge(LabkitError):
    """No L-BFGS-B start converged; ``best`` holds the best point found anyway."""

    def __init__(self, message: str, best: dict[str, float]):
        super().__init__(message)
        self.best = best


# --------------------------------------------------------------------------- input checks


# --------------------------------------------------------------------------- objectives


def _huber_and_slope(r: np.ndarray, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss (scipy.special.huber's convention) and its derivative in r."""
    absr = np.abs(r)
    quad = absr <= delta
    value = np.where(quad, 0.5 * r * r, delta * (absr - 0.5 * delta))
    return value, np.clip(r, -delta, delta)


def chinchilla_log_pred(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
    """log L predicted by ``theta = (a, b, e, alpha, beta)``."""
    a, b, e, alpha, beta = theta
    terms = np.stack([a - alpha * logN, b - beta * logD, np.full_like(logN, e)])
    return logsumexp(terms, axis=0)


def chinchilla_objective(
    theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float = HUBER_DELTA
) -> tuple[float, np.ndarray]:
    """Summed Huber loss on log loss and its analytic gradient (for L-BFGS-B's ``jac=True``)."""
    a, b, e, alpha, beta = theta
    t1 = a - alpha * logN
    t2 = b - beta * logD
    m = np.maximum(np.maximum(t1, t2), e)
    w1, w2, w3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(e - m)
    s = w1 + w2 + w3
    r = m + np.log(s) - logL
    value, slope = _huber_and_slope(r, delta)
    g1, g2, g3 = slope * w1 / s, slope * w2 / s, slope * w3 / s
    grad = np.array([g1.sum(), g2.sum(), g3.sum(), -(g1 * logN).sum(), -(g2 * logD).sum()])
    return float(value.sum()), grad


def kaplan_log_pred(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
    """log L of Kaplan's joint form, ``theta = (log Nc, log Dc, alpha_N/alpha_D, alpha_D)``."""
    lNc, lDc, ratio, alpha_D = theta
    return alpha_D * np.logaddexp(ratio * (lNc - logN), lDc - logD)


def kaplan_objective(
    theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float = HUBER_DELTA
) -> tuple[float, np.ndarray]:
    """Same summed Huber loss in log space, for Kaplan's form (no irreducible term)."""
    lNc, lDc, ratio, alpha_D = theta
    u1, u2 = ratio * (lNc - logN), lDc - logD
    s = np.logaddexp(u1, u2)
    w1 = np.exp(u1 - s)
    w2 = 1.0 - w1
    r = alpha_D * s - logL
    value, slope = _huber_and_slope(r, delta)
    grad = np.array(
        [
            (slope * alpha_D * w1 * ratio).sum(),
            (slope * alpha_D * w2).sum(),
            (slope * alpha_D * w1 * (lNc - logN)).sum(),
            (slope * s).sum(),
        ]
    )
    return float(value.sum()), grad


#: E fixed at 0, L = A/N^alpha + B/D^beta, fitted as (a, b, alpha, beta): the constrained form a
#: sweep reports when its data cannot identify E (issue 23), flagged as such
E0_PARAMS = ("a", "b", "alpha", "beta")
_NO_E = -745.0  # log of the smallest positive double: the E term is exactly zero


def e0_log_pred(theta: np.ndarray, logN: np.ndarray, logD: np.ndarray) -> np.ndarray:
    return np.logaddexp(theta[0] - theta[2] * logN, theta[1] - theta[3] * logD)


def e0_objective(
    theta: np.ndarray, logN: np.ndarray, logD: np.ndarray, logL: np.ndarray, delta: float = HUBER_DELTA
) -> tuple[float, np.ndarray]:
    """Chinchilla's objective with the E term removed (its gradient without the e entry)."""
    a, b, alpha, beta = theta
    value, grad = chinchilla_objective(np.array([a, b, _NO_E, alpha, beta]), logN, logD, logL, delta)
    return value, grad[[0, 1, 3, 4]]


# --------------------------------------------------------------------------- results


@dataclass
class FitResult:
    """One fitted law: parameters, goodness of fit, residuals and optimiser bookkeeping."""

    form: str  # "chinchilla" | "chinchilla_e0" | "kaplan"
    theta: np.ndarray
    objective: float
    n_points: int
    n_starts: int
    n_converged: int
    converged: bool
    message: str
    residuals: np.ndarray = field(repr=False)  # log L observed - log L predicted
    loss: np.ndarray = field(repr=False)
    N: np.ndarray | None = field(default=None, repr=False)
    D: np.ndarray | None = field(default=None, repr=False)
    #: which parameters the data identify (:mod:`labkit.scaling.diagnostics`); set by
    #: :func:`fit` from bounds and convergence, refined with the bootstrap by the study
    diagnostics: Any = None

    @property
    def params(self) -> dict[str, float]:
        """Human parameters: E, A, B, alpha, beta (Chinchilla) or Nc, Dc, alpha_N, alpha_D."""
        t = self.theta
        if self.form == "chinchilla":
            a, b, e, alpha, beta = t
            return {
                "E": float(np.exp(e)),
                "A": float(np.exp(a)),
                "B": float(np.exp(b)),
                "alpha": float(alpha),
                "beta": float(beta),
            }
        if self.form == "chinchilla_e0":
            a, b, alpha, beta = t
            return {"A": float(np.exp(a)), "B": float(np.exp(b)), "alpha": float(alpha), "beta": float(beta)}
        lNc, lDc, ratio, alpha_D = t
        return {
            "Nc": float(np.exp(lNc)),
            "Dc": float(np.exp(lDc)),
            "alpha_N": float(ratio * alpha_D),
            "alpha_D": float(alpha_D),
        }

    def predict(self, N: Any, D: Any) -> np.ndarray:
        """Predicted loss at parameters ``N`` and tokens ``D`` (broadcast)."""
        logN, logD = np.broadcast_arrays(np.log(np.asarray(N, float)), np.log(np.asarray(D, float)))
        fn = _FORMS[self.form][1]
        return np.exp(fn(self.theta, logN.ravel(), logD.ravel())).reshape(logN.shape)

    def goodness(self) -> dict[str, float]:
        """Summed Huber objective, RMSE / MAE of log residuals, R^2 of the loss, max |error|."""
        r = self.residuals
        pred = self.loss * np.exp(-r)
        ss_res = float(((self.loss - pred) ** 2).sum())
        ss_tot = float(((self.loss - self.loss.mean()) ** 2).sum())
        return {
            "huber_objective": self.objective,
            "rmse_log": float(np.sqrt((r**2).mean())),
            "mae_log": float(np.abs(r).mean()),
            "max_abs_log": float(np.abs(r).max()),
            "r2_loss": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan"),
            "n_points": self.n_points,
        }


# --------------------------------------------------------------------------- fitting

_FORMS = {
    "chinchilla": (chinchilla_objective, chinchilla_log_pred, CHINCHILLA_GRID, CHINCHILLA_PARAMS),
    "chinchilla_e0": (e0_objective, e0_log_pred, {k: CHINCHILLA_GRID[k] for k in E0_PARAMS}, E0_PARAMS),
    "kaplan": (kaplan_objective, kaplan_log_pred, KAPLAN_GRID, KAPLAN_PARAMS),
}


def grid_starts(grid: dict[str, np.ndarray], order: Sequence[str]) -> np.ndarray:
    """Every combination of a grid of initial values, as rows in ``order``."""
    return np.array(list(itertools.product(*(grid[k] for k in order))), dtype=float)


def _arrays(points: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.log(points["N"].to_numpy(float)),
        np.log(points["D"].to_numpy(float)),
        np.log(points["loss"].to_numpy(float)),
    )


def minimize_from(
    starts: np.ndarray,
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    form: str = "chinchilla",
    delta: float = HUBER_DELTA,
    maxiter: int = 15000,
) -> tuple[np.ndarray, float, int, str, bool]:
    """L-BFGS-B (scipy) from each start; the best converged result, else the best overall.

    Runs with one BLAS thread (see the module docstring). Returns ``(theta, objective,
    n_converged, message, converged)``.
    """
    with threadpool_limits(1):
        return _minimize_starts(starts, logN, logD, logL, form, delta, maxiter)


def _minimize_starts(
    starts: np.ndarray,
    logN: np.ndarray,
    logD: np.ndarray,
    logL: np.ndarray,
    form: str = "chinchilla",
    delta: float = HUBER_DELTA,
    maxiter: int = 15000,
) -> tuple[np.ndarray, float, int, str, bool]:
    """:func:`minimize_from` without touching thread limits (callers that loop set them once)."""
    objective = _FORMS[form][0]
    best, best_ok = None, None
    n_ok = 0
    for x0 in np.atleast_2d(starts):
        res = minimize(
            objective,
            x0,
            args=(logN, logD, logL, delta),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": maxiter, **LBFGS_OPTIONS},
        )
        if not np.isfinite(res.fun):
            continue
        if best is None or res.fun < best.fun:
            best = res
        if res.success:
            n_ok += 1
            if best_ok is None or res.fun < best_ok.fun:
                best_ok = res
    if best is None:
        return np.full(len(starts[0]), np.nan), float("nan"), 0, "no start gave a finite objective", False
    chosen = best_ok if best_ok is not None else best
    return chosen.x, float(chosen.fun), n_ok, str(chosen.message), best_ok is not None


def fit(
    points: pd.DataFrame | str | Path,
    form: str = "chinchilla",
    *,
    starts: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    maxiter: int = 15000,
    n_jobs: int = 1,
    raise_on_failure: bool = True,
) -> FitResult:
    """Fit ``form`` to validated points by the published approach-3 procedure.

    Args:
        points: a frame or CSV with ``N, D, loss`` (validated with :func:`load_points`).
        form: ``"chinchilla"`` (E + A/N^alpha + B/D^beta), ``"chinchilla_e0"`` (the same with
            E = 0) or ``"kaplan"`` (joint form).
        starts: initial points, rows in :data:`CHINCHILLA_PARAMS` / :data:`KAPLAN_PARAMS`
            order; default the published grid (4,500 starts for Chinchilla's form).
        delta: Huber delta on log loss (published: 1e-3).
        maxiter: L-BFGS-B iteration cap per start.
        n_jobs: split the starts over this many processes (result is identical).
        raise_on_failure: raise :class:`FitDidNotConverge` when no start converges.
    """
    if form not in _FORMS:
        raise ParameterError(f"form={form!r}: choose one of {', '.join(map(repr, _FORMS))}")
    _, log_pred, grid, order = _FORMS[form]
    points = load_points(points, n_params=len(order))
    logN, logD, logL = _arrays(points)
    starts = grid_starts(grid, order) if starts is None else np.atleast_2d(np.asarray(starts, float))
    if starts.shape[1] != len(order):
        raise ParameterError(f"starts must have {len(order)} columns ({', '.join(order)}), got {starts.shape[1]}")
    n_jobs = min(n_jobs, cpu_threads())  # never more workers than this process's threads
    if n_jobs > 1 and len(starts) > 50:
        from joblib import Parallel, delayed

        chunks = np.array_split(starts, n_jobs)
        parts = Parallel(n_jobs=n_jobs)(
            delayed(minimize_from)(c, logN, logD, logL, form, delta, maxiter) for c in chunks
        )
        ok_parts = [p for p in parts if p[4]] or [p for p in parts if np.isfinite(p[1])] or parts
        theta, obj, _, msg, conv = min(ok_parts, key=lambda p: p[1])
        n_ok = sum(p[2] for p in parts)
    else:
        theta, obj, n_ok, msg, conv = minimize_from(starts, logN, logD, logL, form, delta, maxiter)
    result = FitResult(
        form=form,
        theta=np.asarray(theta, float),
        objective=obj,
        n_points=len(points),
        n_starts=len(starts),
        n_converged=n_ok,
        converged=conv,
        message=msg,
        residuals=logL - log_pred(theta, logN, logD),
        loss=np.exp(logL),
        N=np.exp(logN),
        D=np.exp(logD),
    )
    from labkit.scaling.diagnostics import diagnose  # diagnostics reads FitResult

    result.diagnostics = diagnose(result)
    if not conv and raise_on_failure:
        best = {k: round(v, 6) for k, v in result.params.items()} if np.all(np.isfinite(theta)) else {}
        raise FitDidNotConverge(
            f"{form} fit did not converge: none of {len(starts)} L-BFGS-B start(s) met scipy's "
            f"convergence test within maxiter={maxiter} (last message: {msg!r}). Best point found: "
            f"{best} with summed Huber objective {obj:.6g}. Try more iterations (maxiter), "
            f"other starts, or check the data for outliers.",
            best,
        )
    return result


# ------------------------------------------------ published constants (allocation: .allocation)

#: Hoffmann et al. 2022's published approach-3 constants (paper body) and Chinchilla's compute
HOFFMANN_PARAMS = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
CHINCHILLA_COMPUTE = 5.76e23  # FLOP: 70B parameters x 1.4T tokens x 6
