"""Which sweep would identify the law? Simulated fits of candidate designs (issue 23).

The default sweep's five-parameter fit leaves E (and B, alpha, beta) unidentified, and the run
record says so. That alone does not tell a researcher whether the corpus is the limit, or the
design, or the compute: a bigger or longer sweep might identify E, or might not. This module
answers it before anyone spends the compute, the way a power analysis sizes a trial.

For each candidate design (a list of model sizes with their token budgets, in the profiles'
``sweep_sizes`` format) and each *plausible law* (the sweep's own fit, and the bootstrap
refits at the 5th and 95th percentile of E, so the answer does not rest on one point
estimate), it draws ``n_sims`` data sets: the law's log loss at the design's (N, D) plus
Gaussian noise with the fit's residual RMSE (which also carries the law's lack of fit, so it is
not optimistic), refits each exactly as the bootstrap does (warm start at the law plus grid
points, :func:`labkit.scaling.fit._minimize_starts`), and applies the study's own
identification rule (:func:`labkit.scaling.diagnostics.diagnose`) to the simulated estimates.
The spread of estimates over fresh data sets is what a bootstrap interval estimates, so a
parameter that is not identified here would not be identified by running that design either.

What the simulation cannot see, and the table caption says: repeated epochs are treated as
fresh tokens (Muennighoff et al. 2023 find up to about four epochs nearly as good as new data,
so designs beyond one epoch are optimistic), and the law is extrapolated to sizes the sweep
never trained. Hand-written: no maintained library simulates scaling-law designs.

The cost column is an estimate: training tokens of the design's WSD chains (each size trains
its longest budget once, plus the cool-down of every shorter branch) times seconds per token,
a line in the model's total parameters fitted by non-negative least squares to the sweep's own
chain roots (so it is this machine's speed, overheads included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from threadpoolctl import threadpool_limits

from labkit.errors import ParameterError
from labkit.scaling.bootstrap import refit_starts
from labkit.scaling.diagnostics import _PARAMS, diagnose
from labkit.scaling.fit import HUBER_DELTA, FitResult, _minimize_starts, chinchilla_log_pred

#: larger sizes a candidate design may add (the ``paper`` profile's two extra sizes)
LARGER_SIZES = (
    {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "budgets": [1 << 19, 1 << 20, 1 << 21]},
    {"hidden_size": 192, "num_layers": 6, "num_heads": 6, "budgets": [1 << 20, 1 << 21, 1 << 22]},
)
#: how much longer the "longer budgets" designs train: each size's longest budget x 2 and x 4
LONGER = (2, 4)
#: the bootstrap percentiles of E whose refits are the other plausible laws
E_PERCENTILES = (5, 95)


def non_embedding_params(hidden_size: int, num_layers: int, intermediate_size: int | None = None) -> int:
    """N (Kaplan's convention) of labkit's tiny Llama: per layer q, k, v, o (4 h^2), a gated
    MLP (3 h f, f = 4 h by default) and two RMSNorms (2 h), plus the final norm (h). Checked
    against :func:`labkit.lm.evaluate.count_parameters` on a real model in the tests."""
    f = intermediate_size or 4 * hidden_size
    return num_layers * (4 * hidden_size**2 + 3 * hidden_size * f + 2 * hidden_size) + hidden_size


def design_points(sizes: Sequence[Mapping[str, Any]], vocab_size: int) -> pd.DataFrame:
    """One row per (size, budget): ``hidden_size, num_layers, N, N_total, D``."""
    rows = []
    for i, size in enumerate(sizes):
        if not size.get("budgets"):
            raise ParameterError(f"design size {i}: no budgets (every candidate size needs its own)")
        n = non_embedding_params(size["hidden_size"], size["num_layers"], size.get("intermediate_size"))
        for d in size["budgets"]:
            rows.append(
                {
                    "hidden_size": size["hidden_size"],
                    "num_layers": size["num_layers"],
                    "N": n,
                    "N_total": n + vocab_size * size["hidden_size"],  # tied embeddings
                    "D": int(d),
                }
            )
    return pd.DataFrame(rows)


def with_budgets(sizes: Sequence[Mapping[str, Any]], budgets: Sequence[int] | None) -> list[dict[str, Any]]:
    """The sweep's sizes, each with its budgets (its own, else the sweep's shared ``budgets``)."""
    return [{**s, "budgets": list(s.get("budgets") or budgets or [])} for s in sizes]


def vocab_of(runs: pd.DataFrame) -> int:
    """The vocabulary the runs were trained with, read off their parameter counts (tied
    embeddings: N_total - N = vocab x hidden), so the designs use the tokenizer's real size."""
    return int(round(float(((runs["N_total"] - runs["N"]) / runs["hidden_size"]).median())))


def candidate_designs(sizes: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """This sweep, with longer budgets, with :data:`LARGER_SIZES` added, and both."""

    def longer(size: Mapping[str, Any]) -> dict[str, Any]:
        top = max(size["budgets"])
        return {**size, "budgets": sorted({*size["budgets"], *(k * top for k in LONGER)})}

    shapes = {(s["hidden_size"], s["num_layers"]) for s in sizes}
    extra = [dict(s) for s in LARGER_SIZES if (s["hidden_size"], s["num_layers"]) not in shapes]
    out = {"this sweep": [dict(s) for s in sizes], f"budgets to {max(LONGER)}x": [longer(s) for s in sizes]}
    if extra:
        out["+ 2 larger sizes"] = out["this sweep"] + extra
        out[f"+ larger, budgets to {max(LONGER)}x"] = out[f"budgets to {max(LONGER)}x"] + [longer(s) for s in extra]
    return out


def seconds_per_token(runs: pd.DataFrame) -> tuple[float, float]:
    """``(a, b)`` of seconds per training token = a + b x N_total, by non-negative least squares
    on the sweep's chain roots (``branched_from_step`` 0: the runs that trained from scratch)."""
    roots = runs[runs.get("branched_from_step", 0) == 0] if "branched_from_step" in runs else runs
    roots = roots[(roots["wall_s"] > 0) & (roots["D"] > 0)]
    if roots.empty:
        raise ParameterError("no sweep run with a positive wall_s and D to time the designs from")
    X = np.column_stack([np.ones(len(roots)), roots["N_total"].to_numpy(float)])
    (a, b), _ = nnls(X, (roots["wall_s"] / roots["D"]).to_numpy(float))
    return float(a), float(b)


def training_tokens(sizes: Sequence[Mapping[str, Any]], cooldown_fraction: float = 0.2) -> list[float]:
    """Tokens each size's WSD chain trains: its longest budget plus the cool-down of every
    shorter branch (:mod:`labkit.lm.wsd`)."""
    return [max(s["budgets"]) + cooldown_fraction * (sum(s["budgets"]) - max(s["budgets"])) for s in sizes]


def plausible_laws(fit: FitResult, samples: pd.DataFrame) -> dict[str, np.ndarray]:
    """The fit's theta, and the converged bootstrap refits nearest E's :data:`E_PERCENTILES`."""
    laws = {f"fit (E = {fit.params['E']:.3g})": np.asarray(fit.theta, float)}
    ok = samples[samples["converged"].astype(bool)] if "converged" in samples else samples
    ok = ok[np.isfinite(ok[["E", "A", "B", "alpha", "beta"]].to_numpy(float)).all(axis=1)]
    for q in E_PERCENTILES if len(ok) else ():
        row = ok.iloc[int((ok["E"] - np.percentile(ok["E"], q)).abs().argmin())]
        theta = np.array([np.log(row["A"]), np.log(row["B"]), np.log(row["E"]), row["alpha"], row["beta"]])
        laws[f"E at its {q}th pct (E = {row['E']:.3g})"] = theta
    return laws


def _simulate(theta, N, D, noise_sd, n_sims, seed, starts) -> pd.DataFrame:
    logN, logD = np.log(N), np.log(D)
    truth = chinchilla_log_pred(theta, logN, logD)
    rng = np.random.default_rng(seed)
    rows = []
    with threadpool_limits(1):
        for _ in range(n_sims):
            y = truth + rng.normal(0.0, noise_sd, len(truth))
            x, _, _, _, ok = _minimize_starts(starts, logN, logD, y, "chinchilla", HUBER_DELTA)
            rows.append({**_law(x).params, "converged": bool(ok)})
    return pd.DataFrame(rows)


def _law(theta, N=None, D=None) -> FitResult:
    return FitResult("chinchilla", np.asarray(theta, float), 0.0, 0, 0, 0, True, "", np.empty(0), np.empty(0), N=N, D=D)


def design_table(
    fit: FitResult,
    samples: pd.DataFrame,
    runs: pd.DataFrame,
    sizes: Sequence[Mapping[str, Any]],
    *,
    vocab_size: int,
    corpus_tokens: int,
    n_sims: int = 100,
    seed: int = 0,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """One row per (candidate design, plausible law): the design's shape and estimated cost,
    each parameter's simulated 95% range as a factor (high / low), and how many of the five the
    study's rule identifies. ``fit``/``samples``: the sweep's Chinchilla fit and bootstrap;
    ``runs``: its rows (for the cost model); ``sizes``: the sweep's sizes with their budgets."""
    if fit.form != "chinchilla":
        raise ParameterError(f"design_table simulates the five-parameter law, not {fit.form!r}")
    if n_sims < 20:
        raise ParameterError(f"n_sims={n_sims}: at least 20 simulated fits are needed for a 95% range")
    noise = fit.goodness()["rmse_log"]
    a, b = seconds_per_token(runs)
    laws = plausible_laws(fit, samples)
    tasks, meta = [], []
    for d_i, (name, design) in enumerate(candidate_designs(sizes).items()):
        pts = design_points(design, vocab_size)
        tokens = training_tokens(design)
        shapes = [
            non_embedding_params(s["hidden_size"], s["num_layers"]) + vocab_size * s["hidden_size"] for s in design
        ]
        minutes = sum(t * (a + b * n) for t, n in zip(tokens, shapes)) / 60
        for l_i, (law_name, theta) in enumerate(laws.items()):
            starts = np.vstack([theta, refit_starts(fit, 4, seed)[1:]])
            tasks.append(
                (
                    theta,
                    pts["N"].to_numpy(float),
                    pts["D"].to_numpy(float),
                    noise,
                    n_sims,
                    seed + 97 * d_i + l_i,
                    starts,
                )
            )
            meta.append((name, law_name, pts, sum(tokens), minutes, theta))
    if n_jobs > 1:
        from joblib import Parallel, delayed

        simulated = Parallel(n_jobs=n_jobs)(delayed(_simulate)(*t) for t in tasks)
    else:
        simulated = [_simulate(*t) for t in tasks]
    rows = []
    for (name, law_name, pts, tokens, minutes, theta), sims in zip(meta, simulated):
        diag = diagnose(_law(theta, pts["N"].to_numpy(float), pts["D"].to_numpy(float)), sims)
        good = sims[sims["converged"]]
        row = {
            "design": name,
            "law": law_name,
            "runs": len(pts),
            "largest_N": int(pts["N"].max()),
            "max_epochs": float(pts["D"].max() / corpus_tokens),
            "train_tokens": float(tokens),
            "est_cpu_min": float(minutes),
        }
        for p in _PARAMS["chinchilla"]:
            low, high = np.percentile(good[p], [2.5, 97.5]) if len(good) else (np.nan, np.nan)
            row[f"{p}_factor"] = float(high / low) if low > 0 else float("inf")
        row["identified"] = f"{5 - len(diag.flagged)}/5"
        row["not_identified"] = ", ".join(diag.flagged)
        rows.append(row)
    return pd.DataFrame(rows)


def design_results(table: pd.DataFrame) -> dict[str, Any]:
    """Run-record results: per design, the fewest parameters identified under any plausible law,
    E's widest simulated factor (None when unbounded) and the estimated training minutes."""
    out = {}
    for name, rows in table.groupby("design", sort=False):
        out[name] = {
            "identified_min": int(rows["identified"].str.split("/").str[0].astype(int).min()),
            # None (JSON null) when a law leaves E's range unbounded: strict JSON has no Infinity
            "E_factor_max": float(rows["E_factor"].max()) if np.isfinite(rows["E_factor"].max()) else None,
            "est_cpu_min": float(rows["est_cpu_min"].iloc[0]),
        }
    return out


def _minutes(x: float) -> str:
    return f"{x:.0f}" if x >= 10 else f"{x:.2g}"


def design_verdict(
    table: pd.DataFrame, *, identified_by_bootstrap: int | None = None, measured_min: float | None = None
) -> str:
    """One sentence for the run record: which candidate designs identify all five parameters
    under every plausible law (or that none does), the best one's cost, and how the simulation
    of this sweep compares with its real bootstrap (``identified_by_bootstrap``) and its cost
    estimate with the measured training time (``measured_min``), so a reader can see how far
    to trust the simulation."""
    summary = design_results(table)
    widest = lambda k: summary[k]["E_factor_max"] or float("inf")  # noqa: E731  (None: unbounded)
    best = max(summary, key=lambda k: (summary[k]["identified_min"], -widest(k)))
    rows = table[table["design"] == best]
    this = table[table["design"] == table["design"].iloc[0]]
    counts = lambda r: ", ".join(x.split("/")[0] for x in r["identified"])  # noqa: E731
    everywhere = [k for k, v in summary.items() if v["identified_min"] == 5]
    head = (
        f"candidate design(s) that identify all five parameters under every plausible law: "
        f"{', '.join(repr(k) for k in everywhere)}"
        if everywhere
        else "no candidate design identifies all five parameters under every plausible law"
    )
    check = (
        f"; the real runs' bootstrap identified {identified_by_bootstrap} of 5"
        if identified_by_bootstrap is not None
        else ""
    )
    measured = f", measured {measured_min:.1f}" if measured_min is not None else ""
    return (
        f"simulated fits ({', '.join(rows['law'])}; noise = the fit's residual RMSE): {head}. "
        f"Best: '{best}' (largest N {rows['largest_N'].iloc[0]:.3g}, {rows['max_epochs'].iloc[0]:.2g} "
        f"epochs, about {_minutes(rows['est_cpu_min'].iloc[0])} CPU min of training): {counts(rows)} of 5 "
        f"identified, E's 95% range a factor {', '.join(f'{f:.3g}' for f in rows['E_factor'])}. "
        f"This sweep: {counts(this)} of 5 in simulation{check}; training estimated "
        f"{_minutes(this['est_cpu_min'].iloc[0])} CPU min{measured}"
    )
