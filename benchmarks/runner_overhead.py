"""How to use the cores, and what ``labkit run`` costs over plain papermill, side by side.

    python benchmarks/runner_overhead.py [--quick] [--repeats N] [--notebooks K]
    python benchmarks/runner_overhead.py --schedule [--profile default|smoke] [--repeats N]
                                         [--keep DIR]

Default: the runner's own cost. The same tiny throwaway notebooks (each starts a kernel and
writes a table and a run record; no model, so the runner's cost dominates) run through the
``papermill`` command, one after another, and through ``labkit run --jobs 1 --force``, each
timed as a fresh process in interleaved repeats whose order alternates (drift on a shared
machine hits both). Reported: the median of the per-repeat ratios labkit/papermill with a 95%
bootstrap interval (:mod:`labkit.stats`).

``--schedule``: issue 25's decision between **one notebook at a time with every thread**
(``--jobs 1``, the kernel gets all cores) and **two at once with one thread each**
(``--jobs 2 --threads 1``) for ``labkit run`` of every registered study. Each layout runs
``--repeats`` times (default 1) into its own figures folder with a fresh model cache (so both
pay for every training, as a new machine does), in alternating order; the per-notebook wall
times come from the run records, and the two runs' tables are compared
(``benchmarks/outputs_equivalence.py``: timings excluded). Writes
``<figures>/benchmark_runner_overhead.json`` or ``benchmark_schedule.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # outputs_equivalence beside us

from outputs_equivalence import compare_tables, summary  # noqa: E402

from labkit import io, stats  # noqa: E402
from labkit.paths import figures_dir  # noqa: E402

TINY_BODY = (
    "import json, os, pathlib\n"
    "out = pathlib.Path(os.environ.get('LABKIT_FIGURES_DIR', '.')) / STUDY\n"
    "out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'numbers.csv').write_text('i\\n' + '\\n'.join(map(str, range(10))) + '\\n')\n"
    "(out / 'run_record.json').write_text(json.dumps({'study': STUDY, 'results': {'n': 10},"
    " 'warnings': [], 'outputs': []}))\n"
)
LAYOUTS = {
    "jobs1_all_threads": ["--jobs", "1"],
    "jobs2_one_thread": ["--jobs", "2", "--threads", "1"],
}


def tiny_studies(folder: Path, count: int) -> list[str]:
    """``count`` throwaway studies (``study.json`` + notebook) under ``folder``."""
    ids = []
    for i in range(count):
        study = f"overhead_{i}"
        sub = folder / study
        sub.mkdir(parents=True)
        nb = nbformat.v4.new_notebook()
        nb.cells = [
            nbformat.v4.new_code_cell("profile = None\nseed = 0", metadata={"tags": ["parameters"]}),
            nbformat.v4.new_code_cell(f"STUDY = {study!r}\n" + TINY_BODY),
            # the registry reads promised outputs from this call; it never runs
            nbformat.v4.new_code_cell("if False:\n    labkit.notebook.end(None)"),
        ]
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        nbformat.write(nb, sub / f"{study}.ipynb")
        (sub / "study.json").write_text(
            json.dumps(
                {
                    "id": study,
                    "title": f"Overhead probe {i}",
                    "notebook": f"{study}.ipynb",
                    "tables": [],
                }
            )
        )
        ids.append(study)
    return ids


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:6])} ... failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}"
        )
    return wall


def labkit_run(
    names: list[str],
    out_root: Path,
    extra: list[str],
    env: dict[str, str] | None = None,
    profile: str = "smoke",
) -> float:
    """Wall time of ``labkit run NAMES`` as a user runs it (a fresh process)."""
    cmd = [
        sys.executable,
        "-m",
        "labkit.run.cli",
        "run",
        *names,
        "--profile",
        profile,
        "--force",
        "--no-gallery",
        *extra,
    ]
    return _timed(cmd, {**os.environ, **(env or {}), "LABKIT_FIGURES_DIR": str(out_root)})


def papermill_loop(folder: Path, names: list[str], out_root: Path) -> float:
    """Wall time of the same notebooks through the ``papermill`` command, one after another."""
    t0 = time.perf_counter()
    for name in names:
        _timed(
            [
                sys.executable,
                "-m",
                "papermill",
                str(folder / name / f"{name}.ipynb"),
                str(out_root / f"{name}.ipynb"),
                "-p",
                "profile",
                "smoke",
                "--no-progress-bar",
            ],
            {**os.environ, "LABKIT_FIGURES_DIR": str(out_root)},
        )
    return time.perf_counter() - t0


def notebook_seconds(folder: Path) -> dict[str, float]:
    """Each notebook's own wall time (its run record), and the span first start to last end."""
    from datetime import datetime

    records = [json.loads(p.read_text()) for p in folder.glob("*/run_record.json")]
    if not records:
        return {}
    start = min(datetime.fromisoformat(r["started_utc"]) for r in records)
    end = max(datetime.fromisoformat(r["finished_utc"]) for r in records)
    return {
        **{r["study"]: round(r["wall_time_s"], 1) for r in records},
        "span_s": round((end - start).total_seconds(), 1),
    }


def schedule(profile: str, repeats: int, work: Path) -> dict:
    """``--jobs 1`` (every thread) vs ``--jobs 2 --threads 1`` on every study (see above)."""
    rows = []
    for rep in range(repeats):
        order = list(LAYOUTS) if rep % 2 == 0 else list(reversed(LAYOUTS))
        walls = {}
        for layout in order:
            cache = work / f"cache-{layout}-{rep}"  # fresh: both pay for every training
            walls[layout] = labkit_run(
                [],
                work / f"{layout}-{rep}",
                LAYOUTS[layout],
                {"LABKIT_CACHE_DIR": str(cache)},
                profile,
            )
            print(f"repeat {rep}: {layout}: {walls[layout]:.0f} s", flush=True)
        same = summary(compare_tables(work / f"{order[0]}-{rep}", work / f"{order[1]}-{rep}"))
        rows.append(
            {
                "repeat": rep,
                "order": order,
                **{f"{k}_s": round(v, 1) for k, v in walls.items()},
                **{f"{k}_notebooks": notebook_seconds(work / f"{k}-{rep}") for k in order},
                "equivalence": same,
            }
        )
    ratio = [r["jobs2_one_thread_s"] / r["jobs1_all_threads_s"] for r in rows]
    print(
        f"\n{profile} profile, every study, fresh model cache: jobs2/jobs1 wall-time ratio "
        + ", ".join(f"{x:.3f}" for x in ratio)
        + " (< 1: two at once is faster)"
    )
    return {
        "benchmark": "schedule",
        "profile": profile,
        "repeats": rows,
        "ratio_jobs2_over_jobs1": [round(x, 4) for x in ratio],
        "cpu_count": os.cpu_count(),
        "layouts": LAYOUTS,
    }


def overhead(repeats: int, count: int) -> dict:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="labkit-overhead-") as tmp:
        tmp = Path(tmp)
        names = tiny_studies(tmp / "studies", count)
        os.environ["LABKIT_STUDY_PATH"] = str(tmp / "studies")
        for rep in range(repeats):
            order = ("papermill", "labkit") if rep % 2 == 0 else ("labkit", "papermill")
            walls = {}
            for way in order:
                out = tmp / f"{way}-{rep}"
                out.mkdir()
                walls[way] = (
                    papermill_loop(tmp / "studies", names, out)
                    if way == "papermill"
                    else labkit_run(names, out, ["--jobs", "1"])
                )
            rows.append(
                {
                    "repeat": rep,
                    "order": list(order),
                    **{f"{w}_s": round(v, 3) for w, v in walls.items()},
                }
            )
            print(
                f"repeat {rep}: papermill {walls['papermill']:.2f} s, labkit run {walls['labkit']:.2f} s",
                flush=True,
            )
    ratios = [r["labkit_s"] / r["papermill_s"] for r in rows]
    iv = stats.interval(ratios, np.median)
    print(
        f"\n{count} tiny notebooks, {repeats} interleaved repeats: labkit run / papermill "
        f"wall-time ratio median {statistics.median(ratios):.3f} (95% bootstrap interval "
        f"{iv.low:.3f}-{iv.high:.3f})"
    )
    return {
        "benchmark": "runner_overhead",
        "notebooks": count,
        "repeats": rows,
        "median_ratio_labkit_over_papermill": round(statistics.median(ratios), 4),
        "ci95": [round(iv.low, 4), round(iv.high, 4)],
        "cpu_count": os.cpu_count(),
        "note": "tiny notebooks (kernel start + file writes): the runner's own cost",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 notebooks")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--notebooks", type=int, default=4)
    parser.add_argument(
        "--schedule",
        action="store_true",
        help="compare --jobs 1 with --jobs 2 --threads 1 on every study",
    )
    parser.add_argument("--profile", default="default", help="with --schedule (default: default)")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="with --schedule: write the runs' outputs here and keep them",
    )
    args = parser.parse_args(argv)
    if args.schedule:
        repeats = args.repeats or 1
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            result = schedule(args.profile, repeats, args.keep.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="labkit-schedule-") as tmp:
                result = schedule(args.profile, repeats, Path(tmp))
        name = "benchmark_schedule.json"
    else:
        repeats, count = (3, 2) if args.quick else (args.repeats or 6, args.notebooks)
        result, name = overhead(repeats, count), "benchmark_runner_overhead.json"
    out = io.write_json(figures_dir() / name, result)
    print(f"wrote {out.name} in the figures folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
