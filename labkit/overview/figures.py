"""What each dataset holds: counts, lengths, label balance, transcript length vs context.

The computations behind ``notebooks/data_overview.ipynb``; each returns a pandas frame so the
notebook only plots and saves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd

from labkit.data.parsers import Meeting
from labkit.figcheck import MIN_LOG_DECADES
from labkit.figures import PALETTE, axis_type_for
from labkit.histograms import bin_edges, histogram_bar, log_range
from labkit.text import word_count


def mqp_by_doctor(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs per doctor and label (doctor-wise splits must keep this balance in mind)."""
    table = pairs.groupby(["dr_id", "label"]).size().unstack(fill_value=0)
    table.columns = [f"label_{c}" for c in table.columns]
    table["pairs"] = table.sum(axis=1)
    table["unique_question_1"] = pairs.groupby("dr_id")["question_1"].nunique()
    return table.reset_index()


def mqp_lengths(pairs: pd.DataFrame) -> pd.DataFrame:
    """Long form: one row per question with its word count, label and side."""
    rows = []
    for side in ("question_1", "question_2"):
        rows.append(
            pd.DataFrame(
                {
                    "side": side,
                    "label": pairs["label"].map({0: "different", 1: "similar"}),
                    "words": pairs[side].map(word_count),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def text_summary(text: str) -> dict[str, float]:
    lines = [line for line in text.splitlines() if line.strip()]
    return {
        "characters": len(text),
        "words": word_count(text),
        "non_empty_lines": len(lines),
        "unique_words": len(set(text.split())),
    }


def qmsum_lengths(
    splits: dict[str, list[Meeting]], count_tokens: Callable[[str], int], max_meetings: int = 0
) -> pd.DataFrame:
    """One row per meeting: split, domain, turns, words, tokens, queries."""
    rows = []
    for split, meetings in splits.items():
        for meeting in meetings[: max_meetings or None]:
            text = meeting.transcript
            rows.append(
                {
                    "meeting": meeting.meeting_id,
                    "split": split,
                    "domain": meeting.domain,
                    "turns": len(meeting.turns),
                    "words": word_count(text),
                    "tokens": count_tokens(text),
                    "general_queries": len(meeting.general_queries),
                    "specific_queries": len(meeting.specific_queries),
                    "summary_words": sum(word_count(q.answer) for q in meeting.general_queries),
                }
            )
    return pd.DataFrame(rows)


def context_coverage(lengths: pd.DataFrame, contexts: Sequence[int]) -> pd.DataFrame:
    """For each context size: share of meetings that fit, and the median overflow factor."""
    rows = []
    for context in contexts:
        fits = lengths["tokens"] <= context
        rows.append(
            {
                "context_tokens": context,
                "meetings": len(lengths),
                "fit_share": float(fits.mean()),
                "median_length_over_context": float((lengths["tokens"] / context).median()),
            }
        )
    return pd.DataFrame(rows)


def qmsum_lengths_figure(meetings: pd.DataFrame, contexts: Sequence[int], tokenizer: str, bins: int = 30):
    """Transcript tokens per meeting (one histogram per split) against the context sizes.

    Why not ``px.histogram`` with ``add_vline`` labels: the context labels (512, 2,048) printed
    over each other, and a plotly histogram on a log axis bins in log units with a linear bin
    size (the bug that once stretched an axis to 10^277). Here bins are computed with numpy
    (log-spaced when the axis is log), contexts are dashed line traces named in the legend, and
    the axis type comes from the data and the contexts (:func:`labkit.figures.axis_type_for`,
    log from one decade: transcripts are several times the contexts).
    """
    import numpy as np
    import plotly.graph_objects as go

    tokens = meetings["tokens"].to_numpy(float)
    tokens = tokens[np.isfinite(tokens) & (tokens > 0)]
    everything = np.concatenate([tokens, np.asarray(list(contexts), float)])
    kind = axis_type_for(everything, log_above=MIN_LOG_DECADES)
    fig = go.Figure()
    top = 1.0
    if len(tokens):
        edges = bin_edges(tokens, kind, bins)
        for i, (split, part) in enumerate(meetings.groupby("split", sort=False)):
            marker = dict(color=PALETTE[i % len(PALETTE)], line=dict(width=0.5, color="white"))
            values = part["tokens"].to_numpy(float)
            bar, tallest = histogram_bar(
                values, edges, "meetings", name=f"{split} meetings", opacity=0.75, marker=marker
            )
            fig.add_trace(bar)
            top = max(top, tallest)
    colours = [PALETTE[3], PALETTE[4], PALETTE[2], PALETTE[7]]  # no pale yellow line
    for i, context in enumerate(contexts):
        fig.add_trace(
            go.Scatter(
                x=[context, context],
                y=[0, top * 1.05],
                mode="lines",
                line=dict(color=colours[i % len(colours)], dash="dot", width=2),
                name=f"context {context:,} tokens",
            )
        )
    fig.update_xaxes(
        type=kind,
        dtick="D2" if kind == "log" else None,
        title=f"tokens ({tokenizer} tokenizer)" + (", log scale" if kind == "log" else ""),
    )
    if len(everything) and kind == "log":
        fig.update_xaxes(range=log_range(everything))
    elif len(everything):
        fig.update_xaxes(range=[0, everything.max() * 1.05])
    fig.update_yaxes(title="meetings", rangemode="tozero")
    fig.update_layout(
        title="QMSum transcript length in tokens vs model context",
        barmode="overlay",
        bargap=0,
        legend=dict(orientation="h", y=-0.2, yanchor="top", x=0),
    )
    return fig
