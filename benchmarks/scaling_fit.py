"""Benchmark: 1,000 bootstrap refits of the Chinchilla points (target <= 60 s on 2 cores), and
the full 4,500-start grid fit in one process (``n_jobs=1``, target <= 30 s on 2 cores: each
L-BFGS-B loop runs with one BLAS thread; before that, OpenBLAS thread teams made it 208 s).

Prints the wall time, the cost per refit, and how well the quick refits (full-data optimum + 4
grid points) agree with the published 4,500-start grid on a few resamples, side by side in one
run. Writes ``figures/scaling_laws/benchmark_scaling_fit.json``.

    python benchmarks/scaling_fit.py [--quick] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 refits and 2 grid checks")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    import labkit.data as data
    from labkit import studies
    from labkit.io import write_json
    from labkit.paths import study_dir
    from labkit.scaling.bootstrap import bootstrap, refit_starts
    from labkit.scaling.fit import (
        CHINCHILLA_GRID,
        CHINCHILLA_PARAMS,
        drop_highest_loss,
        fit,
        grid_starts,
        load_points,
        minimize_from,
    )
    from labkit.timing import Stopwatch, timed

    points = drop_highest_loss(load_points(data.load("chinchilla")[["N", "D", "loss"]]), 5)
    n_refits, n_checks = (100, 1) if args.quick else (1000, 3)

    # scipy on the CPU: no device to wait for, so the stopwatch reads the clock only
    full, grid_s = timed(lambda: fit(points, n_jobs=1), None)  # published grid, one process
    grid_target_s = 30.0

    samples, boot_s = timed(lambda: bootstrap(points, full, n_refits, seed=0, n_jobs=args.jobs), None)

    # agreement: quick refit vs the full grid on the same resamples
    logs = [np.log(points[c].to_numpy(float)) for c in ("N", "D", "loss")]
    idx = np.random.default_rng(0).integers(0, len(points), size=(n_refits, len(points)))[:n_checks]
    grid = grid_starts(CHINCHILLA_GRID, CHINCHILLA_PARAMS)
    worst = 0.0
    with Stopwatch(None) as clock:
        for i in idx:
            quick = minimize_from(refit_starts(full, 4), *(x[i] for x in logs))[1]
            exhaustive = minimize_from(grid, *(x[i] for x in logs))[1]
            worst = max(worst, (quick - exhaustive) / exhaustive)
    check_s = clock.seconds

    result = {
        "refits": n_refits,
        "jobs": args.jobs,
        "bootstrap_s": round(boot_s, 2),
        "per_refit_ms": round(1000 * boot_s / n_refits, 2),
        "full_grid_fit_s": round(grid_s, 2),
        "full_grid_n_jobs": 1,
        "full_grid_per_start_ms": round(1000 * grid_s / full.n_starts, 2),
        "full_grid_target_s": grid_target_s,
        "full_grid_met": grid_s <= grid_target_s,
        "grid_fit_over_refit_cost": round(grid_s / (boot_s / n_refits), 1),
        "converged_share": float(samples["converged"].mean()),
        "agreement_checks": n_checks,
        "worst_objective_excess_vs_full_grid": float(worst),
        "target_s": 60.0,
    }
    result["seconds_per_1000_refits"] = round(boot_s * 1000 / n_refits, 1)
    result["met"] = result["seconds_per_1000_refits"] <= result["target_s"]
    print(
        f"{n_refits} bootstrap refits on {args.jobs} process(es): {boot_s:.1f} s "
        f"({result['per_refit_ms']:.1f} ms per refit; target: 1,000 in <= 60 s -> "
        f"{'met' if result['met'] else 'NOT met'})"
    )
    print(
        f"full {full.n_starts:,}-start grid fit, n_jobs=1: {grid_s:.1f} s "
        f"({result['full_grid_per_start_ms']:.1f} ms per start; target <= {grid_target_s:.0f} s "
        f"-> {'met' if result['full_grid_met'] else 'NOT met'}) = "
        f"{result['grid_fit_over_refit_cost']:.0f}x one refit"
    )
    print(
        f"quick refit vs full grid on {n_checks} resamples: worst relative objective excess "
        f"{worst:.2e} ({check_s:.0f} s)"
    )
    out = study_dir(studies.for_benchmark(__file__).id) / "benchmark_scaling_fit.json"
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
