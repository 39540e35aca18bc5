"""Explore Kausik's bounds: drag the data exponent beta, watch gamma, the doubling factor and
the band of unique sequences U(D) move.

The bounds are closed-form (``labkit.scaling.kausik``), so the explorer works before any batch
run; when ``figures/scaling_laws/bootstrap_params.csv`` exists (written by
``notebooks/scaling_laws.ipynb``) it also shows where the chosen beta falls in the bootstrap
distribution of the fitted beta, so a reader sees how much of the range the data support.

In JupyterLab the band used to be drawn against the point index (1..60) instead of D while
the untouched D line was right: the slider's one batched update carried the marker's new x
together with "undefined" x entries for the band, with numpy arrays sent as binary buffers.
Now every curve goes to the browser as a plain list, the band is restyled in y only, and the
marker in a restyle of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from labkit.explore import ResultsMissing, main_control, message, results_folder
from labkit.scaling import kausik

STUDY = "scaling_laws"
FILES = ("bootstrap_params.csv",)
PAPER_BETA = 0.28
TOKENS = np.logspace(6, 13, 60)
#: the trace numbers of the U(D) band and of the chosen-beta marker in :func:`build`'s figure
BAND_TRACES = (1, 2)
MARKER_TRACE = 5


def band(beta: float) -> dict[str, list[float]]:
    """x (the D grid) and both bounds of the U(D) band at ``beta``, as JSON-ready lists."""

    low, high = kausik.unique_sequence_bounds(TOKENS, beta)
    return {"x": TOKENS.tolist(), "high": np.asarray(high).tolist(), "low": np.asarray(low).tolist()}


def conclusions(beta: float) -> dict[str, float]:
    """gamma range and midpoint, and the corpus growth that doubles the skills, at ``beta``."""

    lo, hi = kausik.gamma_range(beta)
    mid = (lo + hi) / 2
    return {
        "gamma_low": lo,
        "gamma_mid": mid,
        "gamma_high": hi,
        "doubling_low": kausik.doubling_factor(hi),
        "doubling_mid": kausik.doubling_factor(mid),
        "doubling_high": kausik.doubling_factor(lo),
    }


def _bootstrap_betas(root: Path | None) -> tuple[np.ndarray | None, str]:
    try:
        folder = results_folder(STUDY, FILES, root)
    except ResultsMissing as err:
        return None, str(err)
    betas = pd.read_csv(folder / "bootstrap_params.csv")["beta"].dropna().to_numpy()
    return betas, ""


def build(root: Path | None = None):
    import ipywidgets as widgets
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    betas, missing = _bootstrap_betas(root)
    start = float(np.median(betas)) if betas is not None and len(betas) else PAPER_BETA
    beta = main_control(
        widgets.FloatSlider(
            value=round(start, 3),
            min=0.05,
            max=0.49,
            step=0.01,
            description="beta",
            continuous_update=False,
            readout_format=".2f",
        )
    )
    fig = go.FigureWidget(
        make_subplots(
            rows=1, cols=2, subplot_titles=("unique sequences U(D) between the bounds", "gamma range against beta")
        )
    )
    first = band(beta.value)
    fig.add_scatter(
        x=first["x"],
        y=first["x"],
        name="D (every sequence unique)",
        line=dict(dash="dot", color="#000000"),
        row=1,
        col=1,
    )
    fig.add_scatter(x=first["x"], y=first["high"], name="U upper: D^(1-beta)", line=dict(color="#0072B2"), row=1, col=1)
    fig.add_scatter(
        x=first["x"],
        y=first["low"],
        name="U lower: D^(1-2beta)",
        fill="tonexty",
        line=dict(color="#56B4E9"),
        row=1,
        col=1,
    )
    grid = np.linspace(0.05, 0.49, 45).tolist()
    lows, highs = zip(*(kausik.gamma_range(b) for b in grid))
    fig.add_scatter(x=grid, y=highs, name="gamma high: 1-beta", line=dict(color="#009E73"), row=1, col=2)
    fig.add_scatter(x=grid, y=lows, name="gamma low: 1-2beta", fill="tonexty", line=dict(color="#E69F00"), row=1, col=2)
    fig.add_scatter(
        x=[start, start],
        y=[0, 1],
        mode="lines",
        name="chosen beta",
        line=dict(dash="dash", color="#D55E00"),
        row=1,
        col=2,
    )
    if betas is not None and len(betas):
        fig.add_histogram(
            x=betas.tolist(),
            name="bootstrap beta (Chinchilla fit), share",
            histnorm="probability",
            marker_color="#CC79A7",
            opacity=0.35,
            row=1,
            col=2,
        )
    fig.update_xaxes(type="log", title="training tokens D", row=1, col=1)
    fig.update_yaxes(type="log", title="sequences", row=1, col=1)
    fig.update_xaxes(title="beta", row=1, col=2)
    fig.update_yaxes(title="gamma (N ~ D^gamma)", range=[0, 1], row=1, col=2)
    fig.update_layout(width=1100, height=440, legend=dict(orientation="h", y=-0.2))
    readout = widgets.HTML()

    def update(*_):
        b = beta.value
        now = band(b)
        c = conclusions(b)
        # two restyles, not one batch: a batch merges the marker's new x with the band's new y
        # into one update whose x entries for the band are "undefined", and the band lost its
        # D axis in JupyterLab. Values are lists, so no binary typed-array buffer is involved.
        fig.plotly_restyle({"y": [now["high"], now["low"]]}, trace_indexes=list(BAND_TRACES))
        fig.plotly_restyle({"x": [[b, b]]}, trace_indexes=[MARKER_TRACE])
        share = ""
        if betas is not None and len(betas):
            share = f"; {np.mean(betas <= b):.0%} of bootstrap refits of the Chinchilla data have beta at or below this"
        readout.value = (
            f"beta {b:.2f}: gamma in [{c['gamma_low']:.2f}, {c['gamma_high']:.2f}] (midpoint "
            f"{c['gamma_mid']:.2f}); doubling the skills needs {c['doubling_low']:.1f}x to "
            f"{c['doubling_high']:.1f}x more data (midpoint {c['doubling_mid']:.1f}x){share}."
        )

    beta.observe(update, names="value")
    update()
    parts = [beta, readout, fig]
    if betas is None:
        parts.append(message(missing, title="Bootstrap distribution not shown"))
    return widgets.VBox(parts)


def explorer(root: Path | None = None):
    """The study-4 explorer (works from the formulas alone; richer after a batch run)."""
    return build(root)
