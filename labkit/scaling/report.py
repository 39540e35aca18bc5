"""What study 4 leads with: Kausik's numbers at labkit's refit β, and the headline results.

Issue 23: the study's most telling finding is that Kausik's headline (γ = 0.58, "3-5x the data
to double the skills") rests on Hoffmann's β = 0.28, which labkit's refit of Chinchilla's points
excludes. So the Kausik table and figure lead with the numbers at the refit β and its bootstrap
interval, with the paper's beside them, and the run record says when the paper's γ falls
outside. :func:`headlines_first` orders ``record.results`` so that the numbers a reader should
compare across seeds (``labkit run scaling_laws --seeds 0,1,2`` summarises every numeric
result in order) come first: the sweep's fit, then Kausik at the refit β.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit import records
from labkit.figures import PALETTE
from labkit.scaling import kausik

STUDY = "scaling_laws"
#: the Kausik rows whose intervals enter the run record (the rest are in the table)
HEADLINE_ROWS = ("gamma_mid", "doubling_mid", "beta")
#: order of the headline results in the run record
HEADLINE_ORDER = (
    "sweep_fit",
    "sweep_fit_ci95",
    "sweep_identified",
    "sweep_fit_e0",
    "sweep_fit_e0_ci95",
    "sweep_e0_identified",
    "kausik_refit",
    "kausik_refit_ci95",
    "fit",
)


#: rows of the Kausik table, headline first, with what each number is
KAUSIK_ROWS = {
    "gamma_mid": "exponent of N ~ D^γ, midpoint 1 − 1.5β (the paper's headline 0.58)",
    "doubling_mid": "data factor that doubles the skills, 2^(1/γ_mid) (the paper's 3.3x)",
    "beta": "data exponent β of the Chinchilla-form fit",
    "gamma_low": "lower end of γ, 1 − 2β (agnostic PAC bound)",
    "gamma_high": "upper end of γ, 1 − β (realizable PAC bound)",
    "doubling_low": "2^(1/γ_high): least data that doubles the skills",
    "doubling_high": "2^(1/γ_low): most data that doubles the skills",
}
REFIT = "at_refit_beta"
PAPER = "at_paper_beta_0.28"


def kausik_table(samples: pd.DataFrame, fitted_beta: float, record: records.RunRecord | None = None) -> pd.DataFrame:
    """Kausik's numbers at labkit's refit β (with 95% bootstrap intervals) first, the paper's
    β = 0.28 beside them, headline rows (γ_mid, doubling factor) on top.

    With the notebook's ``record`` it also writes ``results["kausik_refit"]`` (estimates) and
    ``results["kausik_refit_ci95"]`` there, and a warning when the paper's
    γ_mid = 0.58 lies outside the refit's interval (:func:`labkit.scaling.kausik.paper_outside`).
    """
    paper = kausik.summary(kausik.CHINCHILLA_BETA)
    spread = kausik.propagate(samples["beta"], estimate_beta=fitted_beta)
    at = spread.set_index("quantity")
    rows = [
        {
            "quantity": q,
            "what": what,
            REFIT: at.loc[q, "estimate"],
            "ci95_low": at.loc[q, "low"],
            "ci95_high": at.loc[q, "high"],
            PAPER: paper[q],
            "paper_inside_ci": bool(at.loc[q, "low"] <= paper[q] <= at.loc[q, "high"]),
        }
        for q, what in KAUSIK_ROWS.items()
    ]
    table = pd.DataFrame(rows)
    if record is not None:
        record.results["kausik_refit"] = {q: float(at.loc[q, "estimate"]) for q in KAUSIK_ROWS}
        record.results["kausik_refit_ci95"] = {
            q: {"low": float(at.loc[q, "low"]), "high": float(at.loc[q, "high"])} for q in HEADLINE_ROWS
        }
        warning = kausik.paper_outside(spread)
        if warning and warning not in record.warnings:
            record.warn(warning)
    return table


def kausik_figure(table: pd.DataFrame) -> go.Figure:
    """The headline at a glance: γ_mid and the doubling factor at the refit β with their 95%
    intervals, beside the paper's values at β = 0.28; thin bars show each γ range."""
    t = table.set_index("quantity")
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.14,
        subplot_titles=("exponent γ of N ~ D^γ", "data factor that doubles the skills"),
    )
    refit_label = f"labkit refit, β = {t.loc['beta', REFIT]:.3f}"
    paper_label = f"paper, β = {kausik.CHINCHILLA_BETA}"
    for col, (mid, low, high) in enumerate(
        (("gamma_mid", "gamma_low", "gamma_high"), ("doubling_mid", "doubling_low", "doubling_high")), start=1
    ):
        for x, column, colour, ci in ((refit_label, REFIT, PALETTE[3], True), (paper_label, PAPER, PALETTE[0], False)):
            y = t.loc[mid, column]
            error = (
                dict(
                    type="data",
                    symmetric=False,
                    array=[t.loc[mid, "ci95_high"] - y],
                    arrayminus=[y - t.loc[mid, "ci95_low"]],
                    thickness=2,
                    width=10,
                )
                if ci
                else None
            )
            fig.add_trace(
                go.Scatter(
                    x=[x],
                    y=[y],
                    mode="markers+text",
                    marker=dict(color=colour, size=13),
                    error_y=error,
                    text=[f"{y:.3g}" + ("x" if col == 2 else "")],
                    textposition="middle right",
                    showlegend=False,
                    name=f"{mid} {column}",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=[x, x],
                    y=[t.loc[low, column], t.loc[high, column]],
                    mode="lines",
                    line=dict(color=colour, width=14),
                    opacity=0.18,
                    showlegend=False,
                    name=f"{low}..{high} {column}",
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(type="category", row=1, col=col)
    fig.update_yaxes(title="γ (midpoint; band: 1 − 2β .. 1 − β)", row=1, col=1)
    fig.update_yaxes(title="data factor (midpoint; band: range)", row=1, col=2)
    g = t.loc["gamma_mid"]
    title = (
        f"Kausik at labkit's refit β: γ = {g[REFIT]:.2f} [{g['ci95_low']:.2f}, "
        f"{g['ci95_high']:.2f}], doubling {t.loc['doubling_mid', REFIT]:.2f}x "
        f"[{t.loc['doubling_mid', 'ci95_low']:.2f}, {t.loc['doubling_mid', 'ci95_high']:.2f}]"
    )
    fig.update_layout(title=title, margin=dict(t=110))
    if not bool(g["paper_inside_ci"]):
        fig.update_layout(
            title=dict(
                subtitle=dict(
                    text=f"⚠ the paper's γ = {g[PAPER]:.2f} lies outside the refit's 95% interval",
                    font=dict(color=PALETTE[3]),
                )
            )
        )
    return fig


def sweep_results(
    result: Any,
    ci: pd.DataFrame | None,
    record=None,
    prefix: str = "sweep",
) -> dict[str, Any]:
    """The sweep's fit as run-record results: ``sweep_fit`` (E, A, B, alpha, beta, rmse_log),
    ``sweep_fit_ci95`` (per parameter low/high) and ``sweep_identified`` (how many of the five
    parameters the diagnostics identify; 5 is what the design is for). The constrained fit
    (E = 0) goes under ``sweep_fit_e0`` and so on (``prefix``, ``result.form`` decide)."""
    tag = "_e0" if result.form == "chinchilla_e0" else ""
    out: dict[str, Any] = {f"{prefix}_fit{tag}": {**result.params, "rmse_log": result.goodness()["rmse_log"]}}
    if ci is not None:
        out[f"{prefix}_fit{tag}_ci95"] = {
            row.parameter: {"low": float(row.low), "high": float(row.high)} for row in ci.itertuples()
        }
    diag = getattr(result, "diagnostics", None)
    if diag is not None:
        out[f"{prefix}{tag or ''}_identified"] = len(result.params) - len(diag.flagged)
    if record is not None:
        record.results.update(out)
    return out


def headlines_first(record) -> None:
    """Reorder ``record.results`` in place: :data:`HEADLINE_ORDER` first, the rest after."""
    if record is None:
        return
    results = dict(record.results)
    record.results.clear()
    for key in HEADLINE_ORDER:
        if key in results:
            record.results[key] = results.pop(key)
    record.results.update(results)


def e_not_identified(full: Any, full_ci: pd.DataFrame | None, constrained: Any, runs: pd.DataFrame, record=None) -> str:
    """When the sweep's five-parameter fit leaves a parameter unidentified, say so with the
    numbers that show why (E's interval, how far the lowest loss of the sweep is from any
    floor, how little E = 0 costs the fit) and point at the constrained fit; "" when all five
    are identified. The sentence also goes to the run record as a warning."""
    diag = getattr(full, "diagnostics", None)
    if diag is None or diag.ok:
        return ""
    ci = full_ci.set_index("parameter") if full_ci is not None else None
    e_part = (
        f"E = {full.params['E']:.3g}, 95% interval [{ci.loc['E', 'low']:.3g}, {ci.loc['E', 'high']:.3g}]"
        if ci is not None
        else f"E = {full.params['E']:.3g}"
    )
    best = runs.loc[runs["loss"].idxmin()]
    free = full.goodness()["rmse_log"]
    fixed = constrained.goodness()["rmse_log"] if constrained is not None else float("nan")
    text = (
        f"the sweep's data do not identify all five parameters ({', '.join(diag.flagged)} "
        f"flagged; {e_part}); the lowest held-out loss of the sweep is "
        f"{best['loss']:.3f} nats/token (N = {best['N']:.3g}, D = {best['D']:.3g}, "
        f"{best['tokens_per_param']:.3g} tokens per parameter, {best['epochs']:.2f} epochs of "
        f"the corpus), and fixing E = 0 changes the fit's RMSE of log loss from "
        f"{free:.4f} to {fixed:.4f}; read the constrained form L = A/N^α + B/D^β "
        f"(sweep_fit_e0) instead, flagged as constrained: E is not measured by this corpus "
        f"and budget"
    )
    if record is not None and text not in record.warnings:
        record.warn(text)
    return text
