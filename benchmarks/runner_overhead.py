"""Overhead of ``labkit run`` on Dask vs the old process pool, measured side by side.

    python benchmarks/runner_overhead.py [--quick] [--repeats N] [--notebooks K] [--jobs J]
                                         [--data-overview]

The same set of tiny throwaway notebooks (each starts a kernel, writes a table and a run
record; no model, so the runner's own cost dominates) runs through ``engine="pool"`` and
``engine="dask"`` (embedded LocalCluster, started inside the timed call), each timed as a
``python -m labkit.cli run ... --engine X`` process as a user runs it, in interleaved repeats whose order alternates, so drift on a shared machine hits both.
Reported: the median of the per-repeat wall-time ratios dask/pool with a 95% bootstrap
interval (scipy.stats.bootstrap), and, with ``--data-overview``, one pair of smoke-profile
``data_overview`` runs at the very end. Issue 16's target: overhead <= 10% of wall time.
Writes ``<figures>/benchmark_runner_overhead.json``.
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
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labkit import io  # noqa: E402
from labkit.paths import figures_dir  # noqa: E402

TINY_BODY = (
    "import json, os, pathlib\n"
    "out = pathlib.Path(os.environ['LABKIT_FIGURES_DIR']) / STUDY\n"
    "out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'numbers.csv').write_text('i\\n' + '\\n'.join(map(str, range(10))) + '\\n')\n"
    "(out / 'run_record.json').write_text(json.dumps({'study': STUDY, 'results': {'n': 10},"
    " 'warnings': []}))\n"
)


def tiny_studies(folder: Path, count: int) -> list[str]:
    """``count`` throwaway studies (``study.json`` + notebook) under ``folder``."""
    ids = []
    for i in range(count):
        study = f"overhead_{i}"
        sub = folder / study
        sub.mkdir(parents=True)
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("profile = None\nseed = 0",
                                              metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(f"STUDY = {study!r}\n" + TINY_BODY),
                    # the registry reads promised outputs from this call; it never runs
                    nbformat.v4.new_code_cell("if False:\n    labkit.notebook.end(None)")]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nbformat.write(nb, sub / f"{study}.ipynb")
        (sub / "study.json").write_text(json.dumps(
            {"id": study, "title": f"Overhead probe {i}", "notebook": f"{study}.ipynb",
             "tables": []}))
        ids.append(study)
    return ids


def timed_run(names: list[str], engine: str, jobs: int, out_root: Path,
              profile: str = "smoke") -> float:
    """Wall time of ``labkit run NAMES --engine ENGINE`` as a user runs it (a fresh process:
    importing this script's numpy/scipy would otherwise be re-imported by every spawned worker)."""
    cmd = [sys.executable, "-m", "labkit.cli", "run", *names, "--profile", profile, "--jobs",
           str(jobs), "--engine", engine, "--no-gallery"]
    env = {**os.environ, "LABKIT_FIGURES_DIR": str(out_root)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{engine} run failed ({done.returncode}):\n{done.stdout[-3000:]}"
                         f"\n{done.stderr[-2000:]}")
    return wall


def median_ratio_ci(ratios: list[float]) -> tuple[float, float, float]:
    if len(ratios) < 2:
        return ratios[0], float("nan"), float("nan")
    ci = stats.bootstrap((np.asarray(ratios),), np.median, confidence_level=0.95,
                         n_resamples=9999, method="percentile",
                         random_state=np.random.default_rng(0)).confidence_interval
    return statistics.median(ratios), float(ci.low), float(ci.high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 notebooks")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--notebooks", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-overview", action="store_true",
                        help="finally, one smoke data_overview run per engine (needs the data)")
    args = parser.parse_args(argv)
    repeats, count = (3, 2) if args.quick else (args.repeats, args.notebooks)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="labkit-overhead-") as tmp:
        tmp = Path(tmp)
        names = tiny_studies(tmp / "studies", count)
        os.environ["LABKIT_STUDY_PATH"] = str(tmp / "studies")
        for rep in range(repeats):
            order = ("pool", "dask") if rep % 2 == 0 else ("dask", "pool")
            walls = {engine: timed_run(names, engine, args.jobs, tmp / f"{engine}-{rep}")
                     for engine in order}
            rows.append({"repeat": rep, "order": list(order), **{f"{e}_s": round(w, 3)
                                                                  for e, w in walls.items()}})
            print(f"repeat {rep}: pool {walls['pool']:.2f} s, dask {walls['dask']:.2f} s, "
                  f"ratio {walls['dask'] / walls['pool']:.3f}", flush=True)
        ratios = [r["dask_s"] / r["pool_s"] for r in rows]
        med, low, high = median_ratio_ci(ratios)
        result = {"benchmark": "runner_overhead", "notebooks": count, "jobs": args.jobs,
                  "repeats": rows, "median_ratio_dask_over_pool": round(med, 4),
                  "ci95": [round(low, 4), round(high, 4)],
                  "overhead_pct": round(100 * (med - 1), 2), "cpu_count": os.cpu_count(),
                  "note": "tiny notebooks (kernel start + file writes): the runner's own cost"}
        print(f"\n{count} tiny notebooks, --jobs {args.jobs}, {repeats} interleaved repeats: "
              f"dask/pool wall-time ratio median {med:.3f} (95% bootstrap CI {low:.3f}-{high:.3f})"
              f", overhead {100 * (med - 1):+.1f}% (target <= +10%)")
        if args.data_overview:
            walls = {engine: timed_run(["data_overview"], engine, 1, tmp / f"do-{engine}")
                     for engine in ("pool", "dask")}
            result["data_overview_smoke"] = {f"{e}_s": round(w, 2) for e, w in walls.items()}
            result["data_overview_smoke"]["ratio"] = round(walls["dask"] / walls["pool"], 4)
            print(f"data_overview (smoke, once each): pool {walls['pool']:.1f} s, dask "
                  f"{walls['dask']:.1f} s, ratio {walls['dask'] / walls['pool']:.3f}")
    out = io.write_json(figures_dir() / "benchmark_runner_overhead.json", result)
    print(f"wrote {out.relative_to(figures_dir().parent) if out.is_relative_to(figures_dir().parent) else out.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
