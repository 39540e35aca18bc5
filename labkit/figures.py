"""Plotly house style and writers for figures (PNG + HTML) and tables (CSV + Markdown).

Every figure is written twice: a standalone HTML (one ``plotly.min.js`` at the root of the
figures folder serves every study's HTML, so it works offline and costs 4.6 MB once) and a PNG
rendered by kaleido through a system Chromium (Debian's ``chromium``; ``BROWSER_PATH`` points
kaleido at it). One kaleido browser serves the whole process. Without a browser, PNGs are
skipped with one warning and the HTML is still written. Every write is atomic, and each output
is noted in the current run record with its caption. Before a figure is written,
:mod:`labkit.figcheck` checks that it reads right (axis ranges hold the data, log axes where
data span decades, no legend over a colourbar, no clipped labels); problems go to the run
record's warnings, or raise with ``LABKIT_STRICT_FIGURES=1`` (tests)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from labkit import device as devices
from labkit import io, records
from labkit.errors import LabkitError
from labkit.figcheck import LOG_DECADES, MIN_LOG_DECADES, check_figure, readable
from labkit.paths import figures_dir, study_dir
from labkit.png import png_server, render_png

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: both axes of the house style: light grid, a dark axis line, ticks outside
_AXIS = dict(
    showgrid=True, gridcolor="#e5e5e5", zeroline=False, linecolor="#444", ticks="outside", showline=True, mirror=False
)

pio.templates["labkit"] = go.layout.Template(
    layout=go.Layout(
        font=dict(family="DejaVu Sans, Arial, sans-serif", size=13, color="#222"),
        title=dict(font=dict(size=16), x=0.01, xanchor="left"),
        colorway=PALETTE,
        paper_bgcolor="white",
        plot_bgcolor="white",
        xaxis=_AXIS,
        yaxis=_AXIS,
        legend=dict(bgcolor="rgba(255,255,255,0.8)", borderwidth=0),
        margin=dict(l=70, r=30, t=70, b=60),
    )
)
pio.templates.default = "plotly_white+labkit"


def decades(values) -> float:
    """log10(max / min) of the positive finite ``values`` (0 when fewer than two).

    >>> decades([0.37, 3.7, 37.0])
    2.0
    """
    import numpy as np

    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.log10(x.max() / x.min())) if len(x) > 1 else 0.0


def axis_type_for(values, log_above: float = LOG_DECADES) -> str:
    """``"log"`` or ``"linear"`` for an axis that shows ``values``, chosen from the data.

    Why: a linear axis hides the small values of data spanning decades (Siamese-head epochs
    next to a fine-tune), and a log axis over a fraction of a decade only distorts; the figure
    check (:mod:`labkit.figcheck`) rejects both. Log when every finite value is positive and
    they span more than ``log_above`` decades (default :data:`labkit.figcheck.LOG_DECADES`; a
    caller may lower it to :data:`~labkit.figcheck.MIN_LOG_DECADES`, e.g. for a scaling plot
    that reads better log-log over 1.5 decades), linear otherwise.

    >>> axis_type_for([0.02, 0.5, 11.0]), axis_type_for([2.9, 3.4, 5.1])
    ('log', 'linear')
    >>> axis_type_for([0, 1, 1000]), axis_type_for([300, 9000], log_above=1.0)
    ('linear', 'log')
    """
    import numpy as np

    if log_above < MIN_LOG_DECADES:
        raise LabkitError(
            f"axis_type_for: log_above={log_above} is below {MIN_LOG_DECADES}, "
            "where the figure check rejects a log axis"
        )
    x = np.asarray(values, dtype=float).ravel()
    x = x[np.isfinite(x)]
    return "log" if len(x) and (x > 0).all() and decades(x) > log_above else "linear"


def label_positions(x, y, near: tuple[float, float] = (0.06, 0.06)) -> list[str]:
    """A ``textposition`` per point so that the labels of nearby points do not print over
    each other or over their neighbours' markers.

    Why by hand: plotly places each text label on its own, with no collision avoidance.
    ``x`` and ``y`` are in the axis's own units (log10 on a log axis); two points are close
    within ``near`` (fractions of the x and y data spans; a label is about 15 px wide, so use
    a larger x fraction for a narrow panel). Going left to right, a point whose close
    neighbours lie to its right puts its label on the left, one with neighbours to its left
    puts it on the right, and no point takes a side a close neighbour already took.

    >>> label_positions([0.0, 0.1, 5.0], [1.0, 1.0, 0.0])
    ['middle left', 'middle right', 'middle right']
    """
    import numpy as np

    right, left, top, bottom = "middle right", "middle left", "top center", "bottom center"
    x, y = np.asarray(x, float), np.asarray(y, float)
    sx = max(float(np.ptp(x)) if len(x) else 0.0, 1e-9)
    sy = max(float(np.ptp(y)) if len(y) else 0.0, 1e-9)
    places: list[str | None] = [None] * len(x)
    for i in np.lexsort((-y, x)):
        close = [
            j for j in range(len(x)) if j != i and abs(x[j] - x[i]) < near[0] * sx and abs(y[j] - y[i]) < near[1] * sy
        ]
        on_right = any(x[j] > x[i] for j in close)
        on_left = any(x[j] < x[i] for j in close)
        if on_right and on_left:
            prefs = [top, bottom, right, left]
        elif on_right:
            prefs = [left, top, bottom, right]
        else:
            prefs = [right, left, top, bottom]
        taken = {places[j] for j in close}
        places[i] = next((side for side in prefs if side not in taken), prefs[0])
    return [p or right for p in places]


def device_caption(device: dict | None = None) -> str:
    """The sentence a timing figure's caption ends with: where its numbers were measured.

    Why: a speed-up or a latency means little without the device (a CPU shared with other
    work and an H100 give different answers). ``device`` is a :func:`labkit.device.describe`
    dict, the run record's ``device`` entry; by default the package's device rule now, which
    is the device the study's models were loaded on. The CPU is named by its model.
    """

    info = dict(device) if device else devices.describe()
    kind = str(info.get("device", "cpu"))
    name = info.get("name") or kind
    if kind.startswith("cpu"):
        hw = records.hardware()
        name = hw.get("cpu_model") or "CPU"
        if hw.get("cpu_count"):
            name += f", {hw['cpu_count']} logical cores"
    dtype = f", {info['dtype']}" if info.get("dtype") else ""
    return f"Measured on {kind} ({name}{dtype})."


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


def _target(record: records.RunRecord | str) -> tuple[str, records.RunRecord | None]:
    """(study id, run record) of a writer's first argument: the notebook's record (its study's
    outputs are registered on it, so ``notebook.end`` knows what was written), or a bare study
    id (files only, nothing registered: a script outside a notebook)."""
    if isinstance(record, records.RunRecord):
        return record.study, record
    if isinstance(record, str) and record:
        return record, None
    raise LabkitError(f"figures and tables are written for a run record or a study id, got {type(record).__name__}")


def _check(fig: go.Figure, study: str, record, name: str, skip) -> list[str]:
    """Run the figure check (needs the kaleido browser); warn in the record or raise."""
    if not png_server():
        return []
    problems = check_figure(fig, skip=skip)
    if problems:
        message = f"figure {study}/{name} does not read right: " + "; ".join(problems)
        if os.environ.get("LABKIT_STRICT_FIGURES") == "1":
            raise LabkitError(message)
        if record is not None:
            record.warn(message)
        else:
            warnings.warn(message, stacklevel=3)
    return problems


def save_figure(
    fig: go.Figure,
    record: records.RunRecord | str,
    name: str,
    caption: str,
    *,
    width: int = 900,
    height: int = 520,
    show: bool = True,
    check_skip: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write ``figures/<study>/<name>.{html,png}`` plus the plotted numbers as
    ``<name>.data.csv``, and register them (with caption) on ``record``, the notebook's run
    record (a bare study id writes the files and registers nothing).

    The figure is first made readable (:func:`labkit.figcheck.readable`) and checked
    (:func:`labkit.figcheck.check_figure`); ``check_skip`` names rules to leave out, for a
    figure whose caption says why.
    """
    study, run = _target(record)
    folder = study_dir(study)
    fig.update_layout(width=None, height=None)
    readable(fig)
    _check(fig, study, run, name, check_skip)
    paths = {"html": folder / f"{name}.html"}
    with io.atomic_path(paths["html"]) as tmp:
        fig.write_html(
            tmp,
            include_plotlyjs=shared_plotlyjs(),
            full_html=True,
            config={"displaylogo": False, "responsive": True},
        )
    try:
        points = figure_data(fig)
    except (TypeError, ValueError):  # exotic trace types: the figure still counts
        points = None
    if points is not None and len(points):
        paths["data"] = io.write_text(folder / f"{name}.data.csv", points.to_csv(index=False))
    png = render_png(fig, width=width, height=height)
    if png is not None:
        paths["png"] = io.write_bytes(folder / f"{name}.png", png)
    if run is not None:
        run.note_output("figure", name, caption, paths)
    if show:
        _display(fig, png)
    return paths


def plain(value):
    """A cell as a reader should see it: numpy scalars as Python numbers, lists, tuples, sets
    and arrays as comma-separated plain values (their repr would print ``[np.int64(5)]``).

    >>> import numpy as np
    >>> plain([np.int64(5), np.int64(9)]), plain(np.float64(0.5)), plain("a")
    ('5, 9', 0.5, 'a')
    """
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple, set, frozenset, np.ndarray)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else list(value)
        return ", ".join(str(plain(v)) for v in items)
    return value


def _escape_pipes(frame: pd.DataFrame) -> pd.DataFrame:
    r"""A ``|`` inside a text cell would end the Markdown cell early (a flag reason like
    ``long: ... | short: ...`` shifted every later column): escape it as ``\|``.

    >>> print(_escape_pipes(pd.DataFrame({"why": ["a | b"], "n": [1]})).why[0])
    a \| b
    """
    out = frame.copy()
    for column in out.columns:
        if not pd.api.types.is_numeric_dtype(out[column]):
            out[column] = out[column].map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)
    return out


def save_table(
    frame: pd.DataFrame,
    record: records.RunRecord | str,
    name: str,
    caption: str,
    *,
    float_format: str = ".4g",
    index: bool = False,
) -> dict[str, Path]:
    """Write ``figures/<study>/<name>.{csv,md}`` (Markdown headed by the caption) and register
    it on ``record``, the notebook's run record (a bare study id registers nothing).

    Object columns are passed through :func:`plain` first, so a column of lists of numpy
    integers (a split's doctors) reads ``2, 5`` in both files, not ``[np.int64(2), ...]``.
    """
    study, run = _target(record)
    folder = study_dir(study)
    objects = [i for i, dtype in enumerate(frame.dtypes) if pd.api.types.is_object_dtype(dtype)]
    if objects:
        frame = frame.copy()
        for i in objects:
            frame.iloc[:, i] = frame.iloc[:, i].map(plain)
    paths = {"csv": folder / f"{name}.csv", "md": folder / f"{name}.md"}
    io.write_text(paths["csv"], frame.to_csv(index=index))
    # pandas hands tabulate rows, so an integer column in a frame that also has floats arrives
    # as floats: give integer columns their own format or 32768 would print as 3.277e+04.
    formats = [".0f" if pd.api.types.is_integer_dtype(frame[c]) else float_format for c in frame.columns]
    if index:
        formats.insert(0, ".0f" if pd.api.types.is_integer_dtype(frame.index) else float_format)
    markdown = _escape_pipes(frame).to_markdown(index=index, floatfmt=formats)
    io.write_text(paths["md"], f"**{caption}**\n\n{markdown}\n")
    if run is not None:
        run.note_output("table", name, caption, paths)
    return paths
