"""Figures of study 2: AnLLM's Figure 1 (cache size + speed-ups) and decoding time per context.

Speed-ups are drawn with their bootstrap intervals (error bars from the ``_lo`` / ``_hi``
columns of :func:`labkit.anchor.latency.speedup_table`) next to a dashed 1x line, so a reader
sees at once whether an anchor cache is faster at all, and the speed-up axis uses round ticks.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from labkit.figures import PALETTE, axis_type_for

__all__ = ["figure1", "latency_figure", "memory_throughput_figure", "nice_ticks"]

METHOD_NAMES = {"no_cache": "no cache (recompute)", "full_cache": "full KV cache", "anchor_cache": "anchor KV cache"}


def nice_ticks(top: float, max_ticks: int = 6) -> tuple[float, float]:
    """``(step, upper)``: a 1/2/2.5/5 x 10^k tick step and the axis end (a multiple of it) that
    covers ``[0, top]`` in at most ``max_ticks`` intervals (integers once ``top`` >= 3)."""
    top = float(top) if top and math.isfinite(top) and top > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(top / max_ticks))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if top >= 3 and step < 1:
            continue
        if math.ceil(top / step - 1e-9) <= max_ticks:
            break
    return step, step * math.ceil(top / step - 1e-9)


def _error(speedups: pd.DataFrame, column: str) -> dict | None:
    """Plotly ``error_y`` from ``<column>_lo`` / ``_hi`` (None when the table has no interval)."""
    lo, hi = f"{column}_lo", f"{column}_hi"
    if lo not in speedups or hi not in speedups:
        return None
    mid = speedups[column].to_numpy(dtype=float)
    return dict(
        type="data",
        symmetric=False,
        thickness=1.5,
        width=5,
        array=np.nan_to_num(speedups[hi].to_numpy(dtype=float) - mid),
        arrayminus=np.nan_to_num(mid - speedups[lo].to_numpy(dtype=float)),
    )


def _context_axis(contexts) -> tuple[dict, str]:
    """x-axis settings for context lengths: log (ticks at the contexts) only when they span at
    least a decade (a log axis over less distorts the gaps; figcheck refuses it)."""
    values = sorted(float(c) for c in contexts)
    if values and values[0] > 0 and values[-1] / values[0] >= 10:
        return dict(type="log", tickvals=values), ", log scale"
    return dict(type="linear"), ""


def figure1(speedups: pd.DataFrame, title: str = "Anchor cache: KV size, cache length and speed-up"):
    """Like AnLLM's Figure 1: bars of KV-cache size and cached tokens (full vs anchor) per
    context length, with the median speed-ups (95 % bootstrap intervals) on a second axis."""
    from plotly.subplots import make_subplots

    x = [str(c) for c in speedups.context]
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"secondary_y": True}, {}]],
        horizontal_spacing=0.24,
        subplot_titles=("KV-cache size and speed-up", "cached tokens per prompt"),
    )
    for cache, color in (("full", PALETTE[1]), ("anchor", PALETTE[0])):
        # left: KV bytes (one legend entry per cache); right: cached tokens, same colour
        fig.add_bar(
            x=x,
            y=speedups[f"kv_bytes_{cache}"] / 2**20,
            name=f"{cache} cache",
            marker_color=color,
            legendgroup=cache,
            row=1,
            col=1,
        )
        fig.add_bar(
            x=x,
            y=speedups[f"tokens_{cache}"],
            name=f"{cache} cache: tokens",
            marker_color=color,
            legendgroup=cache,
            showlegend=False,
            row=1,
            col=2,
        )
    # (column, legend name, line, marker): the anchor cache's two ratios always, the decode
    # ratio and the full cache's own factor over recompute where the run measured them
    series = [
        ("speedup_vs_no_cache", "speed-up vs no cache", dict(color=PALETTE[3]), None),
        ("speedup_vs_full_cache", "speed-up vs full cache", dict(color=PALETTE[2], dash="dot"), None),
        ("decode_speedup_vs_full_cache", "decode speed-up vs full cache", dict(color=PALETTE[4], dash="dashdot"), None),
        ("full_speedup_vs_no_cache", "full cache vs no cache", dict(color="#999", dash="dot"), dict(symbol="x")),
    ]
    for column, name, line, marker in series:
        if column in speedups:
            fig.add_scatter(
                x=x,
                y=speedups[column],
                name=name,
                mode="lines+markers",
                line=line,
                marker=marker,
                error_y=_error(speedups, column),
                secondary_y=True,
                row=1,
                col=1,
            )
    fig.add_hline(y=1, line_dash="dash", line_color="#555", line_width=1, secondary_y=True, row=1, col=1)
    fig.add_annotation(
        x=1,
        xref="x domain",
        y=1,
        text="1x (no speed-up)",
        showarrow=False,
        xanchor="right",
        yanchor="bottom",
        font=dict(size=11, color="#555"),
        secondary_y=True,
        row=1,
        col=1,
    )
    columns = [c for c in speedups.columns if "speedup" in c and not c.endswith("_lo") and not c.startswith("prefill")]
    top = np.nanmax(speedups[columns].to_numpy(dtype=float)) if columns else 1.0
    step, upper = nice_ticks(max(1.0, float(top)) * 1.05)
    fig.update_yaxes(
        title_text="speed-up (x, median, 95% CI)",
        secondary_y=True,
        row=1,
        col=1,
        range=[0, upper],
        tickmode="linear",
        tick0=0,
        dtick=step,
        showgrid=False,
    )
    for col in (1, 2):
        fig.update_xaxes(title_text="context (tokens)", type="category", row=1, col=col)
    # log when the bars span decades (the anchor cache at 8k tokens is a sliver of the full one)
    mib = axis_type_for(np.concatenate([speedups.kv_bytes_full, speedups.kv_bytes_anchor]) / 2**20)
    tokens = axis_type_for(np.concatenate([speedups.tokens_full, speedups.tokens_anchor]))
    fig.update_yaxes(
        title_text="KV cache (MiB" + (", log scale)" if mib == "log" else ")"),
        type=mib,
        secondary_y=False,
        row=1,
        col=1,
    )
    fig.update_yaxes(title_text="tokens" + (" (log scale)" if tokens == "log" else ""), type=tokens, row=1, col=2)
    fig.update_layout(title=title, barmode="group", legend=dict(orientation="h", y=-0.2))
    return fig


def latency_figure(latency: pd.DataFrame, title: str = "Decoding time vs context length"):
    """Median milliseconds per generated token of the three methods against context length,
    with the spread over repeats (min to max) as error bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    shown = []
    for i, (method, label) in enumerate(METHOD_NAMES.items()):
        part = latency[latency.method == method].groupby("context").ms_per_token
        stats = part.agg(["median", "min", "max"]).sort_index()
        shown.append(stats.to_numpy().ravel())
        fig.add_scatter(
            x=stats.index,
            y=stats["median"],
            name=label,
            mode="lines+markers",
            line=dict(color=PALETTE[[3, 1, 0][i]]),
            error_y=dict(
                type="data",
                symmetric=False,
                array=stats["max"] - stats["median"],
                arrayminus=stats["median"] - stats["min"],
            ),
        )
    # log only when the methods differ by decades (recompute at long contexts); a log axis
    # over a fraction of a decade (a tiny model, short contexts) only distorts the gaps
    kind = axis_type_for(np.concatenate(shown)) if shown else "linear"
    axis, suffix = _context_axis(latency.context.unique())
    fig.update_xaxes(**axis)
    fig.update_layout(
        title=title,
        xaxis_title=f"context (prompt tokens{suffix})",
        yaxis_title="ms per generated token (prefill included, median)" + (", log scale" if kind == "log" else ""),
        yaxis_type=kind,
        yaxis_rangemode="normal" if kind == "log" else "tozero",
    )
    return fig


def memory_throughput_figure(latency: pd.DataFrame, title: str = "Peak memory and throughput vs context length"):
    """The anchor cache's point is memory: peak memory of one generation above the weights
    (MiB) and generated tokens per second (median over repeats) per method and context."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1, cols=2, horizontal_spacing=0.14, subplot_titles=("peak memory of a generation", "decode throughput")
    )
    mib, tps = [], []
    for i, (method, label) in enumerate(METHOD_NAMES.items()):
        part = latency[latency.method == method].groupby("context")
        peak = part.peak_bytes.first().sort_index() / 2**20
        speed = (
            (part.decode_tokens_per_s if "decode_tokens_per_s" in latency else part.tokens_per_s).median().sort_index()
        )
        mib.append(peak.to_numpy())
        tps.append(speed.to_numpy())
        color = PALETTE[[3, 1, 0][i]]
        fig.add_scatter(
            x=peak.index,
            y=peak,
            name=label,
            mode="lines+markers",
            legendgroup=method,
            line=dict(color=color),
            row=1,
            col=1,
        )
        fig.add_scatter(
            x=speed.index,
            y=speed,
            name=label,
            mode="lines+markers",
            legendgroup=method,
            showlegend=False,
            line=dict(color=color),
            row=1,
            col=2,
        )
    rate = "decode tokens / s" if "decode_tokens_per_s" in latency else "generated tokens / s"
    for col, values, name in ((1, mib, "MiB above the weights"), (2, tps, rate)):
        kind = axis_type_for(np.concatenate(values)) if values else "linear"
        fig.update_yaxes(
            title_text=name + (", log scale" if kind == "log" else ""),
            type=kind,
            rangemode="normal" if kind == "log" else "tozero",
            row=1,
            col=col,
        )
        axis, suffix = _context_axis(latency.context.unique())
        fig.update_xaxes(title_text=f"context (prompt tokens{suffix})", row=1, col=col, **axis)
    fig.update_layout(title=title, legend=dict(orientation="h", y=-0.25))
    return fig


def figure1_caption(speed: pd.DataFrame, no_cache_up_to: int, past_note: str = "", measured_on: str = "") -> str:
    """The caption of :func:`figure1`: repeats, the speed-up over recompute at the longest context
    that has it (anchor and full cache), and KV size and speed-ups against the full cache at the
    longest context, each with its 95% interval."""
    longest = speed.iloc[-1]
    nc = speed[speed.speedup_vs_no_cache.notna()].iloc[-1]

    def iv(row, name: str) -> str:
        return f"{row[name]:.2f}x [{row[name + '_lo']:.2f}, {row[name + '_hi']:.2f}]"

    return (
        "Like AnLLM Fig. 1: KV-cache size and cached tokens, full vs anchor, with speed-ups: medians over "
        f"{int(longest.repeats)}-{int(speed.repeats.max())} interleaved repeats with 95% bootstrap intervals "
        f"(error bars); the dashed line is 1x (no speed-up); recompute runs up to {no_cache_up_to} tokens. "
        f"At {int(nc.context)} tokens the anchor cache is {iv(nc, 'speedup_vs_no_cache')} faster than recompute, "
        f"the full cache {iv(nc, 'full_speedup_vs_no_cache')}. At {int(longest.context)} tokens the anchor cache "
        f"is {longest.kv_reduction:.1%} smaller, {iv(longest, 'speedup_vs_full_cache')} faster in total and "
        f"{iv(longest, 'decode_speedup_vs_full_cache')} in decoding than the full cache.{past_note} {measured_on}"
    )
