"""The scaling study's figures: the fitted law, contours, residuals, bootstrap spreads, unique
sequences, beta and the sweep.

Why a module of their own: :mod:`labkit.scaling.study` holds the measurements and tables, and
re-exports these builders so the notebook keeps calling ``study.<figure>``. Each figure of a
fit says under its title which parameters the data do not identify (:func:`_flag_figure`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.figcheck import MIN_LOG_DECADES
from labkit.figures import PALETTE, axis_type_for
from labkit.scaling import kausik
from labkit.scaling.fit import (
    HOFFMANN_PARAMS,
    FitResult,
    compute_optimal,
)


def _flag_figure(fig: go.Figure, result: FitResult | None) -> go.Figure:
    """Say under the title which parameters of the drawn fit the data do not identify."""
    if result is not None and result.diagnostics is not None and not result.diagnostics.ok:
        names = ", ".join(result.diagnostics.flagged)
        fig.update_layout(
            title=dict(
                subtitle=dict(
                    text=f"⚠ not identified by these data: {names} (see the table's 'why' column)",
                    font=dict(color=PALETTE[3]),
                )
            ),
            margin=dict(t=100),
        )
    return fig


def _log_if_wide(values: Any) -> str:
    """``"log"`` for positive data spanning more than a decade, else ``"linear"`` (a log axis
    over a fraction of a decade only hides the numbers): the shared rule
    (:func:`labkit.figures.axis_type_for`) at its lower threshold, since scaling laws read
    log-log."""
    return axis_type_for(values, log_above=MIN_LOG_DECADES)


def _size_colours(values: np.ndarray) -> dict[float, str]:
    uniq = np.unique(values)
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(uniq)}


def law_figure(result: FitResult, points: pd.DataFrame, title: str, size_bins: int = 6) -> go.Figure:
    """Loss against tokens, coloured by model size, with the fitted law along each size."""
    pts = points.copy()
    if pts["N"].nunique() > size_bins:  # Chinchilla's 240 runs: bin sizes on a log scale
        edges = np.geomspace(pts["N"].min(), pts["N"].max() * 1.0001, size_bins + 1)
        pts["size"] = np.sqrt(edges[np.digitize(pts["N"], edges) - 1] * edges[np.digitize(pts["N"], edges)])
    else:
        pts["size"] = pts["N"]
    fig = go.Figure()
    colours = _size_colours(pts["size"].to_numpy())
    D = np.geomspace(pts["D"].min() / 1.5, pts["D"].max() * 1.5, 100)
    for size, colour in colours.items():
        sub = pts[pts["size"] == size]
        label = f"N ≈ {size:.3g}"
        fig.add_trace(
            go.Scatter(
                x=sub["D"],
                y=sub["loss"],
                mode="markers",
                name=label,
                marker=dict(color=colour, size=6, opacity=0.7),
                legendgroup=label,
            )
        )
        fig.add_trace(_fit_line(result, size, D, colour, label))
    fig.update_layout(title=title, xaxis_title="training tokens D", yaxis_title="loss (nats/token)")
    fig.update_xaxes(type=_log_if_wide(pts["D"]))
    fig.update_yaxes(type=_log_if_wide(pts["loss"]))
    return _flag_figure(fig, result)


def _fit_line(result: FitResult, N: float, D: np.ndarray, colour: str, label: str) -> go.Scatter:
    """The fitted law's loss over ``D`` at size ``N``, in the colour and legend group of that size's points."""
    return go.Scatter(
        x=D,
        y=result.predict(N, D),
        mode="lines",
        showlegend=False,
        line=dict(color=colour),
        legendgroup=label,
        name=f"fit {label}",
    )


def contour_figure(result: FitResult, points: pd.DataFrame, compute: np.ndarray) -> go.Figure:
    """Iso-loss contours of the fitted law over (N, D), iso-FLOP lines C = 6ND and the
    compute-optimal frontier."""

    N = np.geomspace(points["N"].min() / 3, points["N"].max() * 30, 80)
    D = np.geomspace(points["D"].min() / 3, points["D"].max() * 30, 80)
    L = result.predict(N[None, :], D[:, None])
    fig = go.Figure(
        go.Contour(
            x=np.log10(N),
            y=np.log10(D),
            z=L,
            colorscale="Viridis",
            contours=dict(showlabels=True),
            colorbar=dict(title="loss"),
            name="fitted loss",
        )
    )
    for c in compute:
        n = N[(6 * N * D.min() <= c) & (c / (6 * N) <= D.max())]
        if len(n):
            fig.add_trace(
                go.Scatter(
                    x=np.log10(n),
                    y=np.log10(c / (6 * n)),
                    mode="lines",
                    line=dict(color="white", dash="dot"),
                    name=f"C = {c:.0e}",
                )
            )
    opt = compute_optimal(result.params, np.geomspace(6 * N.min() * D.min(), 6 * N.max() * D.max(), 50))
    keep = opt["N_opt"].between(N.min(), N.max()) & opt["D_opt"].between(D.min(), D.max())
    fig.add_trace(
        go.Scatter(
            x=np.log10(opt.loc[keep, "N_opt"]),
            y=np.log10(opt.loc[keep, "D_opt"]),
            mode="lines",
            line=dict(color=PALETTE[3], width=3),
            name="compute-optimal",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=np.log10(points["N"]),
            y=np.log10(points["D"]),
            mode="markers",
            marker=dict(color="black", size=4),
            name="runs",
        )
    )
    # legend below the plot: the colourbar owns the right margin
    fig.update_layout(
        xaxis_title="log10 parameters N",
        yaxis_title="log10 tokens D",
        title="Iso-loss contours, iso-FLOP lines and the compute-optimal frontier",
        legend=dict(orientation="h", x=0, xanchor="left", y=-0.18, yanchor="top", bgcolor="#d9d9d9"),
    )  # grey, so the white iso-FLOP lines show
    return _flag_figure(fig, result)


def residual_figure(result: FitResult, points: pd.DataFrame) -> go.Figure:
    """log(observed) - log(predicted) against compute, coloured by model size."""
    C = 6 * points["N"] * points["D"]
    fig = go.Figure(
        go.Scatter(
            x=C,
            y=result.residuals,
            mode="markers",
            marker=dict(color=np.log10(points["N"]), colorscale="Viridis", colorbar=dict(title="log10 N"), size=6),
            name="residual",
        )
    )
    fig.add_hline(y=0, line=dict(color="grey", dash="dash"))
    fig.update_xaxes(type="log", title="compute C = 6ND (FLOP)")
    fig.update_yaxes(title="log L observed − log L fitted")
    fig.update_layout(title="Residuals of the fit")
    return _flag_figure(fig, result)


def bootstrap_figure(
    samples: pd.DataFrame, estimate: dict[str, float], published: dict[str, float] | None = HOFFMANN_PARAMS
) -> go.Figure:
    """Histogram of each parameter over the bootstrap, with the estimate and a published value."""
    names = list(estimate)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=names)
    for i, name in enumerate(names, start=1):
        fig.add_trace(
            go.Histogram(x=samples[name], nbinsx=40, marker_color=PALETTE[0], showlegend=False, name=name), row=1, col=i
        )
        fig.add_vline(x=estimate[name], line=dict(color=PALETTE[3]), row=1, col=i)
        if published and name in published:
            fig.add_vline(x=published[name], line=dict(color=PALETTE[1], dash="dash"), row=1, col=i)
    fig.update_layout(
        title=f"Bootstrap distributions ({len(samples)} resamples): fit (red), Hoffmann et al. (orange, dashed)",
        bargap=0.05,
    )
    return fig


def unique_sequences_figure(
    counts: pd.DataFrame,
    beta: float,
    beta_ci: tuple[float, float],
) -> go.Figure:
    """Kausik's U(D) band at the fitted beta (and its CI) beside unique n-grams of our corpus."""
    D = np.geomspace(max(10, counts["D"].min()), counts["D"].max(), 60)
    fig = go.Figure()
    low_lo, _ = kausik.unique_sequence_bounds(D, beta_ci[1])
    _, high_hi = kausik.unique_sequence_bounds(D, beta_ci[0])
    fig.add_trace(
        go.Scatter(
            x=np.r_[D, D[::-1]],
            y=np.r_[high_hi, low_lo[::-1]],
            fill="toself",
            fillcolor="rgba(0,114,178,0.12)",
            line=dict(width=0),
            name="bounds over the beta 95% CI",
        )
    )
    low, high = kausik.unique_sequence_bounds(D, beta)
    fig.add_trace(go.Scatter(x=D, y=high, mode="lines", line=dict(color=PALETTE[0]), name=f"D^(1−β), β = {beta:.3f}"))
    fig.add_trace(go.Scatter(x=D, y=low, mode="lines", line=dict(color=PALETTE[0], dash="dash"), name="D^(1−2β)"))
    for i, (n, sub) in enumerate(counts.groupby("n")):
        fig.add_trace(
            go.Scatter(
                x=sub["D"],
                y=sub["unique"],
                mode="lines+markers",
                line=dict(color=PALETTE[(i + 1) % len(PALETTE)]),
                name=f"unique {n}-grams in our corpus",
            )
        )
    fig.update_xaxes(type="log", title="tokens D")
    fig.update_yaxes(type="log", title="unique sequences U")
    fig.update_layout(title="Kausik's bounds on unique sequences vs unique n-grams of real text")
    return fig


def beta_figure(beta_grid: np.ndarray, beta_fit: float, beta_ci: tuple[float, float]) -> go.Figure:
    """gamma range and the doubling factor as beta moves, with the paper's and our beta marked."""
    table = kausik.versus_beta(beta_grid)
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.16,
        subplot_titles=("exponent γ of N ~ D^γ", "data factor that doubles the skills"),
    )
    fig.add_trace(
        go.Scatter(x=table["beta"], y=table["gamma_high"], name="γ high (1−β)", line=dict(color=PALETTE[0])),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(x=table["beta"], y=table["gamma_mid"], name="γ mid", line=dict(color=PALETTE[2])), row=1, col=1
    )
    fig.add_trace(
        go.Scatter(
            x=table["beta"], y=table["gamma_low"], name="γ low (1−2β)", line=dict(color=PALETTE[0], dash="dash")
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=table["beta"], y=table["doubling_high"], name="2^(1/γ_low)", line=dict(color=PALETTE[3], dash="dash")
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(x=table["beta"], y=table["doubling_mid"], name="2^(1/γ_mid)", line=dict(color=PALETTE[2])),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(x=table["beta"], y=table["doubling_low"], name="2^(1/γ_high)", line=dict(color=PALETTE[3])),
        row=1,
        col=2,
    )
    for col in (1, 2):
        fig.add_vrect(x0=beta_ci[0], x1=beta_ci[1], fillcolor="rgba(0,0,0,0.08)", line_width=0, row=1, col=col)
        fig.add_vline(x=kausik.CHINCHILLA_BETA, line=dict(color="grey", dash="dot"), row=1, col=col)
        fig.add_vline(x=beta_fit, line=dict(color=PALETTE[3]), row=1, col=col)
        fig.update_xaxes(title="β", row=1, col=col)
    # the doubling factor runs from 2x to 1000x as beta nears 0.5: on a linear axis the 3-14x
    # that matters is a flat line, so go log whenever the data span more than two decades
    factors = table[["doubling_low", "doubling_mid", "doubling_high"]].to_numpy(float)
    factors = factors[np.isfinite(factors) & (factors > 0)]
    if len(factors) and axis_type_for(factors) == "log":
        ticks = [
            v
            for v in (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
            if factors.min() / 1.5 <= v <= factors.max() * 1.5
        ]
        fig.update_yaxes(
            type="log",
            title="data factor (log scale)",
            tickvals=ticks,
            ticktext=[f"{v:g}x" for v in ticks],
            row=1,
            col=2,
        )
    else:
        fig.update_yaxes(title="data factor", row=1, col=2)
    fig.update_yaxes(title="γ", row=1, col=1)
    fig.update_layout(
        title="Kausik's conclusions against β: paper's 0.28 (dotted), our fit (red) and its 95% CI (shaded)"
    )
    return fig


def sweep_figure(result: FitResult | None, runs: pd.DataFrame) -> go.Figure:
    """Held-out loss of our tiny models against tokens, one colour per size, with the fit."""
    fig = go.Figure()
    colours = _size_colours(runs["N"].to_numpy())
    D = np.geomspace(runs["D"].min() / 1.3, runs["D"].max() * 1.3, 60)
    for N, colour in colours.items():
        sub = runs[runs["N"] == N].sort_values("D")
        label = f"N = {N:,.0f}"
        fig.add_trace(
            go.Scatter(
                x=sub["D"],
                y=sub["loss"],
                mode="markers",
                name=label,
                marker=dict(color=colour, size=9),
                legendgroup=label,
            )
        )
        if result is not None:
            fig.add_trace(_fit_line(result, N, D, colour, label))
    fig.update_xaxes(type=_log_if_wide(runs["D"]), title="training tokens D")
    fig.update_yaxes(type=_log_if_wide(runs["loss"]), title="held-out loss (nats/token)")
    fig.update_layout(title="Our sweep: tiny decoders on real text, with the fitted law")
    return _flag_figure(fig, result)
