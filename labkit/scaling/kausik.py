"""Kausik's bounds (arXiv 2402.14746 v1): unique sequences, N ~ D^gamma, data to double skills.

Read the data term of a fitted law L(N, D) = E + A/N^alpha + B/D^beta as the excess loss an
efficient model reaches on D tokens. PAC estimates of that excess for a model class whose size
is the number U of unique sequences in the corpus are U/D (realizable) and sqrt(U/D)
(agnostic). Setting each equal to D^-beta bounds U between D^(1-2 beta) and D^(1-beta); an
efficient model needs N ~ U, so N ~ D^gamma with gamma in [1-2 beta, 1-beta]. Identifying
skills with unique sequences, doubling them needs 2^(1/gamma) times more data. At Chinchilla's
beta = 0.28 this gives gamma in [0.44, 0.72] (midpoint 0.58) and 2.6x to 4.8x, the paper's
numbers. (The mapping of the two PAC regimes is a reconstruction, not checked against the
paper's text: at beta = 0.28 it gives the paper's 0.44, 0.58, 0.72, 2.6x and 4.8x, which a unit
test checks; see docs/scaling_laws.md.)

What the study leads with is the same arithmetic at labkit's own refit of Chinchilla's points
(beta near 0.37, as Epoch AI's replication found): :func:`propagate` carries the refit's
bootstrap sample of beta into intervals on every number, and :func:`paper_outside` says when
the paper's headline gamma = 0.58 falls outside the refit's interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from labkit import stats
from labkit.errors import ParameterError

#: beta Kausik takes from Hoffmann et al. (rounded, as in the paper's body)
CHINCHILLA_BETA = 0.28


def _check_beta(beta: Any) -> np.ndarray:
    b = np.asarray(beta, dtype=float)
    if not np.all(np.isfinite(b)) or np.any(b <= 0) or np.any(b >= 0.5):
        raise ParameterError(
            f"beta={beta!r}: Kausik's bounds need 0 < beta < 0.5 (so that the lower exponent 1 - 2 beta stays positive)"
        )
    return b


def gamma_range(beta: Any) -> tuple[Any, Any]:
    """``(1 - 2 beta, 1 - beta)``: the exponent gamma of N ~ D^gamma (agnostic, realizable)."""
    b = _check_beta(beta)
    lo, hi = 1.0 - 2.0 * b, 1.0 - b
    return (float(lo), float(hi)) if lo.ndim == 0 else (lo, hi)


def gamma_mid(beta: Any) -> Any:
    """v1's point estimate: the midpoint 1 - 1.5 beta (0.58 at beta = 0.28)."""
    lo, hi = gamma_range(beta)
    return (np.asarray(lo) + np.asarray(hi)) / 2 if np.ndim(lo) else (lo + hi) / 2


def doubling_factor(gamma: Any) -> Any:
    """How many times more data doubles the unique sequences (skills): ``2 ** (1 / gamma)``."""
    g = np.asarray(gamma, dtype=float)
    if not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ParameterError(f"gamma={gamma!r} must be positive")
    out = 2.0 ** (1.0 / g)
    return float(out) if out.ndim == 0 else out


def unique_sequence_bounds(D: Any, beta: Any) -> tuple[Any, Any]:
    """``(D^(1-2 beta), D^(1-beta))``: the band for the unique sequences U in D tokens."""
    d = np.asarray(D, dtype=float)
    if not np.all(np.isfinite(d)) or np.any(d < 1):
        raise ParameterError(f"D={D!r}: token counts must be finite and >= 1")
    lo, hi = gamma_range(beta)
    low, high = d ** np.asarray(lo), d ** np.asarray(hi)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def summary(beta: float) -> dict[str, float]:
    """Every Kausik number at one beta (the paper's table row)."""
    lo, hi = gamma_range(beta)
    mid = gamma_mid(beta)
    return {
        "beta": float(beta),
        "gamma_low": lo,
        "gamma_mid": mid,
        "gamma_high": hi,
        "doubling_low": doubling_factor(hi),
        "doubling_mid": doubling_factor(mid),
        "doubling_high": doubling_factor(lo),
    }


def propagate(
    betas: Any,
    confidence: float = 0.95,
    estimate_beta: float | None = None,
) -> pd.DataFrame:
    """Carry a bootstrap sample of beta into intervals on every Kausik number.

    Args:
        betas: fitted beta of each bootstrap resample (values outside (0, 0.5) are dropped and
            counted, since the bounds are undefined there).
        confidence: central interval width.
        estimate_beta: the full-data beta; the estimate of each number is its value there
            (default: the median over the resamples).

    Returns:
        One row per quantity: ``quantity, estimate, low, high`` (percentile interval,
        :func:`labkit.stats.from_samples`) and ``n`` (resamples used).
    """
    b = np.asarray(betas, dtype=float)
    b = b[np.isfinite(b) & (b > 0) & (b < 0.5)]
    if len(b) == 0:
        raise ParameterError("no bootstrap beta lies in (0, 0.5); Kausik's bounds are undefined")
    lo, hi = gamma_range(b)
    mid = (lo + hi) / 2
    values = {
        "beta": b,
        "gamma_low": lo,
        "gamma_mid": mid,
        "gamma_high": hi,
        "doubling_low": doubling_factor(hi),
        "doubling_mid": doubling_factor(mid),
        "doubling_high": doubling_factor(lo),
    }
    at = summary(estimate_beta) if estimate_beta is not None else None
    rows = []
    for k, v in values.items():
        iv = stats.from_samples(at[k] if at else float(np.median(v)), v, confidence)
        rows.append({"quantity": k, "estimate": iv.estimate, "low": iv.low, "high": iv.high, "n": int(len(v))})
    return pd.DataFrame(rows)


def paper_outside(spread: pd.DataFrame) -> str:
    """A warning when the paper's gamma_mid (0.58 at beta = 0.28) lies outside the interval of
    ``spread`` (:func:`propagate` at the refit), else ""."""
    paper = summary(CHINCHILLA_BETA)
    row = spread.set_index("quantity")
    g, d = row.loc["gamma_mid"], row.loc["doubling_mid"]
    if g["low"] <= paper["gamma_mid"] <= g["high"]:
        return ""
    b = row.loc["beta"]
    return (
        f"Kausik's headline does not survive labkit's refit of Chinchilla's points: at the "
        f"refit beta = {b['estimate']:.3f} [{b['low']:.3f}, {b['high']:.3f}] the exponent of "
        f"N ~ D^gamma is gamma_mid = {g['estimate']:.3f} [{g['low']:.3f}, {g['high']:.3f}], "
        f"which excludes the paper's {paper['gamma_mid']:.2f} (beta = {CHINCHILLA_BETA}), "
        f"and doubling the skills takes {d['estimate']:.2f}x [{d['low']:.2f}, {d['high']:.2f}] "
        f"the data, not {paper['doubling_mid']:.2f}x"
    )


def versus_beta(betas: Any) -> pd.DataFrame:
    """gamma range, midpoint and doubling factors over a grid of beta (for the figure)."""
    return pd.DataFrame([summary(float(b)) for b in np.asarray(betas, dtype=float)])
