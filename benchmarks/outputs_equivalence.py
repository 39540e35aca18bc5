"""Do two ``labkit run``s produce the same tables? Compare their outputs (--jobs 1 vs 2, say).

    python benchmarks/outputs_equivalence.py FIGURES_A FIGURES_B [--rtol 1e-5] [--atol 1e-8]

Used by ``benchmarks/runner_overhead.py``: two schedules of the same run (one notebook at a time
with every thread, or two at once with one each) must give the same tables. Every
``*.csv`` under ``FIGURES_A`` (study tables and the figures' ``*.data.csv``) is matched by its
relative path under ``FIGURES_B``; numbers are compared with :func:`numpy.isclose` (``rtol``,
``atol``, NaN equal to NaN), everything else as text.

What is not a deterministic part (the documented exclusion rule, :data:`MEASURED`): a column
whose name names a measurement of the machine or of the moment (timings such as ``seconds``,
``wall_s``, ``*_s``, ``latency``, ``ms_per_token``, ``speedup``, ``throughput``; energy,
``kwh``, emissions, CO2, power; dates and times; the device; paths and file names), and a
whole file whose name does (``latency.csv``, ``epoch_energy.data.csv``, ...), and a row whose
first column is text that does (a figure trace ``speed-up vs no cache`` in ``*.data.csv``).
Those are left out and counted per table, so a reader sees what was not compared. Anything else
that differs is reported with its columns, the number of cells and the largest absolute
difference: for a ``*.data.csv`` (figure traces ``trace,x,y``) or a long table whose text cells
quote a measured value, the cause is usually that an axis or a cell is a timing; the report
says where."""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

#: names (of columns, or of whole files) that are measurements, not results: excluded
MEASURED = re.compile(
    r"(?:^|_)s$|second|wall|latency|ms_per|speed-?up|throughput|per_s\b|"
    r"energy|kwh|emission|co2|carbon|power|(?<![a-z])date|(?<![a-z])time|device|path|"
    r"file_?name",
    re.I,
)


@dataclass
class TableComparison:
    """One CSV's verdict: ``equal``, ``differs``, ``only_in_a``/``only_in_b`` or ``unreadable``."""

    table: str
    verdict: str
    excluded_columns: list[str] = field(default_factory=list)
    excluded_rows: int = 0
    differing_columns: list[str] = field(default_factory=list)
    differing_cells: int = 0
    max_abs_diff: float | None = None
    note: str = ""


def _compare_frames(name: str, a: pd.DataFrame, b: pd.DataFrame, rtol: float, atol: float) -> TableComparison:
    excluded = [c for c in a.columns if MEASURED.search(str(c))]
    if list(a.columns) != list(b.columns) or a.shape != b.shape:
        return TableComparison(
            name,
            "differs",
            excluded,
            note=f"shape/columns differ: {a.shape} {list(a.columns)} vs {b.shape} {list(b.columns)}",
        )
    first = a.columns[0] if len(a.columns) else None
    keep = np.ones(len(a), bool)
    if first is not None and not pd.api.types.is_numeric_dtype(a[first]):
        keep = ~a[first].fillna("").astype(str).map(lambda v: bool(MEASURED.search(v))).to_numpy(bool)
    a, b = a[keep], b[keep]
    differing, cells, worst = [], 0, None
    for column in [c for c in a.columns if c not in excluded]:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            bad = ~np.isclose(xv, yv, rtol=rtol, atol=atol, equal_nan=True)
            if bad.any():
                diff = float(np.nanmax(np.abs(xv[bad] - yv[bad])))
                worst = diff if worst is None or np.isnan(worst) else max(worst, diff)
        else:
            bad = (x.fillna("").astype(str) != y.fillna("").astype(str)).to_numpy()
        if bad.any():
            differing.append(str(column))
            cells += int(bad.sum())
    return TableComparison(
        name,
        "differs" if differing else "equal",
        [str(c) for c in excluded],
        int((~keep).sum()),
        differing,
        cells,
        worst,
    )


def compare_tables(a: Path, b: Path, rtol: float = 1e-5, atol: float = 1e-8) -> list[TableComparison]:
    """Compare every CSV under folder ``a`` with the same relative path under ``b``.

    A file whose name matches :data:`MEASURED` is reported ``excluded`` without reading it.
    """
    a, b = Path(a), Path(b)
    names = sorted(
        {p.relative_to(a).as_posix() for p in a.rglob("*.csv")}
        | {p.relative_to(b).as_posix() for p in b.rglob("*.csv")}
    )
    out = []
    for name in names:
        if not (a / name).is_file() or not (b / name).is_file():
            out.append(TableComparison(name, "only_in_a" if (a / name).is_file() else "only_in_b"))
            continue
        if MEASURED.search(Path(name).name.split(".")[0]):
            out.append(TableComparison(name, "excluded", note="the file is a measurement"))
            continue
        try:
            frames = pd.read_csv(a / name), pd.read_csv(b / name)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            out.append(TableComparison(name, "unreadable", note=f"{type(exc).__name__}: {exc}"))
            continue
        out.append(_compare_frames(name, *frames, rtol, atol))
    return out


def summary(rows: list[TableComparison]) -> dict:
    """Counts per verdict and the differing tables, for the benchmark's JSON."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.verdict] = counts.get(row.verdict, 0) + 1
    return {"counts": counts, "tables": [asdict(r) for r in rows]}


def format_rows(rows: list[TableComparison]) -> str:
    """One line per table: verdict, and for a difference the columns and the largest gap."""
    lines = []
    for r in rows:
        line = f"{r.verdict:10s} {r.table}"
        if r.differing_columns:
            gap = "" if r.max_abs_diff is None else f", max |diff| {r.max_abs_diff:.3g}"
            line += f"  [{r.differing_cells} cells in {', '.join(r.differing_columns)}{gap}]"
        if r.note:
            line += f"  ({r.note})"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", type=Path, help="figures folder of one run (e.g. --jobs 1)")
    parser.add_argument("b", type=Path, help="figures folder of the other (e.g. --jobs 2 --threads 1)")
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--atol", type=float, default=1e-8)
    args = parser.parse_args(argv)
    for folder in (args.a, args.b):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder (give two figures folders of labkit runs)")
    rows = compare_tables(args.a, args.b, args.rtol, args.atol)
    print(format_rows(rows))
    print(summary(rows)["counts"])
    return 1 if any(r.verdict not in ("equal", "excluded") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
