"""Which fitted parameters the data identify, so a degenerate fit is not read like a good one.

A Huber fit always returns five numbers. On our tiny-model sweep it returned E = 0.0: the
irreducible term ran to its bound and the exponents absorbed its role, yet the table and the
figure showed it like any other fit. Every fit in :mod:`labkit.scaling` therefore carries a
:class:`Diagnostics` (``FitResult.diagnostics``) that marks a parameter **not identified** when

1. **it sits on a bound** of the law's parameter space (within numerical tolerance): a scale
   (E, A, B; Kaplan's Nc, Dc) whose term contributes less than :data:`TERM_TOL` of the
   predicted loss at every point is at its bound 0, and the exponent of a vanished term has no
   data; an exponent within :data:`EXPONENT_TOL` of 0 turns its term into a constant that
   cannot be told from E (so both scales are confounded), and one at :data:`EXPONENT_MAX` or
   above is a step over the data, not a power law;
2. **the optimiser mostly failed**: more than :data:`MAX_NONCONVERGED_SHARE` of the L-BFGS-B
   starts (or of the bootstrap refits) did not meet scipy's convergence test, so no parameter
   can be trusted;
3. **its bootstrap interval reaches a bound**: more than the interval's tail share (2.5% for a
   95% interval) of the refits put it on a bound by test 1;
4. **its bootstrap interval is too wide to mean anything**: the 95% interval spans more than
   :data:`MAX_CI_FACTOR` (high / low) for that parameter. An exponent or E is read by its
   value, so a factor 2 is the most an "identified" one may span (the tiny-model sweep of the
   first reference run had alpha in [0.24, 0.95], a factor 4, and read "identified"). A scale
   A or B trades off against its exponent (a shift d alpha moves log A by about d alpha x the
   mean log N, 10 to 25 here), so its interval may span a decade; Chinchilla's own B spans a
   factor 5.4 with beta inside a factor 1.25.

The optimiser itself stays unbounded, as published; the bounds here are where the law's form
stops meaning what its name says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit.stats import percentile_bounds

IDENTIFIED = "identified"
NOT_IDENTIFIED = "not identified"
#: a term below this share of the predicted loss at every point has vanished (scale at bound 0)
TERM_TOL = 1e-3
#: exponents live in (0, EXPONENT_MAX]; within EXPONENT_TOL of 0 counts as on the bound. The
#: upper end is the edge of the published initialisation grid: beyond it a "power law" drops
#: by more than 100x per decade of N or D, a step rather than a trend.
EXPONENT_TOL = 1e-3
EXPONENT_MAX = 2.0
#: above this share of failed starts / refits, every parameter is flagged
MAX_NONCONVERGED_SHARE = 0.5
#: widest bootstrap interval (high / low) an identified parameter may have; an interval whose
#: low end is not positive spans an unbounded factor
MAX_CI_FACTOR = {
    "E": 2.0,
    "alpha": 2.0,
    "beta": 2.0,
    "A": 10.0,
    "B": 10.0,
    "alpha_N": 2.0,
    "alpha_D": 2.0,
    "Nc": 10.0,
    "Dc": 10.0,
}

_PARAMS = {
    "chinchilla": ("E", "A", "B", "alpha", "beta"),
    "chinchilla_e0": ("A", "B", "alpha", "beta"),
    "kaplan": ("Nc", "Dc", "alpha_N", "alpha_D"),
}


@dataclass
class Diagnostics:
    """Per parameter: ``status`` (identified / not identified) and the reasons behind it."""

    form: str
    reasons: dict[str, list[str]] = field(default_factory=dict)

    def status(self, name: str) -> str:
        return NOT_IDENTIFIED if self.reasons.get(name) else IDENTIFIED

    @property
    def flagged(self) -> list[str]:
        """Parameters the data do not identify, in the law's order."""
        return [p for p in _PARAMS[self.form] if self.reasons.get(p)]

    @property
    def ok(self) -> bool:
        return not self.flagged

    def reason(self, name: str) -> str:
        return "; ".join(self.reasons.get(name, []))

    def to_dict(self) -> dict[str, dict[str, str]]:
        """JSON for the run record: ``{param: {"status": ..., "reason": ...}}``."""
        return {p: {"status": self.status(p), "reason": self.reason(p)} for p in _PARAMS[self.form]}

    def summary(self) -> str:
        """One sentence naming every flagged parameter and why ("" when all are identified)."""
        if self.ok:
            return ""
        return "; ".join(f"{p} not identified ({self.reason(p)})" for p in self.flagged)

    def add(self, name: str, reason: str) -> None:
        bucket = self.reasons.setdefault(name, [])
        if reason not in bucket:
            bucket.append(reason)


# --------------------------------------------------------------------------- bound tests


def _col(params: pd.DataFrame, name: str) -> np.ndarray:
    return params[name].to_numpy(float)[:, None]


def bound_tests(
    form: str,
    params: pd.DataFrame,
    N: np.ndarray | None,
    D: np.ndarray | None,
) -> list[tuple[str, np.ndarray, str]]:
    """Every bound test of the law, each as ``(parameter, rows on the bound, reason)``.

    Args:
        form: ``"chinchilla"``, ``"chinchilla_e0"`` (E fixed at 0: its tests are moot) or
            ``"kaplan"``.
        params: human parameters, one row per fit (a full fit or bootstrap refits).
        N, D: the points' sizes and tokens (term shares are measured there); ``None`` skips
            the term tests and keeps the exponent tests.
    """
    tests: list[tuple[str, np.ndarray, str]] = []

    def hit(name: str, mask: np.ndarray, reason: str) -> None:
        tests.append((name, np.asarray(mask, bool).ravel(), reason))

    have_points = N is not None and D is not None and len(N) > 0
    if form in ("chinchilla", "chinchilla_e0"):  # E = 0 by construction in the second
        E = _col(params, "E") if "E" in params else np.zeros((len(params), 1))
        A, B = _col(params, "A"), _col(params, "B")
        alpha, beta = _col(params, "alpha"), _col(params, "beta")
        if have_points:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                tN, tD = A / N[None, :] ** alpha, B / D[None, :] ** beta
                L = E + tN + tD
                for name, term, label in (("E", E, "E"), ("A", tN, "A/N^alpha"), ("B", tD, "B/D^beta")):
                    share = np.nanmax(np.broadcast_to(term, L.shape) / L, axis=1)
                    mask = ~(share >= TERM_TOL)
                    hit(
                        name,
                        mask,
                        f"at its lower bound 0: the {label} term is under "
                        f"{TERM_TOL:.1%} of the predicted loss at every point",
                    )
                    if name != "E":
                        hit("alpha" if name == "A" else "beta", mask, f"its term {label} vanishes over the data")
        for exp, scale, value in (("alpha", "A", alpha), ("beta", "B", beta)):
            low = value < EXPONENT_TOL
            hit(exp, low, f"at its lower bound 0 ({exp} < {EXPONENT_TOL:g})")
            hit(scale, low, f"confounded with E: {exp} at 0 makes {scale}'s term a constant")
            hit("E", low, f"confounded with {scale}: {exp} at 0 makes {scale}'s term a constant")
            hit(
                exp,
                value > EXPONENT_MAX - EXPONENT_TOL,
                f"at its upper bound {EXPONENT_MAX:g} (a step, not a power law)",
            )
    elif form == "kaplan":
        lNc, lDc = np.log(_col(params, "Nc")), np.log(_col(params, "Dc"))
        aN, aD = _col(params, "alpha_N"), _col(params, "alpha_D")
        if have_points:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                u1 = (aN / aD) * (lNc - np.log(N)[None, :])
                u2 = lDc - np.log(D)[None, :]
                w1 = np.exp(u1 - np.logaddexp(u1, u2))
            for scale, exp, w, label in (
                ("Nc", "alpha_N", w1, "(Nc/N)^(alpha_N/alpha_D)"),
                ("Dc", "alpha_D", 1 - w1, "Dc/D"),
            ):
                mask = ~(np.nanmax(w, axis=1) >= TERM_TOL)
                hit(
                    scale, mask, f"at its bound: the {label} term is under {TERM_TOL:.1%} of the bracket at every point"
                )
                hit(exp, mask, f"its term {label} vanishes over the data")
        for exp, value in (("alpha_N", aN), ("alpha_D", aD)):
            hit(exp, value < EXPONENT_TOL, f"at its lower bound 0 ({exp} < {EXPONENT_TOL:g})")
            hit(
                exp,
                value > EXPONENT_MAX - EXPONENT_TOL,
                f"at its upper bound {EXPONENT_MAX:g} (a step, not a power law)",
            )
    else:
        raise ValueError(f"unknown form {form!r}")
    return tests


def on_bound(
    form: str,
    params: pd.DataFrame,
    N: np.ndarray | None,
    D: np.ndarray | None,
) -> pd.DataFrame:
    """Boolean frame (rows of ``params`` x parameters): is the parameter on any bound?"""
    out = pd.DataFrame(False, index=params.index, columns=list(_PARAMS[form]))
    for name, mask, _ in bound_tests(form, params, N, D):
        if name in out:  # E of the E = 0 form is fixed, not fitted
            out[name] |= mask
    return out


def diagnose(
    result: Any,
    samples: pd.DataFrame | None = None,
    confidence: float = 0.95,
) -> Diagnostics:
    """Diagnostics of one :class:`~labkit.scaling.fit.FitResult` (and its bootstrap).

    Args:
        result: the fit (its ``form``, ``params``, ``N``, ``D``, ``n_starts``, ``n_converged``).
        samples: bootstrap refits (:func:`labkit.scaling.bootstrap.bootstrap`), optional.
        confidence: width of the interval whose reaching a bound is tested.
    """
    diag = Diagnostics(result.form)
    names = _PARAMS[result.form]
    one = pd.DataFrame([result.params])
    if np.all(np.isfinite(one.to_numpy(float))):
        for name, mask, reason in bound_tests(result.form, one, result.N, result.D):
            if mask[0] and name in names:
                diag.add(name, reason)
    else:
        for name in names:
            diag.add(name, "the fit returned no finite value")
    if result.n_starts:
        failed = 1 - result.n_converged / result.n_starts
        if failed > MAX_NONCONVERGED_SHARE:
            for name in names:
                diag.add(
                    name,
                    f"{failed:.0%} of {result.n_starts} L-BFGS-B starts did not "
                    f"converge (threshold {MAX_NONCONVERGED_SHARE:.0%})",
                )
    if samples is not None and len(samples):
        if "converged" in samples:
            failed = 1 - float(np.mean(samples["converged"]))
            if failed > MAX_NONCONVERGED_SHARE:
                for name in names:
                    diag.add(
                        name,
                        f"{failed:.0%} of {len(samples)} bootstrap refits did not "
                        f"converge (threshold {MAX_NONCONVERGED_SHARE:.0%})",
                    )
        rows = samples[list(names)].astype(float)
        rows = rows[np.isfinite(rows.to_numpy()).all(axis=1)]
        tail = (1 - confidence) / 2
        if len(rows):
            hits = on_bound(result.form, rows.reset_index(drop=True), result.N, result.D)
            for name in names:
                share = float(hits[name].mean())
                if share > tail:
                    diag.add(
                        name,
                        f"{share:.0%} of {len(rows)} bootstrap refits put it on a "
                        f"bound, so its {confidence:.0%} interval reaches the bound",
                    )
                reason = too_wide(name, rows[name].to_numpy(float), confidence)
                if reason:
                    diag.add(name, reason)
    return diag


def too_wide(name: str, samples: np.ndarray, confidence: float = 0.95) -> str:
    """Why the bootstrap interval of ``name`` is wider than :data:`MAX_CI_FACTOR` allows
    ("" when it is not); the interval is :func:`labkit.stats.percentile_bounds`, the one the
    tables print."""

    limit = MAX_CI_FACTOR.get(name)
    low, high = percentile_bounds(samples, confidence)
    if limit is None or not np.isfinite(low) or not np.isfinite(high):
        return ""
    factor = high / low if low > 0 else float("inf")
    if factor <= limit:
        return ""
    return (
        f"its {confidence:.0%} interval [{low:.3g}, {high:.3g}] spans a factor "
        f"{factor:.3g}, more than the {limit:g} an identified {name} may span"
    )
