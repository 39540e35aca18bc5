"""Overhead of ``labkit run`` on Dask vs the old process pool, measured side by side.

    python benchmarks/runner_overhead.py [--quick] [--repeats N] [--notebooks K] [--jobs J]
                                         [--data-overview]
    python benchmarks/runner_overhead.py --smoke-all [--repeats N] [--jobs J] [--keep DIR]

The same set of tiny throwaway notebooks (each starts a kernel, writes a table and a run
record; no model, so the runner's own cost dominates) runs through ``engine="pool"`` and
``engine="dask"`` (embedded LocalCluster, started inside the timed call), each timed as a
``python -m labkit.cli run ... --engine X`` process as a user runs it, in interleaved repeats whose order alternates, so drift on a shared machine hits both.
Reported: the median of the per-repeat wall-time ratios dask/pool with a 95% bootstrap
interval (scipy.stats.bootstrap), and, with ``--data-overview``, one pair of smoke-profile
``data_overview`` runs at the very end. Issue 16's target: overhead <= 10% of wall time.
Writes ``<figures>/benchmark_runner_overhead.json``.

``--smoke-all`` times the real thing instead: ``labkit run --profile smoke`` over every
registered study, pool vs dask, each run into its own figures folder, after one untimed pool
run that fills the model cache (so no timed run trains a cached model), in ``--repeats``
interleaved pairs (default 3). Each pair's two outputs are also compared table by table
(``benchmarks/engine_equivalence.py``). The target counts as met only when the bootstrap
interval's upper end is <= 1.10; otherwise "not shown". Writes
``<figures>/benchmark_runner_overhead_smoke.json``.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # engine_equivalence beside us

from engine_equivalence import compare_tables, summary  # noqa: E402
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


TARGET = 1.10


def notebook_seconds(folder: Path) -> dict[str, float]:
    """Inside-the-notebook time of one run (its run records' ``wall_time_s``, summed) and
    the span from the first notebook's start to the last one's end: what is left of the
    process's wall time is the runner's own (start, scheduling, shutdown)."""
    from datetime import datetime

    records = [json.loads(p.read_text()) for p in folder.glob("*/run_record.json")]
    if not records:
        return {}
    start = min(datetime.fromisoformat(r["started_utc"]) for r in records)
    end = max(datetime.fromisoformat(r["finished_utc"]) for r in records)
    return {"in_notebooks_s": round(sum(r["wall_time_s"] for r in records), 1),
            "span_s": round((end - start).total_seconds(), 1)}


def smoke_all(repeats: int, jobs: int, work: Path) -> dict:
    """Pool vs dask on ``labkit run --profile smoke`` of every registered study (see above)."""
    t0 = time.perf_counter()
    warm = timed_run([], "pool", jobs, work / "warmup")
    print(f"warm-up (pool, untimed for the ratio): {warm:.1f} s", flush=True)
    rows: list[dict] = []
    for rep in range(repeats):
        order = ("pool", "dask") if rep % 2 == 0 else ("dask", "pool")
        walls = {engine: timed_run([], engine, jobs, work / f"{engine}-{rep}") for engine in order}
        same = summary(compare_tables(work / f"pool-{rep}", work / f"dask-{rep}"))
        rows.append({"repeat": rep, "order": list(order),
                     **{f"{e}_s": round(w, 2) for e, w in walls.items()},
                     **{f"{e}_notebooks": notebook_seconds(work / f"{e}-{rep}") for e in order},
                     "equivalence": same})
        print(f"pair {rep} ({order[0]} first): pool {walls['pool']:.1f} s, dask "
              f"{walls['dask']:.1f} s, ratio {walls['dask'] / walls['pool']:.3f}; tables "
              f"{same['counts']}", flush=True)
    med, low, high = median_ratio_ci([r["dask_s"] / r["pool_s"] for r in rows])
    met = bool(high <= TARGET)
    print(f"\nsmoke profile, all studies, --jobs {jobs}, {repeats} interleaved pairs: dask/pool "
          f"median {med:.3f} (95% bootstrap CI {low:.3f}-{high:.3f}), overhead "
          f"{100 * (med - 1):+.1f}%; target <= {TARGET:.2f}: "
          f"{'met' if met else 'not shown'}")
    return {"benchmark": "runner_overhead_smoke", "jobs": jobs, "warmup_pool_s": round(warm, 2),
            "repeats": rows, "median_ratio_dask_over_pool": round(med, 4),
            "ci95": [round(low, 4), round(high, 4)], "overhead_pct": round(100 * (med - 1), 2),
            "target_ratio": TARGET, "target_met": met, "cpu_count": os.cpu_count(),
            "total_s": round(time.perf_counter() - t0, 1),
            "note": "labkit run --profile smoke of every registered study, one process per run"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats of 2 notebooks")
    parser.add_argument("--repeats", type=int, default=None,
                        help="interleaved repeats (default 6; with --smoke-all, pairs: 3)")
    parser.add_argument("--notebooks", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--data-overview", action="store_true",
                        help="finally, one smoke data_overview run per engine (needs the data)")
    parser.add_argument("--smoke-all", action="store_true",
                        help="time every registered study on the smoke profile instead")
    parser.add_argument("--keep", type=Path, default=None,
                        help="with --smoke-all: write the runs' outputs here and keep them")
    args = parser.parse_args(argv)
    if args.smoke_all:
        repeats = args.repeats or 3
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            result = smoke_all(repeats, args.jobs, args.keep.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="labkit-overhead-smoke-") as tmp:
                result = smoke_all(repeats, args.jobs, Path(tmp))
        out = io.write_json(figures_dir() / "benchmark_runner_overhead_smoke.json", result)
        print(f"wrote {out.name} in the figures folder")
        return 0
    repeats, count = (3, 2) if args.quick else (args.repeats or 6, args.notebooks)
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
