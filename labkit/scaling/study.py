"""Tables and figures of study 4 (``notebooks/scaling_laws.ipynb``), built from fits and sweeps.

The notebook calls these in order: :func:`replication` (fit + bootstrap on any N, D, loss table),
:func:`parameter_table`, the figure builders, :func:`kausik_table`, then the same fit on our own
sweep (:func:`labkit.scaling.sweep.run_sweep`) and :func:`exponent_table`.

Every fit carries :mod:`.diagnostics`: a parameter the data do not identify (on a bound, most
starts failed, or its bootstrap interval reaching a bound) is marked in the tables (columns
``identification`` / ``not_identified``), noted on the figures drawn from that fit, and written
to the current run record (``results["fit_diagnostics"]`` plus a warning) by the table
builders, so the notebook's existing calls carry the flags without extra code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labkit import records
from labkit.scaling.bootstrap import bootstrap, intervals, refit_starts
from labkit.scaling.diagnostics import diagnose
from labkit.scaling.figures import (
    beta_figure,
    bootstrap_figure,
    contour_figure,
    law_figure,
    residual_figure,
    sweep_figure,
    unique_sequences_figure,
)
from labkit.scaling.fit import (
    CHINCHILLA_GRID,
    CHINCHILLA_PARAMS,
    HOFFMANN_PARAMS,
    FitResult,
    fit,
    grid_starts,
    load_points,
)
from labkit.scaling.report import (
    KAUSIK_ROWS,
    PAPER,
    REFIT,
    e_not_identified,
    headlines_first,
    kausik_figure,
    kausik_table,
    sweep_results,
)

STUDY = "scaling_laws"
#: Hoffmann's constants as optimiser coordinates (a, b, e, alpha, beta): always one start
HOFFMANN_THETA = np.array(
    [
        np.log(HOFFMANN_PARAMS["A"]),
        np.log(HOFFMANN_PARAMS["B"]),
        np.log(HOFFMANN_PARAMS["E"]),
        HOFFMANN_PARAMS["alpha"],
        HOFFMANN_PARAMS["beta"],
    ]
)


def fit_starts(n: int, seed: int = 0, form: str = "chinchilla") -> np.ndarray | None:
    """``None`` (the published grid: 4,500 starts; 900 for ``chinchilla_e0``, the same grid
    without e) when ``n`` is 0, else Hoffmann's constants plus ``n`` grid points drawn at
    random (for quick profiles)."""
    if not n:
        return None
    keep = [i for i, k in enumerate(CHINCHILLA_PARAMS) if form == "chinchilla" or k != "e"]
    order = [CHINCHILLA_PARAMS[i] for i in keep]
    grid = grid_starts(CHINCHILLA_GRID, order)
    pick = np.random.default_rng(seed).choice(len(grid), size=min(n, len(grid)), replace=False)
    return np.vstack([HOFFMANN_THETA[keep], grid[pick]])


@dataclass
class Replication:
    """A Chinchilla-form fit with its bootstrap, plus the Kaplan form on the same points."""

    points: pd.DataFrame
    fit: FitResult
    samples: pd.DataFrame
    kaplan: FitResult | None

    @property
    def ci(self) -> pd.DataFrame:
        return intervals(self.samples, self.fit.params)


def replication(
    points: pd.DataFrame,
    *,
    starts: int = 0,
    n_bootstrap: int = 1000,
    seed: int = 0,
    n_jobs: int = 1,
    with_kaplan: bool = True,
    form: str = "chinchilla",
) -> Replication:
    """Fit E + A/N^alpha + B/D^beta (approach 3; ``form="chinchilla_e0"``: with E = 0),
    bootstrap it, and fit Kaplan's joint form."""
    points = load_points(points)
    best = fit(points, form, starts=fit_starts(starts, seed, form), n_jobs=n_jobs)
    samples = bootstrap(points, best, n_bootstrap, seed=seed, n_jobs=n_jobs)
    best.diagnostics = diagnose(best, samples)
    kaplan = fit(points, "kaplan", raise_on_failure=False) if with_kaplan else None
    return Replication(points, best, samples, kaplan)


def parameter_table(
    rep: Replication,
    published: dict[str, float] | None = HOFFMANN_PARAMS,
) -> pd.DataFrame:
    """Each parameter: our estimate with its 95% bootstrap interval, beside a published value."""
    table = rep.ci.rename(columns={"estimate": "fitted", "low": "ci95_low", "high": "ci95_high"})
    if published:
        table["published"] = table["parameter"].map(published)
        table["published_inside_ci"] = (table["published"] >= table["ci95_low"]) & (
            table["published"] <= table["ci95_high"]
        )
    table["converged_resamples"] = f"{int(rep.samples['converged'].sum())}/{len(rep.samples)}"
    diag = rep.fit.diagnostics
    if diag is not None:
        table["identification"] = table["parameter"].map(diag.status)
        table["why"] = table["parameter"].map(diag.reason)
    return table


def note_diagnostics(name: str, result: FitResult | None, record: records.RunRecord | None) -> None:
    """Write a fit's diagnostics to the notebook's run record (a warning when a parameter is not
    identified); a no-op without a record. Idempotent per ``name``."""
    if record is None or result is None or result.diagnostics is None:
        return
    store = record.results.setdefault("fit_diagnostics", {})
    store[name] = result.diagnostics.to_dict()
    if not result.diagnostics.ok:
        text = f"{name} fit: {result.diagnostics.summary()}"
        if text not in record.warnings:
            record.warn(text)


def _not_identified(result: FitResult | None) -> str:
    if result is None or result.diagnostics is None:
        return ""
    return ", ".join(result.diagnostics.flagged) or "none"


def goodness_table(fits: dict[str, FitResult | None], record: records.RunRecord | None = None) -> pd.DataFrame:
    """Goodness of fit of each named fit (rows), plus its parameters; each fit's diagnostics go
    to ``record`` (:func:`note_diagnostics`)."""
    rows = []
    for name, result in fits.items():
        if result is None:
            continue
        note_diagnostics(name, result, record)
        rows.append(
            {
                "fit": name,
                "form": result.form,
                **result.goodness(),
                "converged": result.converged,
                "not_identified": _not_identified(result),
                **{k: v for k, v in result.params.items()},
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


def exponent_table(
    ours: FitResult | None,
    ours_ci: pd.DataFrame | None,
    chinchilla: FitResult,
    record: records.RunRecord | None = None,
) -> pd.DataFrame:
    """alpha, beta and the compute-optimal exponent a = beta/(alpha+beta): sweep vs Chinchilla."""
    rows = []
    note_diagnostics("chinchilla form", chinchilla, record)
    note_diagnostics("tiny-model sweep", ours, record)
    for name, result, ci in (
        ("Chinchilla points (our fit)", chinchilla, None),
        ("Hoffmann et al. published", None, None),
        ("our tiny-model sweep", ours, ours_ci),
    ):
        p = (
            HOFFMANN_PARAMS
            if result is None and name.startswith("Hoffmann")
            else (result.params if result is not None else None)
        )
        if p is None:
            continue
        row: dict[str, Any] = {
            "source": name,
            "alpha": p["alpha"],
            "beta": p["beta"],
            "E": p["E"],
            "N_opt_exponent": p["beta"] / (p["alpha"] + p["beta"]),
        }
        if ci is not None:
            c = ci.set_index("parameter")
            row["alpha_ci95"] = f"[{c.loc['alpha', 'low']:.3g}, {c.loc['alpha', 'high']:.3g}]"
            row["beta_ci95"] = f"[{c.loc['beta', 'low']:.3g}, {c.loc['beta', 'high']:.3g}]"
        row["not_identified"] = _not_identified(result) if result is not None else ""
        if result is not None and result.diagnostics is not None and not result.diagnostics.ok:
            row["why"] = result.diagnostics.summary()
        rows.append(row)
    return pd.DataFrame(rows)


__all__ = [
    "HOFFMANN_PARAMS",
    "STUDY",
    "KAUSIK_ROWS",
    "PAPER",
    "REFIT",
    "Replication",
    "note_diagnostics",
    "replication",
    "parameter_table",
    "goodness_table",
    "kausik_table",
    "kausik_figure",
    "sweep_results",
    "headlines_first",
    "e_not_identified",
    "law_figure",
    "contour_figure",
    "residual_figure",
    "bootstrap_figure",
    "unique_sequences_figure",
    "beta_figure",
    "sweep_figure",
    "exponent_table",
    "fit_starts",
    "refit_starts",
]
