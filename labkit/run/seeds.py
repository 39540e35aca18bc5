"""Seeds as an axis: one study run per seed, then the spread of its headline numbers.

``labkit run STUDY --seeds 0,1,2`` runs the study once per seed (each into its own folder) and
then calls :func:`aggregate`, which reads every seed's run record and writes, beside the study's
own outputs,

* ``seeds_summary.csv`` / ``.md``: one row per numeric result (mean, sample standard deviation,
  min, max, number of seeds that reported it), through :func:`labkit.figures.save_table`;
* ``seeds_spread.{png,html}``: the per-seed values of up to :data:`MAX_PANELS` headline numbers,
  one panel each, through :func:`labkit.figures.save_figure`;
* both noted in ``<out_dir>/run_record.json`` (created when absent), so the gallery links them.

A number from one seed is an anecdote; the spread says whether a difference between systems is
larger than the noise of training. Which numbers count: every numeric leaf of ``results``
(nested dicts flatten to dotted keys, lists of records to ``key.<label>.field``); lists of plain
numbers (ids, curves) and booleans are not headline numbers and are skipped. A seed whose
folder or record is missing, or whose run failed, is left out and named in the caption.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from labkit import io, studies
from labkit.errors import DataError, ParameterError
from labkit.records import RECORD_NAME, RunRecord

__all__ = [
    "MAX_PANELS",
    "HEADLINE_PATTERN",
    "aggregate",
    "flatten_numbers",
    "headline_keys",
    "read_seed_results",
    "summary_table",
]

MAX_PANELS = 8
#: fallback choice of the figure's headline numbers when the study registry names none
HEADLINE_PATTERN = re.compile(r"accuracy|rouge|ratio|speedup|reduction|exponent|alpha|beta", re.I)
TABLE = "seeds_summary"
FIGURE = "seeds_spread"


# --------------------------------------------------------------------------- reading
def flatten_numbers(results: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every finite numeric leaf of a results dict under a dotted key.

    >>> flatten_numbers({"a": 1, "b": {"c": 2.5, "d": "x", "e": True}, "ids": [3, 4]})
    {'a': 1.0, 'b.c': 2.5}
    >>> flatten_numbers({"t": [{"system": "lead", "p": 0.1}, {"system": "ours", "p": 0.02}]})
    {'t.lead.p': 0.1, 't.ours.p': 0.02}
    """
    out: dict[str, float] = {}
    for key, value in results.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_numbers(value, f"{name}."))
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
            labels = [_record_label(v) for v in value]
            if None in labels or len(set(labels)) < len(labels):
                labels = [str(i) for i in range(len(value))]
            for label, item in zip(labels, value):
                out.update(flatten_numbers(item, f"{name}.{label}."))
        elif _is_number(value) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return (
        hasattr(value, "dtype") and getattr(value, "shape", None) == () and value.dtype.kind in "iuf"
    )  # numpy scalars


def _record_label(item: Mapping[str, Any]) -> str | None:
    """A row of a table stored as a list of records is named by its text fields."""
    texts = [str(v) for v in item.values() if isinstance(v, str)]
    return "/".join(texts) if texts else None


def _record_path(folder: Path, study: str) -> Path:
    """``run_record.json`` in the seed folder, or in its ``<study>/`` sub-folder (a figures
    root that holds the study's folder)."""
    for candidate in (folder / RECORD_NAME, folder / study / RECORD_NAME):
        if candidate.is_file():
            return candidate
    return folder / RECORD_NAME


def read_seed_results(study: str, seed_dirs: Mapping[int, Path]) -> tuple[dict[int, dict[str, float]], dict[int, str]]:
    """``({seed: flat numbers}, {seed: why it is missing})`` over the seed folders."""
    found: dict[int, dict[str, float]] = {}
    missing: dict[int, str] = {}
    for seed, folder in sorted(seed_dirs.items()):
        if folder is None:
            missing[seed] = "no output folder"
            continue
        path = _record_path(Path(folder), study)
        if not path.is_file():
            missing[seed] = "no run record (failed or not run)"
            continue
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            missing[seed] = f"unreadable run record ({err.__class__.__name__})"
            continue
        results = record.get("results") if isinstance(record, dict) else None
        if not isinstance(results, Mapping):
            missing[seed] = "run record has no results"
            continue
        numbers = flatten_numbers(results)
        if not numbers:
            missing[seed] = "no numeric results"
            continue
        found[seed] = numbers
    return found, missing


# --------------------------------------------------------------------------- summarising
def summary_table(per_seed: Mapping[int, Mapping[str, float]]) -> pd.DataFrame:
    """One row per number: ``result, mean, std`` (ddof=1; NaN for one seed), ``min, max,
    n_seeds, seeds`` (which seeds reported it), in first-seen key order."""
    frame = pd.DataFrame({seed: pd.Series(values, dtype=float) for seed, values in per_seed.items()})
    order = list(dict.fromkeys(k for values in per_seed.values() for k in values))
    frame = frame.reindex(order)
    low, high, n = frame.min(axis=1), frame.max(axis=1), frame.notna().sum(axis=1)
    std = frame.std(axis=1, ddof=1).mask((high == low) & (n > 1), 0.0)  # not 1e-16 noise
    mean = frame.mean(axis=1).mask(high == low, low)
    return pd.DataFrame(
        {
            "result": frame.index,
            "mean": mean.to_numpy(),
            "std": std.to_numpy(),
            "min": low.to_numpy(),
            "max": high.to_numpy(),
            "n_seeds": n.astype(int).to_numpy(),
            "seeds": [",".join(str(s) for s in frame.columns[row.notna()]) for _, row in frame.iterrows()],
        }
    )


def headline_keys(study: str, keys: list[str], limit: int = MAX_PANELS) -> list[str]:
    """The numbers the figure shows: the study's own list when the registry offers one
    (a ``headlines`` field on its :class:`labkit.studies.Study`), else the keys matching
    :data:`HEADLINE_PATTERN`, in result order, at most ``limit``."""
    chosen: list[str] = []
    try:
        listed = getattr(studies.get(study), "headlines", None)
    except Exception:  # an unregistered study (run by path): fall back to the pattern
        listed = None
    if listed:
        chosen = [k for k in keys if any(k == h or k.startswith(f"{h}.") for h in listed)]
    if not chosen:
        chosen = [k for k in keys if HEADLINE_PATTERN.search(k)]
    return chosen[:limit]


def spread_figure(per_seed: Mapping[int, Mapping[str, float]], keys: list[str], title: str):
    """One panel per number: each seed a labelled point, the mean with a +-1 std bar beside."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from labkit.figures import PALETTE  # plotly: only when the spread is drawn

    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    # each number names its panel's y axis (subplot titles would collide with the figure title)
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.12, vertical_spacing=0.18)
    seeds = sorted(per_seed)
    for i, key in enumerate(keys):
        row, col = i // cols + 1, i % cols + 1
        values = pd.Series({s: per_seed[s][key] for s in seeds if key in per_seed[s]}, dtype=float)
        groups = values.groupby(values, sort=False)  # equal values: one point, one label
        points = [(value, list(group.index)) for value, group in groups]
        fig.add_trace(
            go.Scatter(
                x=["seeds"] * len(points),
                y=[v for v, _ in points],
                mode="markers+text",
                text=[("seed " if len(g) == 1 else "seeds ") + ",".join(map(str, g)) for _, g in points],
                textposition="middle right",
                marker=dict(color=PALETTE[0], size=9),
                name="one seed",
                legendgroup="seed",
                showlegend=i == 0,
                hovertemplate="%{text}: %{y:.4g}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
        if values.max() - values.min() <= 1e-12 * max(values.abs().max(), 1e-300):
            mean, std = float(values.iloc[0]), 0.0  # equal seeds: no rounding-sized spread
        fig.add_trace(
            go.Scatter(
                x=["mean ± std"],
                y=[mean],
                mode="markers",
                marker=dict(color=PALETTE[1], size=11, symbol="diamond"),
                error_y=dict(type="data", array=[std], thickness=1.5, width=8),
                name="mean ± 1 std",
                legendgroup="mean",
                showlegend=i == 0,
                hovertemplate="mean %{y:.4g}<extra></extra>",
            ),
            row=row,
            col=col,
        )
        fig.update_yaxes(title=_short(key), row=row, col=col)
    fig.update_xaxes(type="category")
    fig.update_layout(
        title=title,
        height=300 * rows + 140,
        legend=dict(orientation="h", x=0, y=-0.12 if rows > 1 else -0.25, yanchor="top"),
    )
    return fig


def _short(key: str, width: int = 28) -> str:
    """Subplot titles fit their panel: a long dotted key breaks before its last part onto a
    second line, and a line still too long keeps its tail behind ``…``."""

    def cut(text: str) -> str:
        return text if len(text) <= width else "…" + text[-(width - 1) :]

    if len(key) <= width:
        return key
    head, dot, tail = key.rpartition(".")
    return f"{cut(head + dot)}<br>{cut(tail)}" if dot else cut(key)


# --------------------------------------------------------------------------- writing
@contextlib.contextmanager
def _figures_root(root: Path) -> Iterator[None]:
    """Point :func:`labkit.paths.figures_dir` at ``root`` for the writers.

    The table and figure writers take a study id and write under the figures root (and put
    the one shared ``plotly.min.js`` there); the aggregate's folder is given as a path, so
    its parent is made that root for the duration of the writes.
    """
    old = os.environ.get("LABKIT_FIGURES_DIR")
    os.environ["LABKIT_FIGURES_DIR"] = str(root)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LABKIT_FIGURES_DIR", None)
        else:
            os.environ["LABKIT_FIGURES_DIR"] = old


def _seed_parameters(study: str, seed_dirs: Mapping[int, Path], seed: int) -> dict[str, Any]:
    """The parameters one seed ran with (profile etc.), for a run record made from scratch."""
    try:
        record = json.loads(_record_path(Path(seed_dirs[seed]), study).read_text(encoding="utf-8"))
        return dict(record.get("parameters") or {})
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def _caption(study: str, used: list[int], missing: Mapping[int, str]) -> str:
    text = (
        f"{study}: headline numbers across seeds {', '.join(map(str, used))} "
        f"(mean, sample standard deviation, min and max; n = seeds that reported the number)"
    )
    if missing:
        text += "; missing seeds: " + "; ".join(f"{s} ({why})" for s, why in missing.items())
    return text


def aggregate(study: str, seed_dirs: dict[int, Path], out_dir: Path) -> list[Path]:
    """Summarise one study's per-seed runs into a table and a spread figure in ``out_dir``.

    Args:
        study: the study id (names the figure's title and picks its headline numbers).
        seed_dirs: ``{seed: folder}``; each folder holds that seed's ``run_record.json`` (or a
            ``<study>/`` sub-folder that does). Seeds without a readable record are reported
            as missing in the caption, not fatal.
        out_dir: where the table and figure go (normally ``<figures>/<study>``).

    Returns:
        The written paths (CSV, Markdown, HTML, plotted data, PNG when a browser is present,
        and the run record that lists them).

    Raises:
        ParameterError: no seeds given, or a seed that is not an int.
        DataError: not one seed has numeric results (names every seed and why).
    """
    from labkit.figures import save_figure, save_table  # plotly: only when the spread is drawn

    if not seed_dirs:
        raise ParameterError(f"seeds aggregate of {study!r}: seed_dirs is empty")
    bad = [s for s in seed_dirs if isinstance(s, bool) or not isinstance(s, int)]
    if bad:
        raise ParameterError(f"seeds aggregate of {study!r}: seeds must be ints, got {bad!r}")
    per_seed, missing = read_seed_results(study, seed_dirs)
    if not per_seed:
        raise DataError(
            f"seeds aggregate of {study!r}: no seed has numeric results: "
            + "; ".join(f"seed {s}: {why} ({Path(seed_dirs[s])})" for s, why in missing.items())
        )
    table = summary_table(per_seed)
    caption = _caption(study, sorted(per_seed), missing)
    out_dir = Path(out_dir).resolve()
    with _figures_root(out_dir.parent):
        table_files = save_table(table, out_dir.name, TABLE, caption)
        keys = headline_keys(study, list(table["result"]))
        figure_files: dict[str, Path] = {}
        fig_caption = (
            f"Spread of {len(keys)} headline number(s) of {study} across seeds "
            f"(points: one seed each; diamond: mean with ±1 sample std)"
            + (f"; missing seeds: {', '.join(map(str, missing))}" if missing else "")
        )
        if keys:
            fig = spread_figure(per_seed, keys, f"{study}: headline numbers across {len(per_seed)} seed(s)")
            figure_files = save_figure(
                fig,
                out_dir.name,
                FIGURE,
                fig_caption,
                show=False,
                width=1100,
                height=300 * math.ceil(len(keys) / 4) + 140,
            )
    # the gallery lists what a folder's run record lists: add (or replace) our two outputs
    record_path = out_dir / RECORD_NAME
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        params = {
            **_seed_parameters(study, seed_dirs, sorted(per_seed)[0]),
            "seed": sorted(seed_dirs),
        }
        record = RunRecord(study, params).to_dict()

    def relative(files: Mapping[str, Path]) -> dict[str, str]:
        return {k: os.path.relpath(p, out_dir) for k, p in files.items()}

    outputs = [o for o in record.get("outputs", []) if o.get("name") not in (TABLE, FIGURE)]
    outputs.append({"kind": "table", "name": TABLE, "caption": caption, "files": relative(table_files)})
    if figure_files:
        outputs.append(
            {
                "kind": "figure",
                "name": FIGURE,
                "caption": fig_caption,
                "files": relative(figure_files),
            }
        )
    record["outputs"] = outputs
    record["seed_aggregate"] = {
        "seeds": sorted(per_seed),
        "missing": {str(s): why for s, why in missing.items()},
        "numbers": len(table),
        "figure_keys": keys,
    }
    written = [*table_files.values(), *figure_files.values()]
    return written + [io.write_json(record_path, record)]
