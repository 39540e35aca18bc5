"""Figures of the meeting-summarization study (re-exported by :mod:`labkit.summarize.study`).

Every figure that shows systems marks a degenerate one (:mod:`labkit.summarize.guards`) in its
label (``"<name> ⚠ degenerate: loops, duplicates"``) and names it in the title, so a PNG seen
alone carries the caveat. Axes are log only where the data span more than
:data:`LOG_DECADES` decades (:func:`labkit.figures.axis_type_for`), with ranges computed from
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
from labkit.figcheck import LOG_DECADES  # noqa: F401  (one threshold for every study)
from labkit.figures import decades as _decades
from labkit.summarize import evaluate, guards
from labkit.summarize.meaning import MEANING, MEANING_LABEL



def _layout_title(text: str) -> dict:
    """A title anchored above the plot area (paper coordinates), so ``title_automargin`` grows
    the top margin for it instead of pushing a two-line title off the canvas."""
    return dict(text=text, yref="paper", y=1, yanchor="bottom", pad=dict(b=28), x=0,
                xref="paper", xanchor="left")


# One rule for every study's axes (labkit.figures.axis_type_for), kept under the old names.
decades = _decades
axis_type = axis_type_for


def display_names(scores: pd.DataFrame) -> dict[str, str]:
    """System -> label with the degenerate mark and tags (union over instruction types)."""
    names = {}
    for system, group in scores.groupby("system", sort=False):
        tags = []
        if "degenerate_tags" in group:
            tags = list(dict.fromkeys(t for tag in group["degenerate_tags"].fillna("")
                                      for t in str(tag).split(", ") if t))
        names[system] = guards.label(system, ", ".join(tags))
    return names


def _two_lines(label: str) -> str:
    """Put the degenerate mark on its own line (long axis labels squeeze the plot)."""
    return label.replace(f" {guards.FLAG_MARK}", f"<br>{guards.FLAG_MARK}", 1)


def flag_note(scores: pd.DataFrame) -> str:
    """One sentence naming each degenerate system and why, for captions and titles ("" if none)."""
    if "degenerate" not in scores or not scores["degenerate"].any():
        return ""
    parts = []
    for system, group in scores[scores["degenerate"].astype(bool)].groupby("system", sort=False):
        reasons = list(dict.fromkeys(group["degenerate_reason"]))
        parts.append(f"{system} ({'; '.join(reasons)})")
    return (f" {guards.FLAG_MARK}: " + ", ".join(parts)
            + (": its" if len(parts) == 1 else ": their") + " ROUGE is not summary quality.")


def _title(text: str, scores: pd.DataFrame) -> str:
    flagged = list(dict.fromkeys(scores.loc[scores.get("degenerate", pd.Series(False, index=scores.index))
                                            .astype(bool), "system"]))
    if not flagged:
        return text
    return f"{text}<br><sup>{guards.FLAG_MARK}: {', '.join(flagged)} (see flag column)</sup>"


def main_figure(scores: pd.DataFrame) -> go.Figure:
    """ROUGE-1/2/L and the MiniLM meaning score per system and instruction type, 95% CIs.

    Horizontal bars: systems (with their degenerate mark) read once on the left.
    """
    metrics_ = [("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L")]
    if MEANING in scores and scores[MEANING].notna().any():
        metrics_.append((MEANING, MEANING_LABEL))
    fig = make_subplots(rows=1, cols=len(metrics_), shared_yaxes=True, horizontal_spacing=0.03)
    names = {k: _two_lines(v) for k, v in display_names(scores).items()}
    insts = list(dict.fromkeys(scores["instruction"]))
    order = list(dict.fromkeys(scores["system"]))[::-1]  # first system on top
    for col, (metric, _) in enumerate(metrics_, start=1):
        for i, inst in reversed(list(enumerate(insts))):  # first instruction on top of a group
            sub = scores[scores["instruction"] == inst].set_index("system").reindex(order).dropna(
                subset=[metric])
            fig.add_trace(go.Bar(
                y=[names[s] for s in sub.index], x=sub[metric], orientation="h", name=inst,
                legendgroup=inst, showlegend=col == 1, marker_color=PALETTE[i % len(PALETTE)],
                error_x=dict(type="data", symmetric=False, array=sub[f"{metric}_high"] - sub[metric],
                             arrayminus=sub[metric] - sub[f"{metric}_low"], thickness=1)),
                row=1, col=col)
    for col, (_, label) in enumerate(metrics_, start=1):  # axis titles, not subplot titles:
        fig.update_xaxes(title=label, row=1, col=col)  # those would collide with the title
    fig.update_yaxes(categoryorder="array", categoryarray=[names[s] for s in order])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.2, yanchor="top", x=0,
                                                   traceorder="reversed"),
                      title=_layout_title(_title("ROUGE and MiniLM meaning score by system and instruction "
                                   "(95% CIs)", scores)))
    return fig


def pareto_figure(scores: pd.DataFrame, instruction: str = "medium") -> go.Figure:
    """ROUGE-1 against latency, cost and energy per summary, Pareto front marked.

    Points carry a number; the legend maps numbers to systems. Calibration baselines and
    degenerate systems are drawn hollow and never join the front (:func:`evaluate.with_pareto`).
    Each x axis is log only where its data span more than two decades.
    """
    frame = evaluate.with_pareto(scores[scores["instruction"] == instruction]).reset_index(drop=True)
    costs = [("latency_s", "seconds per transcript"), ("usd_per_1000", "USD per 1,000 summaries"),
             ("energy_wh_per_summary", "Wh per summary")]
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.08)
    names = display_names(frame)
    colours = [c for c in PALETTE if c != "#F0E442"]  # the yellow is too pale for hollow points
    places = {}  # per panel, a label side per point so that close points' numbers do not collide
    for cost, _ in costs:
        values = frame[cost].to_numpy(float)
        kind = axis_type(values)
        shown = np.log10(np.where(values > 0, values, np.nan)) if kind == "log" else values
        places[cost] = label_positions(np.nan_to_num(shown), frame["rouge1"].to_numpy(float),
                                       near=(0.12, 0.05))  # three narrow panels
    for number, row in frame.iterrows():
        colour = colours[number % len(colours)]
        excluded = row["kind"] == "baseline" or bool(row.get("degenerate", False))
        for col, (cost, _) in enumerate(costs, start=1):
            on_front = bool(row[f"pareto_{cost}"])
            fig.add_trace(go.Scatter(
                x=[row[cost]], y=[row["rouge1"]], mode="markers+text", text=[str(number + 1)],
                textposition=places[cost][number], textfont=dict(size=11), cliponaxis=False,
                name=f"{number + 1} {names[row['system']]}", legendgroup=row["system"],
                showlegend=col == 1,
                error_y=dict(type="data", symmetric=False, array=[row["rouge1_high"] - row["rouge1"]],
                             arrayminus=[row["rouge1"] - row["rouge1_low"]], thickness=1),
                marker=dict(size=14 if on_front else 9, color="white" if excluded else colour,
                            line=dict(color=colour, width=2),
                            symbol="star" if on_front else "circle")), row=1, col=col)
    for col, (cost, label) in enumerate(costs, start=1):
        values = frame[cost].to_numpy(float)
        kind = axis_type(values)
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
    fig.update_layout(legend=dict(orientation="h", y=-0.22, x=0, font=dict(size=10)),
                      title=_layout_title(_title(f"ROUGE-1 against cost, {instruction} summaries "
                                                 "(stars: Pareto front; hollow: not eligible)",
                                                 frame)))
    return fig


def chunking_figure(table: pd.DataFrame) -> go.Figure:
    """Truncation vs map-reduce chunking on the longest meetings (degenerate mark in the title)."""
    fig = go.Figure()
    for i, metric in enumerate(("rouge1", "rouge2", "rougeL")):
        fig.add_trace(go.Bar(x=table["strategy"], y=table[metric], name=metric,
                             marker_color=PALETTE[i],
                             error_y=dict(type="data", symmetric=False,
                                          array=table[f"{metric}_high"] - table[metric],
                                          arrayminus=table[metric] - table[f"{metric}_low"])))
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
    kind = axis_type(everything)
    fig = go.Figure()
    if len(tokens):
        n = max(1, min(bins, len(tokens)))
        if tokens.min() == tokens.max():
            edges = np.array([tokens.min() * 0.95, tokens.max() * 1.05])
        elif kind == "log":
            edges = np.geomspace(tokens.min(), tokens.max(), n + 1)
        else:
            edges = np.linspace(tokens.min(), tokens.max(), n + 1)
        counts, edges = np.histogram(tokens, bins=edges)
        fig.add_trace(go.Bar(x=(edges[:-1] + edges[1:]) / 2, y=counts, width=np.diff(edges),
                             marker=dict(color=PALETTE[0], line=dict(width=0.5, color="white")),
                             name="prompts", customdata=np.stack([edges[:-1], edges[1:]], axis=1),
                             hovertemplate="%{customdata[0]:.0f}-%{customdata[1]:.0f} tokens: "
                                           "%{y} items<extra></extra>"))
        top = float(counts.max())
    else:
        top = 1.0
    for i, (model, context) in enumerate(contexts.items()):
        fig.add_trace(go.Scatter(x=[context, context], y=[0, top * 1.05], mode="lines",
                                 line=dict(color=PALETTE[(i + 1) % len(PALETTE)], dash="dash",
                                           width=2), name=f"{model}: {context:,} tokens"))
    fig.update_xaxes(type=kind, title="prompt tokens (transcript + instruction)",
                     rangemode="normal" if kind == "log" else "tozero")
    if len(everything) and kind == "log":
        lo, hi = np.log10(everything.min()), np.log10(everything.max())
        fig.update_xaxes(range=[lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)])
    fig.update_yaxes(title="items", rangemode="tozero")
    fig.update_layout(title=_layout_title("Transcript prompts against model contexts"), bargap=0,
                      legend=dict(orientation="h", y=-0.2, x=0))
    return fig
