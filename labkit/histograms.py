"""Histograms drawn as plotly bars, binned with numpy (log-spaced bins on a log axis).

Why not ``go.Histogram`` / ``px.histogram``: on a log axis plotly bins in log units with a
linear bin size, which once stretched an axis to 10^277. Here the bin edges come from the data
(:func:`bin_edges`), each bar covers exactly its bin (:func:`histogram_bar`), and a log axis's
range is set from the data and any marked values (:func:`log_range`).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def bin_edges(values: np.ndarray, kind: str, bins: int) -> np.ndarray:
    """``bins`` edges (fewer for few values, at least one bin) over the finite positive
    ``values``: log-spaced when ``kind == "log"``, linear otherwise; one value gets a bin of
    +-5% around it.

    >>> bin_edges(np.array([10.0, 1000.0]), "log", 2).round(1).tolist()
    [10.0, 100.0, 1000.0]
    >>> bin_edges(np.array([4.0, 4.0]), "linear", 10).round(2).tolist()
    [3.8, 4.2]
    """
    lo, hi = float(values.min()), float(values.max())
    if lo == hi:
        return np.array([lo * 0.95, hi * 1.05])
    n = max(1, min(bins, len(values))) + 1
    return np.geomspace(lo, hi, n) if kind == "log" else np.linspace(lo, hi, n)


def histogram_bar(values: np.ndarray, edges: np.ndarray, unit: str, **bar) -> tuple[go.Bar, float]:
    """A bar trace of ``values`` counted in ``edges`` (hover: ``lo-hi tokens: n <unit>``) and its
    tallest count; ``bar`` goes to :class:`plotly.graph_objects.Bar` (name, marker, opacity)."""
    counts, _ = np.histogram(values, bins=edges)
    trace = go.Bar(
        x=(edges[:-1] + edges[1:]) / 2,
        y=counts,
        width=np.diff(edges),
        customdata=np.stack([edges[:-1], edges[1:]], axis=1),
        hovertemplate="%{customdata[0]:.0f}-%{customdata[1]:.0f} tokens: %{y} " + unit + "<extra></extra>",
        **bar,
    )
    return trace, float(counts.max()) if len(counts) else 0.0


def log_range(values: np.ndarray) -> list[float]:
    """A log axis's range (in log10 units) over ``values`` with 5% room on each side.

    >>> log_range(np.array([10.0, 1000.0]))
    [0.9, 3.1]
    """
    lo, hi = np.log10(values.min()), np.log10(values.max())
    return [float(lo - 0.05 * (hi - lo)), float(hi + 0.05 * (hi - lo))]
