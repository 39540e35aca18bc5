"""Reading a table of training runs (``N, D, loss``): a user's CSV or a frame, validated row
by row, and the "drop the highest-loss runs" rule of Hoffmann et al.'s fit.

Why a module of its own: :mod:`labkit.scaling.fit` is the optimiser; a user's file is checked
here before any kernel starts (``points_csv``'s ``parse=``), without importing scipy's optimiser
set-up. :mod:`labkit.scaling.fit` re-exports these names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.data.parsers import positive_finite, read_csv_lines
from labkit.errors import DataError, ParameterError
from labkit.scaling.allocation import compute_optimal  # noqa: F401  (re-exported)

REQUIRED_COLUMNS = ("N", "D", "loss")


def load_points(source: str | Path | pd.DataFrame, *, name: str | None = None, n_params: int = 5) -> pd.DataFrame:
    """Validate a table of training runs and return ``N, D, loss`` as floats.

    Args:
        source: a CSV path (columns ``N``, ``D``, ``loss``; extra columns are kept) or a frame.
        name: how to name the source in messages (default: the path, or "points").
        n_params: parameters of the law to be fitted; at least ``n_params + 1`` points are
            needed so the fit is over-determined.

    Raises:
        DataError: missing file or column, a non-numeric / NaN / non-positive value (naming
            the row and field), duplicate rows, or too few points.
    """
    if isinstance(source, pd.DataFrame):
        frame, where = source.copy(), name or "points"
        frame = frame.reset_index(drop=True)
        _require_columns(frame.columns, where)
        lines, label = list(range(len(frame))), "row"
        for column in REQUIRED_COLUMNS:
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = values.isna() | ~np.isfinite(values.astype(float)) | ~(values > 0)
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(
                    f"{where}: row {i}, field {column!r} must be a positive finite "
                    f"number, got {str(frame[column].iloc[i])!r} "
                    f"({int(bad.sum())} bad value(s) in this column)"
                )
            frame[column] = values.astype(float)
    else:
        frame, lines, where = _read_points_csv(Path(source), name)
        label = "line"
    lines_of = dict(enumerate(lines))
    dup = frame.duplicated(subset=list(REQUIRED_COLUMNS), keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        first = int(
            np.flatnonzero(
                (frame[list(REQUIRED_COLUMNS)] == frame.loc[i, list(REQUIRED_COLUMNS)]).all(axis=1).to_numpy()
            )[0]
        )
        raise DataError(
            f"{where}: duplicate rows: {label} {lines_of[i]} repeats {label} "
            f"{lines_of[first]} (N={frame.N[i]:g}, D={frame.D[i]:g}, "
            f"loss={frame.loss[i]:g}); {int(dup.sum())} duplicate(s) in all. A "
            f"bootstrap would count such a run twice; drop or average them first."
        )
    if len(frame) < n_params + 1:
        raise DataError(
            f"{where}: {len(frame)} point(s) is too few to fit {n_params} parameters; need at least {n_params + 1}"
        )
    return frame


def _require_columns(columns, where: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DataError(
            f"{where}: missing column(s) {', '.join(missing)} (found: {', '.join(map(str, columns)) or 'none'})"
        )


def _read_points_csv(path: Path, name: str | None) -> tuple[pd.DataFrame, list[int], str]:
    """The CSV's runs with the *file* line of each (so messages point where an editor does)."""

    where = name or str(path)
    if not path.is_file():
        raise DataError(f"{where}: no such file (expected a CSV with columns N, D, loss)")
    records = read_csv_lines(path)
    header = [h.strip() for h in records[0][1]]
    _require_columns(header, where)
    rows, lines = [], []
    for line, fields in records[1:]:
        if len(fields) != len(header):
            raise DataError(f"{where}: line {line} has {len(fields)} field(s), the header has {len(header)}")
        row: dict[str, Any] = dict(zip(header, fields))
        for column in REQUIRED_COLUMNS:
            row[column] = positive_finite(path, line, column, fields[header.index(column)])
        rows.append(row)
        lines.append(line)
    frame = pd.DataFrame(rows, columns=header)
    for column in (c for c in header if c not in REQUIRED_COLUMNS):
        try:  # extra columns keep the numeric type pd.read_csv would have given them
            frame[column] = pd.to_numeric(frame[column])
        except (ValueError, TypeError):
            pass
    return frame, lines, where


def drop_highest_loss(points: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """Epoch's replication drops the ``k`` highest-loss points (outliers at tiny compute)."""
    if k < 0 or k >= len(points):
        raise ParameterError(f"drop_highest={k} must be in [0, {len(points) - 1}]")
    return points.drop(index=points["loss"].nlargest(k).index).reset_index(drop=True) if k else points
