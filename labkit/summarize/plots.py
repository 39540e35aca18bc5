"""Figures of the meeting-summarization study (re-exported by :mod:`labkit.summarize.study`).

Every figure that shows systems marks a degenerate one (:mod:`labkit.summarize.guards`) and
one not above the floor (:mod:`labkit.summarize.floors`) in its label (``"<name> ⚠ degenerate:
loops, duplicates"``, ``"<name> ⚠ not above floor"``) and names it in the title, so a PNG seen
alone carries the caveat. Axes are log only where the data span more than
:data:`labkit.figcheck.LOG_DECADES` decades (:func:`labkit.figures.axis_type_for`), with ranges computed from
the data (a histogram on a plotly log axis bins in log units with a linear bin size, which once
stretched the prompt-length axis to 10^277: histograms here are binned with numpy and drawn as
bars).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit.figures import PALETTE, axis_type_for, label_positions
from labkit.histograms import bin_edges, histogram_bar, log_range
from labkit.summarize import evaluate, floors, guards
from labkit.summarize.meaning import MEANING, MEANING_LABEL
from labkit.summarize.tables import LABELS, system_label


def _layout_title(text: str, xref: str = "paper") -> dict:
    """A title anchored above the plot area (paper coordinates), so ``title_automargin`` grows
    the top margin for it instead of pushing a two-line title off the canvas. ``xref=
    "container"`` starts it at the canvas' left edge (where long axis labels push the plot
    area far right, a title starting there would run off the canvas)."""
    return dict(
        text=text,
        yref="paper",
        y=1,
        yanchor="bottom",
        pad=dict(b=28),
        x=0.01 if xref == "container" else 0,
        xref=xref,
        xanchor="left",
    )


def _one_row_per_run(scores: pd.DataFrame) -> pd.DataFrame:
    """The widest query group of each (system, instruction): ``all`` when there are several."""
    if "queries" not in scores:
        return scores
    last = scores.groupby(["system", "instruction"], sort=False)["queries"].transform("last")
    return scores[scores["queries"] == last]


def display_names(scores: pd.DataFrame) -> dict[str, str]:
    """System -> label with the degenerate mark and tags and the floor mark (``⚠ not above
    floor``, with the instruction types where it fires when not all of them)."""

    return {system: system_label(system, group, figure=True) for system, group in scores.groupby("system", sort=False)}


def _two_lines(label: str) -> str:
    """Put each mark on its own line (long axis labels squeeze the plot)."""
    for mark in (guards.FLAG_MARK, floors.FLOOR_MARK):
        label = label.replace(f" {mark}", f"<br>{mark}", 1)
    return label


def flag_note(scores: pd.DataFrame) -> str:
    """One or two sentences naming each flagged system and why, for captions ("" if none)."""
    parts = []
    if "degenerate" in scores and scores["degenerate"].any():
        bad = [
            f"{system} ({'; '.join(dict.fromkeys(group['degenerate_reason']))})"
            for system, group in _one_row_per_run(scores[scores["degenerate"].astype(bool)]).groupby(
                "system", sort=False
            )
        ]
        parts.append(
            f" {guards.FLAG_MARK}: "
            + ", ".join(bad)
            + (": its" if len(bad) == 1 else ": their")
            + " ROUGE is not summary quality."
        )
    if "below_floor" in scores and scores["below_floor"].eq(True).any():
        rows = scores[scores["below_floor"].eq(True)]
        judged = scores[scores["below_floor"].notna()]
        low = [
            f"{system} ({len(g)} of {int((judged['system'] == system).sum())} rows)"
            for system, g in rows.groupby("system", sort=False)
        ]
        parts.append(
            f" {floors.FLOOR_MARK}: " + ", ".join(low) + ": ROUGE-1 interval not above "
            "the best of constant / random / Lead-k at the same length (flag column)."
        )
    return "".join(parts)


def _title(text: str, scores: pd.DataFrame, most: int = 3) -> str:
    """``text`` with a subtitle naming the marked systems per mark; more than ``most`` of them
    are counted instead (each label carries its mark: a long list of names ran off the
    canvas)."""
    marks = []
    for column, mark, test in (
        ("degenerate", guards.FLAG_MARK, lambda c: c.astype(bool)),
        ("below_floor", floors.FLOOR_MARK, lambda c: c.eq(True)),
    ):
        if column not in scores:
            continue
        named = list(dict.fromkeys(scores.loc[test(scores[column]), "system"]))
        if named:
            marks.append(
                f"{mark}: {', '.join(named)}"
                if len(named) <= most
                else f"{mark}: {len(named)} systems (marked in their labels)"
            )
    if not marks:  # one subtitle line: plotly places a title of three lines over the plot
        return text
    return f"{text}<br><sup>{' · '.join(marks)} (see the flag column)</sup>"


def png_size(fig: go.Figure) -> dict[str, int]:
    """``width`` and ``height`` for :func:`labkit.figures.save_figure`: the size a figure here
    set for itself (the main figure grows with the systems), else the default 900 x 520."""
    return {"width": int(fig.layout.width or 900), "height": int(fig.layout.height or 520)}


def main_figure(scores: pd.DataFrame) -> go.Figure:
    """ROUGE-1/2/L and the MiniLM meaning score per system and instruction type, 95% CIs
    (over meetings), one row of panels per query kind.

    Horizontal bars: systems (with their marks) read once on the left of each row.
    """
    metrics_ = [("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")]
    if MEANING in scores and scores[MEANING].notna().any():
        metrics_.append((MEANING, MEANING_LABEL))
    if "queries" not in scores:
        scores = scores.assign(queries="all")
    kinds = [k for k in dict.fromkeys(scores["queries"]) if k != "all"] or ["all"]
    fig = make_subplots(
        rows=len(kinds),
        cols=len(metrics_),
        shared_yaxes=True,
        horizontal_spacing=0.03,
        vertical_spacing=0.12 if len(kinds) > 1 else 0.1,
        row_titles=[f"{k} queries" for k in kinds] if len(kinds) > 1 else None,
    )
    insts = list(dict.fromkeys(scores["instruction"]))
    for r, queries in enumerate(kinds, start=1):
        part = scores[scores["queries"] == queries]
        names = {k: _two_lines(v) for k, v in display_names(part).items()}
        order = list(dict.fromkeys(part["system"]))[::-1]  # first system on top
        for col, (metric, _) in enumerate(metrics_, start=1):
            for i, inst in reversed(list(enumerate(insts))):  # first instruction on top
                sub = part[part["instruction"] == inst].set_index("system").reindex(order).dropna(subset=[metric])
                fig.add_trace(
                    go.Bar(
                        y=[names[s] for s in sub.index],
                        x=sub[metric],
                        orientation="h",
                        name=inst,
                        legendgroup=inst,
                        showlegend=col == 1 and r == 1,
                        marker_color=PALETTE[i % len(PALETTE)],
                        error_x=dict(
                            type="data",
                            symmetric=False,
                            array=sub[f"{metric}_high"] - sub[metric],
                            arrayminus=sub[metric] - sub[f"{metric}_low"],
                            thickness=1,
                        ),
                    ),
                    row=r,
                    col=col,
                )
        fig.update_yaxes(categoryorder="array", categoryarray=[names[s] for s in order], row=r)
    for col, (_, label) in enumerate(metrics_, start=1):  # axis titles, not subplot titles:
        fig.update_xaxes(title=label, row=len(kinds), col=col)  # those would hit the title
    # a system's label takes up to two lines (name, mark): about 46 px per system and row
    systems = scores["system"].nunique()
    fig.update_layout(
        barmode="group",
        height=len(kinds) * (46 * systems + 80) + 280,
        width=1100,
        margin=dict(b=120),
        legend=dict(
            orientation="h", yref="container", y=0.005, yanchor="bottom", x=0.5, xanchor="center", traceorder="reversed"
        ),
        title=_layout_title(
            _title("ROUGE and MiniLM meaning score by system and instruction (95% CIs over meetings)", scores),
            xref="container",
        ),
    )
    return fig


def pareto_figure(scores: pd.DataFrame, instruction: str = "medium") -> go.Figure:
    """ROUGE-1 against latency, cost and energy per summary, Pareto front marked (on all items:
    the ``all`` query group when there are several).

    Points carry a number; the legend maps numbers to systems. Calibration baselines,
    degenerate systems and systems not above the floor are drawn hollow and never join the
    front (:func:`evaluate.with_pareto`). Each x axis is log only where its data span more
    than two decades.
    """
    rows = _one_row_per_run(scores[scores["instruction"] == instruction])
    frame = evaluate.with_pareto(rows).reset_index(drop=True)
    costs = [
        ("latency_s", "seconds per transcript"),
        ("usd_per_1000", "USD per 1,000 summaries"),
        ("energy_wh_per_summary", "Wh per summary"),
    ]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08)
    names = display_names(frame)
    colours = [c for c in PALETTE if c != "#F0E442"]  # the yellow is too pale for hollow points
    places = {}  # per panel, a label side per point so that close points' numbers do not collide
    for cost, _ in costs:
        values = frame[cost].to_numpy(float)
        kind = axis_type_for(values)
        shown = np.log10(np.where(values > 0, values, np.nan)) if kind == "log" else values
        places[cost] = label_positions(
            np.nan_to_num(shown), frame["rouge1"].to_numpy(float), near=(0.12, 0.05)
        )  # three narrow panels
    for number, row in frame.iterrows():
        colour = colours[number % len(colours)]
        excluded = row["kind"] == "baseline" or bool(row.get("degenerate", False)) or row.get("below_floor") is True
        for col, (cost, _) in enumerate(costs, start=1):
            on_front = bool(row[f"pareto_{cost}"])
            fig.add_trace(
                go.Scatter(
                    x=[row[cost]],
                    y=[row["rouge1"]],
                    mode="markers+text",
                    text=[str(number + 1)],
                    textposition=places[cost][number],
                    textfont=dict(size=11),
                    cliponaxis=False,
                    name=f"{number + 1} {names[row['system']]}",
                    legendgroup=row["system"],
                    showlegend=col == 1,
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=[row["rouge1_high"] - row["rouge1"]],
                        arrayminus=[row["rouge1"] - row["rouge1_low"]],
                        thickness=1,
                    ),
                    marker=dict(
                        size=14 if on_front else 9,
                        color="white" if excluded else colour,
                        line=dict(color=colour, width=2),
                        symbol="star" if on_front else "circle",
                    ),
                ),
                row=1,
                col=col,
            )
    for col, (cost, label) in enumerate(costs, start=1):
        values = frame[cost].to_numpy(float)
        kind = axis_type_for(values)
        fig.update_xaxes(type=kind, title=label, row=1, col=col)
        finite = values[np.isfinite(values)]
        if len(finite) and kind == "log":
            lo, hi = np.log10(finite.min()), np.log10(finite.max())
            pad = max(0.08 * (hi - lo), 0.1)
            fig.update_xaxes(range=[lo - 2 * pad, hi + 2 * pad], row=1, col=col)  # room for numbers
        elif len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            pad = max(0.08 * (hi - lo), 0.05 * abs(hi) or 1e-9)
            fig.update_xaxes(range=[lo - 2 * pad, hi + 2 * pad], row=1, col=col)
    fig.update_yaxes(title="ROUGE-1 (95% CI)", row=1, col=1)
    fig.update_layout(
        legend=dict(orientation="h", y=-0.22, x=0, font=dict(size=10)),
        title=_layout_title(
            _title(f"ROUGE-1 against cost, {instruction} summaries (stars: Pareto front; hollow: not eligible)", frame)
        ),
    )
    return fig


def chunking_figure(table: pd.DataFrame) -> go.Figure:
    """Truncation vs map-reduce chunking on the longest meetings (degenerate mark in the title)."""
    fig = go.Figure()
    for i, metric in enumerate(("rouge1", "rouge2", "rougeL")):
        fig.add_trace(
            go.Bar(
                x=table["strategy"],
                y=table[metric],
                name=metric,
                marker_color=PALETTE[i],
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=table[f"{metric}_high"] - table[metric],
                    arrayminus=table[metric] - table[f"{metric}_low"],
                ),
            )
        )
    system = re.sub(r" \[(truncate|chunk)\]$", "", str(table["system"].iloc[0]))  # the model, not a row
    title = f"{system}: truncated prefix vs map-reduce chunks"
    if "flag" in table and table["flag"].astype(bool).any():
        flagged = table.loc[table["flag"].astype(bool), "strategy"]
        title += f"<br><sup>{guards.FLAG_MARK} ({', '.join(flagged)}): see the flag column</sup>"
    fig.update_layout(barmode="group", yaxis_title="ROUGE (95% CI)", title=_layout_title(title))
    return fig


def lengths_figure(lengths: pd.DataFrame, contexts: dict[str, int], bins: int = 30) -> go.Figure:
    """Prompt tokens per item (histogram) against each model's context (vertical lines).

    Bins are log-spaced on a log axis (data and contexts spanning more than two decades) and
    linear otherwise; each bar covers exactly its bin. Context lines are traces, so the axis
    range and the legend include them.
    """
    tokens = lengths["prompt_tokens"].to_numpy(float)
    tokens = tokens[np.isfinite(tokens) & (tokens > 0)]
    everything = np.concatenate([tokens, np.asarray(list(contexts.values()), float)])
    kind = axis_type_for(everything)
    fig = go.Figure()
    top = 1.0
    if len(tokens):
        marker = dict(color=PALETTE[0], line=dict(width=0.5, color="white"))
        bar, top = histogram_bar(tokens, bin_edges(tokens, kind, bins), "items", name="prompts", marker=marker)
        fig.add_trace(bar)
    for i, (model, context) in enumerate(contexts.items()):
        fig.add_trace(
            go.Scatter(
                x=[context, context],
                y=[0, top * 1.05],
                mode="lines",
                line=dict(color=PALETTE[(i + 1) % len(PALETTE)], dash="dash", width=2),
                name=f"{model}: {context:,} tokens",
            )
        )
    fig.update_xaxes(
        type=kind, title="prompt tokens (transcript + instruction)", rangemode="normal" if kind == "log" else "tozero"
    )
    if len(everything) and kind == "log":
        fig.update_xaxes(range=log_range(everything))
    fig.update_yaxes(title="items", rangemode="tozero")
    fig.update_layout(
        title=_layout_title("Transcript prompts against model contexts"),
        bargap=0,
        legend=dict(orientation="h", y=-0.2, x=0),
    )
    return fig


def paired_figure(table: pd.DataFrame, title: str) -> go.Figure:
    """Paired differences ``a - b`` (:func:`labkit.summarize.tables.paired`) with their 95%
    intervals, one panel per metric, one row per query kind and instruction type; the zero
    line is drawn, so "no difference shown" is read off the plot."""

    metrics_ = list(dict.fromkeys(table["metric"]))
    fig = make_subplots(rows=1, cols=len(metrics_), shared_yaxes=True, horizontal_spacing=0.06)
    rows = list(dict.fromkeys(zip(table["queries"], table["instruction"])))
    labels = [f"{q} · {i}" for q, i in rows][::-1]
    for col, metric in enumerate(metrics_, start=1):
        sub = table[table["metric"] == metric].set_index(["queries", "instruction"]).reindex(rows[::-1])
        ahead = (sub["low"] > 0) | (sub["high"] < 0)
        fig.add_trace(
            go.Scatter(
                x=sub["mean_diff"],
                y=labels,
                mode="markers",
                showlegend=False,
                marker=dict(
                    size=10,
                    color=[PALETTE[2] if a else PALETTE[0] for a in ahead],
                    symbol=["diamond" if a else "circle" for a in ahead],
                ),
                error_x=dict(
                    type="data",
                    symmetric=False,
                    array=sub["high"] - sub["mean_diff"],
                    arrayminus=sub["mean_diff"] - sub["low"],
                    thickness=1.5,
                ),
                customdata=sub[["items", "meetings"]].to_numpy(),
                hovertemplate="%{y}: %{x:.2f} (%{customdata[0]} items, %{customdata[1]} meetings)<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_vline(x=0, line=dict(color="grey", dash="dash", width=1), row=1, col=col)
        lo = float(np.nanmin(np.minimum(sub["low"], 0)))
        hi = float(np.nanmax(np.maximum(sub["high"], 0)))
        pad = 0.08 * (hi - lo) or 1.0
        fig.update_xaxes(
            title=f"{LABELS.get(metric, metric)} difference", range=[lo - pad, hi + pad], zeroline=False, row=1, col=col
        )
    fig.update_layout(
        title=_layout_title(
            title + "<br><sup>paired over the same items, 95% "
            "intervals resampling meetings; diamonds: interval "
            "excludes 0</sup>"
        ),
        height=max(360, 60 * len(rows) + 200),
    )
    return fig
