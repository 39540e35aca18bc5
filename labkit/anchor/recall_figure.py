"""The recall frontier's figure: far-distance recall against the KV share kept, and recall per distance.

Why two panels: the left one is the frontier itself (which cache keeps what a far query needs,
at equal memory); the right one shows *where* along the context each method loses the answer,
so a reader sees that a recent-window cache fails exactly beyond its window while the full cache
does not (the guard of :func:`labkit.anchor.recall_frontier.recall_headline`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from labkit.anchor.frontier import FULL, OWN, TRAINED_FULL, budget_label
from labkit.anchor.recall import RecallProbe
from labkit.figures import PALETTE

__all__ = ["recall_figure"]


def _err(mid, lo, hi, thin: bool = False) -> dict:
    mid, lo, hi = (np.asarray(v, dtype=float) for v in (mid, lo, hi))
    return dict(
        type="data",
        symmetric=False,
        array=np.nan_to_num(hi - mid),
        arrayminus=np.nan_to_num(mid - lo),
        thickness=1 if thin else 2,
        width=3 if thin else 6,
    )


def recall_figure(
    summary: pd.DataFrame,
    probe: RecallProbe,
    focus: str = "AnLLM-AC",
    title: str = "Long-range recall: which cache keeps the far bindings",
    dodge_step: float = 0.03,
):
    """Left: recall on the far buckets (95% CI, clustered by prompt) against the share of the
    KV cache kept (log x): presses as lines, anchor methods as markers, the full cache dashed.
    Right: recall per distance (95% CI over prompts) of the full cache, the anchor methods and
    the presses at ``focus``'s own kept share. Press points are dodged by ``dodge_step`` of
    their share so the intervals stay apart (say so in the caption)."""
    from plotly.subplots import make_subplots

    far = ", ".join(str(b) for b in probe.far_buckets)
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.12,
        subplot_titles=(f"far bindings ({far} sentences back) vs KV kept", "recall per distance"),
    )
    presses = summary[summary.kind == "press"]
    groups = list(presses.groupby("method", sort=False))
    color = {name: PALETTE[(i + 1) % len(PALETTE)] for i, (name, _) in enumerate(groups)}
    for i, (name, part) in enumerate(groups):
        part = part.sort_values("kept_share")
        dodge = 1 + dodge_step * (i - (len(groups) - 1) / 2)
        fig.add_scatter(
            x=part.kept_share * dodge,
            y=part.far_recall,
            mode="lines+markers",
            error_y=_err(part.far_recall, part.far_recall_lo, part.far_recall_hi, True),
            name=name,
            legendgroup=name,
            line=dict(color=color[name], width=1.5),
            row=1,
            col=1,
        )
    symbols = ["star", "diamond", "square", "triangle-up"]
    own = summary[summary.kind == OWN].reset_index(drop=True)
    for i, row in own.iterrows():
        dodge = 1 + 2 * dodge_step * (i - (len(own) - 1) / 2)
        fig.add_scatter(
            x=[row.kept_share * dodge],
            y=[row.far_recall],
            mode="markers",
            error_y=_err([row.far_recall], [row.far_recall_lo], [row.far_recall_hi]),
            name=f"{row.method} (anchor cache)",
            legendgroup=row.method,
            marker=dict(
                symbol=symbols[i % len(symbols)],
                size=13,
                color=PALETTE[0] if i == 0 else ["#555", "#999", "#333"][i % 3],
                line=dict(width=1, color="#000"),
            ),
            row=1,
            col=1,
        )
    shares = summary.kept_share.to_numpy(dtype=float)
    full = summary[summary.kind == FULL]
    lines = [(full, "full cache", PALETTE[7], "dash")] + [
        (summary.loc[[i]], r.method, "#999", "dot") for i, r in summary[summary.kind == TRAINED_FULL].iterrows()
    ]
    for part, name, col, dash in lines:
        if len(part):
            fig.add_scatter(
                x=[shares.min() / 1.15, 1.0],
                y=[part.far_recall.iloc[0]] * 2,
                mode="lines",
                name=name,
                legendgroup=name,
                line=dict(color=col, dash=dash, width=1.5),
                row=1,
                col=1,
            )
    ticks = [t for t in (0.02, 0.05, 0.1, 0.25, 0.5, 1.0) if shares.min() / 1.5 <= t <= 1.0]
    fig.update_xaxes(
        type="log",
        tickvals=ticks,
        ticktext=[budget_label(t) for t in ticks],
        title_text="KV cache kept after the bindings (log scale)",
        row=1,
        col=1,
    )
    # right panel: per distance
    x = list(probe.buckets)
    picks = [(full, "full cache", PALETTE[7], "dash", True)]
    picks += [
        (own.iloc[[i]], f"{r.method} (anchor cache)", PALETTE[0] if i == 0 else "#555", "solid", True)
        for i, r in own.iterrows()
    ]
    at = presses[presses.budget == f"= {focus}"]
    picks += [(at.loc[[i]], f"{r.method} at {focus}'s share", color[r.method], "dot", False) for i, r in at.iterrows()]
    for part, name, col, dash, legend in picks:
        if not len(part):
            continue
        r = part.iloc[0]
        y = [r[f"d{d}"] for d in x]
        fig.add_scatter(
            x=x,
            y=y,
            mode="lines+markers",
            name=name,
            legendgroup=name.split(" (")[0] if legend else name,
            showlegend=not legend and name not in [g for g, _ in groups],
            error_y=_err(y, [r[f"d{d}_lo"] for d in x], [r[f"d{d}_hi"] for d in x], True),
            line=dict(color=col, dash=dash, width=1.5),
            row=1,
            col=2,
        )
    log = max(x) / min(x) >= 10  # a log axis only over at least a decade (figcheck)
    fig.update_xaxes(
        type="log" if log else "linear",
        tickvals=x,
        ticktext=[str(d) for d in x],
        title_text="distance of the binding (sentences back" + (", log scale)" if log else ")"),
        row=1,
        col=2,
    )
    # the axis follows the data (figcheck): a probe nobody answers is drawn near 0, not lost
    # under an axis to 1; the title of the guard flags says what that means
    tops = []
    for trace in fig.data:
        y = np.asarray(trace.y, dtype=float)
        err = trace.error_y.array if trace.error_y is not None and trace.error_y.array is not None else 0
        tops.append(np.nanmax(y + np.asarray(err, dtype=float)) if y.size else np.nan)
    top = float(np.nanmax(tops)) if np.isfinite(tops).any() else 1.0
    upper = min(1.05, max(0.05, 1.1 * top))
    fig.update_yaxes(range=[-0.02 * upper, upper], title_text="recall (exact match, 95% CI)")
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.3), width=1100, height=520)
    return fig
