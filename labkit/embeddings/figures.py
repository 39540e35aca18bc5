"""Study 1's figures: score distributions, accuracy against energy, seconds and energy per epoch.

Energy here is whatever codecarbon reports; without a power counter it is an estimate from CPU
load x TDP, i.e. seconds x a modelled power. The figures say which (:mod:`labkit.carbon`) in
their titles and axis labels, and the per-epoch figure shows seconds above energy, so an
estimate is never read as a measurement of the model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from labkit.carbon import ESTIMATED, energy_basis
from labkit.figures import PALETTE, axis_type_for, label_positions


def distribution_figure(pairs: pd.DataFrame, systems) -> go.Figure:
    """Held-out similarity by label for each system (violins), threshold-free."""
    test = pairs["split"] == "test"
    fig = go.Figure()
    for label, colour, side in ((1, PALETTE[2], "positive"), (0, PALETTE[3], "negative")):
        xs, ys = [], []
        for name, scores in systems.scores.items():
            keep = test & (pairs["label"] == label)
            xs += [name] * int(keep.sum())
            ys += list(np.asarray(scores)[keep.to_numpy()])
        fig.add_trace(
            go.Violin(
                x=xs,
                y=ys,
                side=side,
                line_color=colour,
                meanline_visible=True,
                name="similar (1)" if label else "different (0)",
                points=False,
                scalemode="width",
                width=0.9,
            )
        )
    fig.update_layout(
        violingap=0.05,
        violinmode="overlay",
        yaxis_title="similarity score",
        title="Held-out pair scores by label, per system (doctor-wise split)",
    )
    return fig


def _padded_range(values: np.ndarray, kind: str, left: float = 0.08, right: float = 0.08) -> list[float]:
    """An axis range around ``values`` (log10 units on a log axis) with room for point labels."""
    v = np.log10(values) if kind == "log" else np.asarray(values, dtype=float)
    lo, hi = float(np.min(v)), float(np.max(v))
    span = hi - lo if hi > lo else (0.5 if kind == "log" else max(abs(hi) * 0.2, 1e-9))
    return [lo - left * span, hi + right * span]


def _energy_word(power_method: str) -> str:
    """``"estimated energy"`` / ``"measured energy"`` / ``"partly measured energy"``."""
    return f"{energy_basis(power_method)} energy"


def pareto_figure(results: pd.DataFrame, inference: pd.DataFrame, power_method: str) -> go.Figure:
    """Held-out accuracy against the energy it took (training + embedding 1,000 texts).

    Points carry a number and the legend maps numbers to systems: system names as point labels
    collided with each other and ran off the canvas. The energy axis is log only where the
    systems differ by decades (:func:`labkit.figures.axis_type_for`); its title says whether
    the energy is estimated or measured.
    """

    frame = results.dropna(subset=["accuracy"]).copy()
    inf = inference.set_index("system")["energy_kwh_per_1000"] if len(inference) else pd.Series(dtype=float)
    base = frame["system"].str.replace(r"(\+siamese|-finetuned)$", "", regex=True)
    frame["energy_wh"] = 1000 * (frame["training_energy_kwh"].fillna(0) + base.map(inf).fillna(0).to_numpy())
    frame = frame[frame["energy_wh"] > 0].reset_index(drop=True)
    q, c = frame["accuracy"].to_numpy(), frame["energy_wh"].to_numpy()
    front = [not np.any((q >= q[i]) & (c <= c[i]) & ((q > q[i]) | (c < c[i]))) for i in range(len(q))]
    kind = axis_type_for(c) if len(c) else "linear"
    places = label_positions(np.log10(c) if kind == "log" else c, q)
    fig = go.Figure()
    kinds = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(sorted(frame["kind"].unique()))}
    for number, row in frame.iterrows():
        fig.add_trace(
            go.Scatter(
                x=[row["energy_wh"]],
                y=[row["accuracy"]],
                mode="markers+text",
                text=[str(number + 1)],
                textposition=places[number],
                textfont=dict(size=12),
                cliponaxis=False,
                name=f"{number + 1} {row['system']} ({row['kind']})",
                legendgroup=row["kind"],
                marker=dict(color=kinds[row["kind"]], size=11, symbol="star" if front[number] else "circle"),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[row["accuracy_high"] - row["accuracy"]],
                    arrayminus=[row["accuracy"] - row["accuracy_low"]],
                ),
            )
        )
    on = frame[front].sort_values("energy_wh")
    fig.add_trace(
        go.Scatter(
            x=on["energy_wh"],
            y=on["accuracy"],
            mode="lines",
            line=dict(color="grey", dash="dash"),
            name="Pareto front (stars)",
        )
    )
    word = _energy_word(power_method)
    fig.update_xaxes(
        type=kind, title=f"{word} (Wh): training + embedding 1,000 texts" + (", log scale" if kind == "log" else "")
    )
    if len(c):
        fig.update_xaxes(range=_padded_range(c, kind, left=0.1, right=0.12))
    fig.update_yaxes(title="held-out accuracy (95% CI)")
    fig.update_layout(
        title=f"Accuracy against {word}, with the Pareto front<br><sup>power: {power_method}</sup>",
        legend=dict(font=dict(size=11), tracegroupgap=2),
    )
    return fig


#: PNG height of :func:`epoch_figure` (two stacked panels)
EPOCH_FIGURE_HEIGHT = 760


def _log_range(values: np.ndarray) -> list[float]:
    """A log axis whose floor lies a good way below the smallest bar (bars start there)."""
    positive = values[values > 0]
    low, high = np.floor(np.log10(positive.min()) - 0.3), np.log10(positive.max())
    return [low, high + 0.1 * (high - low)]


def epoch_figure(epochs: pd.DataFrame, power_method: str) -> go.Figure:
    """Seconds (top) and energy (bottom, mWh) of every training epoch, per system.

    Seconds come first because they are what was measured on this machine; energy is
    labelled estimated or measured (:func:`labkit.carbon.energy_basis`). Without a
    ``seconds`` column (older tables) only the energy panel is drawn. Fine-tuning an encoder
    costs decades more per epoch than a Siamese head; a log axis (chosen from the data by
    :func:`labkit.figures.axis_type_for`) keeps the heads' bars visible. Save it taller than
    the default (two panels): ``save_figure(..., height=EPOCH_FIGURE_HEIGHT)``.
    """
    from plotly.subplots import make_subplots

    word = _energy_word(power_method)
    panels = [("seconds", 1.0, "seconds")] if "seconds" in epochs.columns else []
    panels.append(("energy_kwh", 1e6, f"{energy_basis(power_method)} mWh"))
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for row, (column, scale, title) in enumerate(panels, start=1):
        for i, (name, sub) in enumerate(epochs.groupby("system", sort=False)):
            fig.add_trace(
                go.Bar(
                    x=[f"{name} · {int(e)}" for e in sub["epoch"]],
                    y=scale * sub[column],
                    name=name,
                    legendgroup=name,
                    showlegend=row == 1,
                    marker_color=PALETTE[i % len(PALETTE)],
                    customdata=1000 * sub["emissions_g"],
                    hovertemplate="%{x}<br>%{y:.3g}<br>%{customdata:.3g} mg CO2eq",
                ),
                row=row,
                col=1,
            )
        values = scale * epochs[column].to_numpy(dtype=float) if len(epochs) else np.empty(0)
        kind = axis_type_for(values)
        if kind == "log":
            fig.update_yaxes(type="log", range=_log_range(values), row=row, col=1)
        fig.update_yaxes(title=title + (" (log)" if kind == "log" else ""), row=row, col=1)
    fig.update_xaxes(title="system · epoch", row=len(panels), col=1)
    what = "Seconds and " + word if len(panels) == 2 else word.capitalize()
    subtitle = (
        f"{power_method}: energy is seconds x a modelled power"
        if energy_basis(power_method) == ESTIMATED
        else power_method
    )
    fig.update_layout(showlegend=True, title=f"{what} per training epoch<br><sup>{subtitle}</sup>")
    return fig
