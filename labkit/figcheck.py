"""Checks that a figure reads right before it is written: the guard behind every saved figure.

A figure can be wrong without any error: an axis whose range misses the data (a log axis given
linear bounds ran to 10^270 once), a linear axis that squashes three decades into one corner, a
legend printed over a colourbar, labels clipped at the plot's edge. :func:`check_figure` looks
at the figure *as plotly lays it out* (``full_figure_for_development``, through the same kaleido
browser that renders PNGs, about 0.2 s a figure) and returns one readable problem per finding.

Rules (each unit-tested in ``tests/test_figcheck.py``):

* **containment**: every plotted number on a numeric axis (points, error bars, bar bases) lies
  inside the axis range, and the range is at most :data:`MAX_PADDING` times wider than the data;
* **log or linear**: positive data spanning more than :data:`LOG_DECADES` decades goes on a log
  axis; a log axis over less than :data:`MIN_LOG_DECADES` decade is a problem (between the two,
  either is acceptable: a scaling-law plot over 1.5 decades may stay log-log);
* **legend vs colourbar**: a vertical legend and a colourbar may not share the right margin;
* **text labels**: point labels must not be clipped at the plot area (``cliponaxis=False``),
  which :func:`readable` sets, together with ``automargin`` on every axis and the title;
* **title**: a title pinned to the canvas top without padding is cut there; :func:`readable`
  anchors it to the plot area so automargin makes room for it.

Axes whose type is ``category``/``date``/``multicategory`` are not range-checked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go

LOG_DECADES = 2.0
MIN_LOG_DECADES = 1.0
MAX_PADDING = 5.0
TITLE_GAP = 24  # px between a paper-anchored title and the plot area (room for top labels)
_TOL = 1e-9
_NUMERIC_AXES = ("linear", "log", "-", None)


def readable(fig: go.Figure) -> go.Figure:
    """Apply the layout settings that keep titles and labels inside the canvas (in place).

    ``automargin`` lets plotly grow the margins for long tick labels and axis titles; point
    labels are drawn past the plot area instead of being cut at its edge.
    """
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    title = fig.layout.title
    if title and title.text:
        fig.update_layout(title_automargin=True)
        if title.yref != "paper":
            # A container-anchored title with automargin sits at y=1, yanchor "top", pad 0: its
            # first line is cut by the canvas edge. Anchored to the plot area's top instead,
            # automargin grows the top margin to fit it (however many lines it has).
            fig.update_layout(
                title=dict(
                    yref="paper",
                    y=1,
                    yanchor="bottom",
                    pad=dict(b=TITLE_GAP + _top_annotation_height(fig)),
                    xref="paper",
                    x=0,
                    xanchor="left",
                )
            )
    for trace in fig.data:
        mode = getattr(trace, "mode", None)
        if mode and "text" in mode and hasattr(trace, "cliponaxis"):
            trace.cliponaxis = False
    return fig


def _top_annotation_height(fig: go.Figure) -> int:
    """Pixels taken above the plot area by annotations sitting on its top edge (subplot
    titles of ``make_subplots``), which a paper-anchored title must clear."""
    lines = 0
    for note in fig.layout.annotations or ():
        if note.yref == "paper" and note.y is not None and note.y >= 0.99 and note.yanchor == "bottom" and note.text:
            lines = max(lines, note.text.count("<br>") + 1)
    return 22 * lines


def _finite(values: Any) -> np.ndarray:
    if values is None or isinstance(values, (str, bytes)):
        return np.empty(0)
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):  # categorical values: not a numeric axis
        return np.empty(0)
    return arr[np.isfinite(arr)]


def _error_extent(values: np.ndarray, error: Any) -> list[np.ndarray]:
    """Ends of visible error bars (``array`` / ``arrayminus`` kinds) around ``values``."""
    if error is None or error.visible is False or error.type not in ("data", None) or error.array is None:
        return []
    out = []
    plus = _finite(error.array)
    minus = _finite(error.arrayminus) if error.arrayminus is not None else plus
    if len(plus) == len(values):
        out.append(values + plus)
    if len(minus) == len(values):
        out.append(values - minus)
    return out


def _axis_data(fig: go.Figure) -> dict[str, dict[str, Any]]:
    """Per axis (``xaxis``, ``yaxis2`` ...): the plotted ``values``, the error-bar ``ends``,
    and whether bars are drawn from a zero ``base`` on it."""
    data: dict[str, dict[str, Any]] = {}
    for trace in fig.data:
        if getattr(trace, "visible", True) in (False, "legendonly"):
            continue
        kind = trace.type
        if kind not in ("scatter", "scattergl", "bar", "box", "histogram", "heatmap", "contour"):
            continue
        axes = {"x": "xaxis" + (trace.xaxis or "x")[1:], "y": "yaxis" + (trace.yaxis or "y")[1:]}
        value_letter = "x" if getattr(trace, "orientation", None) == "h" else "y"
        for letter, axis in axes.items():
            if kind == "histogram" and letter == value_letter:
                continue  # the counts axis is plotly's own
            entry = data.setdefault(axis, {"values": [], "ends": [], "base": False})
            values = _finite(getattr(trace, letter, None))
            entry["values"].append(values)
            if kind in ("scatter", "scattergl", "bar"):
                entry["ends"].extend(_error_extent(values, getattr(trace, f"error_{letter}", None)))
            if kind == "bar" and letter == value_letter and len(values):
                entry["base"] = True
    return data


def _decades(values: np.ndarray) -> float:
    positive = values[values > 0]
    if len(positive) < 2 or positive.min() <= 0:
        return 0.0
    return math.log10(positive.max() / positive.min())


def check_axes(fig: go.Figure, full: go.Figure) -> list[str]:
    """Containment, padding and log-vs-linear problems of every numeric axis."""
    problems = []
    for axis, entry in sorted(_axis_data(fig).items()):
        values = np.concatenate(entry["values"] or [np.empty(0)])
        ends = np.concatenate(entry["ends"] or [np.empty(0)])
        layout = full.layout[axis] if axis in full.layout else None
        if layout is None or len(values) == 0 or layout.type not in _NUMERIC_AXES:
            continue
        title = (layout.title.text if layout.title else None) or axis
        low, high = (float(v) for v in layout.range)
        if layout.type == "log":
            if (values <= 0).any():
                problems.append(f"{title}: log axis with {int((values <= 0).sum())} value(s) <= 0")
            values = np.log10(values[values > 0])
            if len(values) and values.max() - values.min() < MIN_LOG_DECADES - _TOL and len(values) > 1:
                problems.append(
                    f"{title}: log axis over {values.max() - values.min():.2f} "
                    f"decade(s); use a linear axis below {MIN_LOG_DECADES:g}"
                )
        elif _decades(values) > LOG_DECADES and (values > 0).all():
            problems.append(
                f"{title}: data span {_decades(values):.1f} decades on a linear axis "
                f"(use a log axis above {LOG_DECADES:g})"
            )
        if not len(values):
            continue
        if layout.type != "log":
            values = np.concatenate([values, ends, [0.0] if entry["base"] else []])
        else:
            values = np.concatenate([values, np.log10(ends[ends > 0])])
        low, high = min(low, high), max(low, high)
        span = max(high - low, _TOL)
        if values.min() < low - _TOL * span or values.max() > high + _TOL * span:
            problems.append(
                f"{title}: axis range [{low:.4g}, {high:.4g}] does not contain the "
                f"data [{values.min():.4g}, {values.max():.4g}]" + (" (log10 units)" if layout.type == "log" else "")
            )
        data_span = values.max() - values.min()
        zero_anchored = low <= 0 <= high and span <= MAX_PADDING * max(abs(values).max(), _TOL)
        if data_span > 0 and span > MAX_PADDING * data_span and not zero_anchored:
            problems.append(f"{title}: axis range [{low:.4g}, {high:.4g}] is over {MAX_PADDING:g}x wider than the data")
    return problems


def _has_colorbar(fig: go.Figure) -> bool:
    for trace in fig.data:
        if trace.type in ("heatmap", "contour", "histogram2d", "histogram2dcontour"):
            if getattr(trace, "showscale", None) is not False:
                return True
        marker = getattr(trace, "marker", None)
        if marker is not None and getattr(marker, "showscale", None):
            return True
    return False


def _legend_shown(full: go.Figure) -> bool:
    """Plotly's own decision (``full`` resolves ``showlegend`` from the traces)."""
    return bool(full.layout.showlegend) and any(getattr(t, "showlegend", False) for t in full.data)


def check_legend(fig: go.Figure, full: go.Figure) -> list[str]:
    """A vertical legend in the right margin collides with a colourbar drawn there."""
    if not (_has_colorbar(fig) and _legend_shown(full)):
        return []
    legend = full.layout.legend
    vertical = (legend.orientation or "v") == "v"
    right = legend.x is None or legend.x >= 1.0
    if vertical and right:
        return [
            "the legend sits in the right margin over the colourbar: put it below the plot "
            "(legend orientation 'h', y < 0) or move the colourbar"
        ]
    return []


def check_labels(fig: go.Figure) -> list[str]:
    """Point labels clipped at the plot area."""
    return [
        f"trace {t.name or i!r}: text labels are clipped at the plot area (cliponaxis)"
        for i, t in enumerate(fig.data)
        if getattr(t, "mode", None) and "text" in t.mode and getattr(t, "cliponaxis", None) is not False
    ]


def check_title(fig: go.Figure, full: go.Figure) -> list[str]:
    """A title pinned to the canvas top with no padding is cut there (its ascenders and
    first line fall outside the PNG): it must be anchored to the plot area or padded."""
    if not (fig.layout.title and fig.layout.title.text):  # ``full`` holds a placeholder text
        return []
    title = full.layout.title
    if (
        title.automargin
        and title.yref == "container"
        and (title.y is None or title.y >= 1)
        and title.yanchor in ("top", "auto", None)
        and not (title.pad and title.pad.t)
    ):
        return [
            f"title {title.text[:40]!r} is cut at the top of the canvas: anchor it to the "
            "plot area (yref 'paper', y 1, yanchor 'bottom'), as readable() does"
        ]
    return []


def check_figure(fig: go.Figure, full: go.Figure | None = None, skip: Iterable[str] = ()) -> list[str]:
    """Every problem found in ``fig`` (empty list: it reads right).

    Args:
        fig: the figure as built.
        full: its full layout (``fig.full_figure_for_development()``); computed when None.
        skip: rule names to leave out (``"axes"``, ``"legend"``, ``"labels"``), for a figure
            that has a reason its caption states (also ``"title"``).
    """
    if full is None:
        full = fig.full_figure_for_development(warn=False)
    checks = {
        "axes": lambda: check_axes(fig, full),
        "legend": lambda: check_legend(fig, full),
        "labels": lambda: check_labels(fig),
        "title": lambda: check_title(fig, full),
    }
    return [p for name, check in checks.items() if name not in set(skip) for p in check()]
