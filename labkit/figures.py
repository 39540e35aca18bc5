"""Plotly house style and writers for figures (PNG + HTML) and tables (CSV + Markdown).

Every figure is written twice: a standalone HTML (one ``plotly.min.js`` at the root of the
figures folder serves every study's HTML, so it works offline and costs 4.6 MB once) and a PNG rendered by kaleido through a system Chromium (Debian's
``chromium``; ``BROWSER_PATH`` points kaleido at it). One kaleido browser serves the whole
process. Without a browser, PNGs are skipped with one warning and the HTML is still written.
Every write is atomic, and each output is noted in the current run record with its caption.
Before a figure is written, :mod:`labkit.figcheck` checks that it reads right (axis ranges hold
the data, log axes where data span decades, no legend over a colourbar, no clipped labels);
problems go to the run record's warnings, or raise with ``LABKIT_STRICT_FIGURES=1`` (tests).
"""
from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from labkit import io, records
from labkit.errors import LabkitError
from labkit.figcheck import check_figure, readable
from labkit.paths import figures_dir, study_dir

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

pio.templates["labkit"] = go.layout.Template(
    layout=go.Layout(
        font=dict(family="DejaVu Sans, Arial, sans-serif", size=13, color="#222"),
        title=dict(font=dict(size=16), x=0.01, xanchor="left"),
        colorway=PALETTE,
        paper_bgcolor="white", plot_bgcolor="white",
        xaxis=dict(showgrid=True, gridcolor="#e5e5e5", zeroline=False, linecolor="#444",
                   ticks="outside", showline=True, mirror=False),
        yaxis=dict(showgrid=True, gridcolor="#e5e5e5", zeroline=False, linecolor="#444",
                   ticks="outside", showline=True, mirror=False),
        legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
        margin=dict(l=70, r=30, t=70, b=60),
    ))
pio.templates.default = "plotly_white+labkit"

_PNG_STATE = {"checked": False, "ok": False}


def browser_path() -> str | None:
    """The Chromium kaleido will drive: ``$BROWSER_PATH`` or a chromium on PATH."""
    for candidate in (os.environ.get("BROWSER_PATH"), shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def _png_server() -> bool:
    """Start one kaleido browser for this process (mathjax off: no CDN offline)."""
    if not _PNG_STATE["checked"]:
        _PNG_STATE["checked"] = True
        path = browser_path()
        if path is None:
            warnings.warn("no Chromium found (install Debian's `chromium` or set BROWSER_PATH): "
                          "figures are written as HTML only, without PNG", stacklevel=3)
            return False
        os.environ["BROWSER_PATH"] = path
        import kaleido
        kaleido.start_sync_server(mathjax=False, n=1, timeout=120, silence_warnings=True)
        _PNG_STATE["ok"] = True
    return _PNG_STATE["ok"]


def render_png(fig: go.Figure, width: int = 900, height: int = 520, scale: float = 2.0) -> bytes | None:
    """PNG bytes of ``fig``, or None when no browser is available."""
    if not _png_server():
        return None
    import kaleido
    return kaleido.calc_fig_sync(fig, opts={"format": "png", "width": width, "height": height,
                                            "scale": scale})


def _in_batch() -> bool:
    return os.environ.get("LABKIT_BATCH") == "1"


def _display(fig: go.Figure, png: bytes | None) -> None:
    """Show a figure in a kernel: the static PNG in batch runs, the live figure otherwise."""
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # pragma: no cover
        return
    if get_ipython() is None:
        return
    if _in_batch() or os.environ.get("LABKIT_STATIC_FIGURES") == "1":
        if png is not None:
            display(Image(data=png))
    else:
        fig.show()


TRACE_COLUMNS = ("x", "y", "z", "text")


def figure_data(fig: go.Figure) -> pd.DataFrame:
    """The numbers behind a figure, one row per plotted point: ``trace, x, y[, z, text]``.

    Written beside every figure so a reader can re-plot or check it without the HTML. Only
    one-dimensional arrays are taken (a heatmap's ``z`` matrix is flattened against its axes);
    traces without point data (shapes, annotations) are left out.
    """
    import numpy as np

    frames = []
    for number, trace in enumerate(fig.data):
        values = trace.to_plotly_json()
        columns = {}
        z = values.get("z")
        if z is not None and np.ndim(z) == 2:
            z = np.asarray(z)
            xs = values.get("x") if values.get("x") is not None else range(z.shape[1])
            ys = values.get("y") if values.get("y") is not None else range(z.shape[0])
            grid_x, grid_y = np.meshgrid(list(xs), list(ys))
            columns = {"x": grid_x.ravel(), "y": grid_y.ravel(), "z": z.ravel()}
        else:
            for key in TRACE_COLUMNS:
                value = values.get(key)
                if value is not None and not isinstance(value, (str, bytes)) and np.ndim(value) == 1:
                    columns[key] = list(value)
            lengths = {len(v) for v in columns.values()}
            if len(lengths) != 1:  # mismatched or empty: keep the longest coordinate only
                longest = max(columns, key=lambda k: len(columns[k]), default=None)
                columns = {longest: columns[longest]} if longest else {}
        if columns:
            frame = pd.DataFrame(columns)
            frame.insert(0, "trace", values.get("name") or f"trace {number}")
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trace"])


PLOTLY_JS = "plotly.min.js"


def shared_plotlyjs() -> str:
    """Write ``plotly.min.js`` once at the figures root; return the src an HTML in a study
    folder uses to load it."""
    from plotly.offline import get_plotlyjs

    target = figures_dir() / PLOTLY_JS
    script = get_plotlyjs()
    if not target.is_file() or target.stat().st_size != len(script.encode("utf-8")):
        io.write_text(target, script)
    return f"../{PLOTLY_JS}"


def _check(fig: go.Figure, study: str, name: str, skip) -> list[str]:
    """Run the figure check (needs the kaleido browser); warn in the record or raise."""
    if not _png_server():
        return []
    problems = check_figure(fig, skip=skip)
    if problems:
        message = f"figure {study}/{name} does not read right: " + "; ".join(problems)
        if os.environ.get("LABKIT_STRICT_FIGURES") == "1":
            raise LabkitError(message)
        record = records.current(study)
        if record is not None:
            record.warn(message)
        else:
            warnings.warn(message, stacklevel=3)
    return problems


def save_figure(fig: go.Figure, study: str, name: str, caption: str, *, width: int = 900,
                height: int = 520, show: bool = True, check_skip: tuple[str, ...] = ()
                ) -> dict[str, Path]:
    """Write ``figures/<study>/<name>.{html,png}`` plus the plotted numbers as
    ``<name>.data.csv``, and note them (with caption) in the record.

    The figure is first made readable (:func:`labkit.figcheck.readable`) and checked
    (:func:`labkit.figcheck.check_figure`); ``check_skip`` names rules to leave out, for a
    figure whose caption says why.
    """
    folder = study_dir(study)
    fig.update_layout(width=None, height=None)
    readable(fig)
    _check(fig, study, name, check_skip)
    paths = {"html": folder / f"{name}.html"}
    with io.atomic_path(paths["html"]) as tmp:
        fig.write_html(tmp, include_plotlyjs=shared_plotlyjs(), full_html=True,
                       config={"displaylogo": False, "responsive": True})
    try:
        points = figure_data(fig)
    except (TypeError, ValueError):  # exotic trace types: the figure still counts
        points = None
    if points is not None and len(points):
        paths["data"] = io.write_text(folder / f"{name}.data.csv", points.to_csv(index=False))
    png = render_png(fig, width=width, height=height)
    if png is not None:
        paths["png"] = io.write_bytes(folder / f"{name}.png", png)
    records.note_output("figure", study, name, caption, paths)
    if show:
        _display(fig, png)
    return paths


def save_table(frame: pd.DataFrame, study: str, name: str, caption: str, *,
               float_format: str = ".4g", index: bool = False) -> dict[str, Path]:
    """Write ``figures/<study>/<name>.{csv,md}`` (Markdown headed by the caption)."""
    folder = study_dir(study)
    paths = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md"}
    io.write_text(paths["csv"], frame.to_csv(index=index))
    # pandas hands tabulate rows, so an integer column in a frame that also has floats arrives
    # as floats: give integer columns their own format or 32768 would print as 3.277e+04.
    formats = [".0f" if pd.api.types.is_integer_dtype(frame[c]) else float_format
               for c in frame.columns]
    if index:
        formats.insert(0, ".0f" if pd.api.types.is_integer_dtype(frame.index) else float_format)
    markdown = frame.to_markdown(index=index, floatfmt=formats)
    io.write_text(paths["md"], f"**{caption}**\n\n{markdown}\n")
    records.note_output("table", study, name, caption, paths)
    return paths

