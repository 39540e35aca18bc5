"""Batch-run study notebooks with papermill on Dask: profiles, overrides, seeds, a summary.

Which notebooks exist comes from the study registry (:mod:`labkit.studies`). Each notebook (x
seed) is one task on Dask (:mod:`labkit.cluster`: an embedded LocalCluster of ``--jobs``
workers, or ``--scheduler``), runs in its own kernel and writes through a staging folder
(:mod:`labkit.staging`) that replaces ``<figures>/<study>/`` only on success; with seeds, seed
``n`` lands in ``<figures>/<study>/seeds/seed-<n>/`` and :func:`labkit.seeds.aggregate`
summarises them. Parameters must be JSON types, and unknown parameter names are an error
(papermill only logs them). ``engine="pool"`` keeps the old process pool, for the benchmark.
"""
from __future__ import annotations

import os
import shutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit import cluster, io, staging, studies
from labkit.config import active_profile
from labkit.errors import LabkitError, ParameterError
from labkit.params import check as check_schema
from labkit.run_summary import FAILED_STATUSES, exit_code, summary_table  # noqa: F401 (API)
from labkit.paths import figures_dir
from labkit.studies import Study

JSON_TYPES = (str, int, float, bool, type(None), list, dict)
ENGINES = ("dask", "pool")


@dataclass
class NotebookResult:
    """What happened to one notebook (one row of the summary table)."""

    notebook: str
    study: str
    status: str  # "ok" | "partial" (a provider/system failed, the study completed) | "failed"
    wall_s: float
    outputs: int = 0
    output_notebook: str = ""
    failed_cell: int | None = None
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: str = ""
    warnings: list[str] = field(default_factory=list)


def _ad_hoc(path: Path) -> Study:
    """An unregistered notebook named by path: its stem is the study id and output folder."""
    return Study(path.stem, path.stem, None, path, source="path")


def _resolve(name: str) -> Study:
    path = Path(name)
    if path.suffix != ".ipynb":
        return studies.get(name)
    if path.is_file():
        return studies.for_notebook(path) or _ad_hoc(path.resolve())
    registered = [s for s in studies.all_studies() if s.notebook.name == path.name]
    if len(registered) == 1:
        return registered[0]
    raise ParameterError(f"no notebook {name!r}: not a file, and not a registered study's "
                         f"notebook (registered studies: {', '.join(studies.ids())})")


def discover(names: list[str] | None = None) -> list[Study]:
    """Studies to run: the named ids or notebook paths, or every registered study.

    Names resolve through :mod:`labkit.studies` (built-in entries, ``register``-ed ones and
    ``study.json`` folders in ``$LABKIT_STUDY_PATH``); a path to an ``.ipynb`` also works.
    """
    found = [_resolve(name) for name in names] if names else studies.all_studies()
    for entry in found:
        if not entry.notebook.is_file():
            raise ParameterError(f"study {entry.id!r}: its notebook {entry.notebook} is missing "
                                 "(built-in studies run from a labkit checkout, not a wheel)")
    return found


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; values are JSON if they parse, else plain strings; a value
    that looks like JSON (``[``, ``{``, ``"``, a number) but does not parse is an error.

    >>> parse_assignments(["epochs=3", "models=[\\"a\\", \\"b\\"]", "name=minilm"])
    {'epochs': 3, 'models': ['a', 'b'], 'name': 'minilm'}
    """
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"parameter {pair!r} must look like key=value")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise ParameterError(f"parameter name {key!r} is not a valid Python identifier")
        from labkit.params import parse_value

        out[key] = parse_value(key, raw)
    return out


def check_parameters(notebook: Path, parameters: dict[str, Any]) -> None:
    """Unknown names and non-JSON values are errors (papermill would only log/stringify)."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    if not declared:
        raise ParameterError(f"{notebook.name} has no cell tagged 'parameters'")
    for key, value in parameters.items():
        if key not in declared:
            raise ParameterError(f"{notebook.name} has no parameter {key!r} "
                                 f"(its parameters: {', '.join(declared)})")
        if not isinstance(value, JSON_TYPES):
            raise ParameterError(f"parameter {key!r} must be a JSON type, got {type(value).__name__}")


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> ``[0, 1, 2]``; None/empty -> None (one run with the notebook's own seed).

    >>> parse_seeds("0, 1,2")
    [0, 1, 2]
    """
    if text is None or not str(text).strip():
        return None
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part.isdigit():
            raise ParameterError(f"--seeds: expected comma-separated integers >= 0 such as "
                                 f"0,1,2, got {text!r}")
        if int(part) in seeds:
            raise ParameterError(f"--seeds: seed {part} is listed twice in {text!r}")
        seeds.append(int(part))
    return seeds


# ----------------------------------------------------------------------- one notebook
def _failing_cell(exc: Exception) -> tuple[int | None, str]:
    count = getattr(exc, "exec_count", None)
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return count, f"{name}: {value}"
    return None, f"{type(exc).__name__}: {exc}"


def _kernel_manager(env: dict[str, str]) -> type:
    """A kernel manager whose kernels get ``env`` on top of this process's environment.

    Why not set ``os.environ``: every thread of a Dask worker shares it, so two notebooks in one
    multi-threaded worker would race on LABKIT_FIGURES_DIR; nbclient takes only a class.
    """
    from jupyter_client.manager import AsyncKernelManager

    class StagedKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw: Any) -> None:
            kw["env"] = {**os.environ, **(kw.get("env") or {}), **env}
            await super().start_kernel(**kw)

    return StagedKernelManager


def run_one(notebook: str, parameters: dict[str, Any], out_root: str, progress: bool = False,
            timeout: int | None = None, study: str | None = None,
            seed: int | None = None) -> NotebookResult:
    """Execute one notebook (papermill in this process, its own kernel). Never raises a
    notebook's error (KeyboardInterrupt still propagates, after :func:`abandon`).

    Outputs go to ``<out_root>/<study>/`` (or ``.../seeds/seed-<seed>/`` with ``seed``, which
    also sets the notebook's ``seed`` parameter) through a staging folder; the kernel starts
    in the notebook's own folder, so an external study's relative paths work.
    """
    import papermill as pm

    nb = Path(notebook)
    study = study or nb.stem
    out_root_p = Path(out_root).resolve()
    root, stage, final = staging.locations(out_root_p, study, seed)
    params = dict(parameters) if seed is None else {**parameters, "seed": seed}
    shutil.rmtree(stage, ignore_errors=True)  # leftovers of a killed run
    stage.mkdir(parents=True)
    partial = stage / f".{study}.executing.ipynb"
    env = {"LABKIT_FIGURES_DIR": str(root), "LABKIT_BATCH": "1"}
    t0 = time.perf_counter()
    try:
        with open(staging.log_path(root, study), "w", encoding="utf-8", buffering=1) as log:
            pm.execute_notebook(str(nb), str(partial), parameters=params, kernel_name="python3",
                                progress_bar=progress, cwd=str(nb.parent),
                                execution_timeout=timeout, stdout_file=log, stderr_file=log,
                                kernel_manager_class=_kernel_manager(env))
        status, cell, error = "ok", None, ""
    except Exception as exc:  # a failing notebook is a result, not a crash of the runner
        cell, error = _failing_cell(exc)
        status = "failed"
        if not getattr(exc, "ename", None):
            error += "\n" + traceback.format_exc(limit=3)
    except BaseException:
        staging.abandon(out_root_p, study, seed)
        raise
    record, warnings = {}, []
    if status == "ok":
        staging.write_portable(partial, stage / f"{study}.ipynb", out_root_p, final)
        record = staging.read_record(stage)
        warnings = [str(w) for w in record.get("warnings", [])]
        if any(w.startswith("failed:") for w in warnings):
            status = "partial"
        staging.promote(stage, final, root)
        executed = final / f"{study}.ipynb"
    else:
        executed = staging.abandon(out_root_p, study, seed) or final / f"{study}.failed.ipynb"
    staging.log_path(root, study).unlink(missing_ok=True)
    outputs = sum(1 for p in final.iterdir() if p.suffix in (".png", ".html", ".csv", ".md")) \
        if final.is_dir() else 0
    result = NotebookResult(nb.name, study, status, round(time.perf_counter() - t0, 1), outputs,
                            str(executed), cell, error, params, seed,
                            staging.device_text(record), warnings)
    io.write_json(staging.result_path(out_root_p, study, seed), asdict(result))
    return result


def _died(entry: Study, seed: int | None, exc: BaseException, params: dict[str, Any],
          out_root: Path, wall_s: float) -> NotebookResult:
    """A task that never returned (its worker died): report it failed with the last words."""
    words, failed = staging.last_words(out_root, entry.id, seed)
    return NotebookResult(entry.notebook.name, entry.id, "failed", wall_s, 0, str(failed or ""),
                          None, f"the worker running this notebook died: {type(exc).__name__}: "
                          f"{exc}{words}", params if seed is None else {**params, "seed": seed},
                          seed)


# ------------------------------------------------------------------------ the whole run
def run(names: list[str] | None = None, profile: str | None = None,
        overrides: dict[str, Any] | None = None, jobs: int = 1, out_root: Path | None = None,
        timeout: int | None = None, seeds: list[int] | None = None,
        scheduler: str | None = None, engine: str = "dask") -> list[NotebookResult]:
    """Run studies' notebooks (x ``seeds``), each a task on Dask (or the old ``"pool"``).

    Everything is checked before a cluster or kernel starts: names, parameters, seeds, and a
    named scheduler's address (:func:`labkit.cluster.connect`).
    """
    if engine not in ENGINES:
        raise ParameterError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParameterError(f"--jobs: expected an integer >= 1, got {jobs!r}")
    entries = discover(names)
    if engine == "dask" and cluster.scheduler_address(scheduler) is None:
        cluster.warm_up()  # the workers' forkserver imports while parameters are checked below
    profile = active_profile(profile)
    params = {"profile": profile, **(overrides or {})}
    if seeds and "seed" in params:
        raise ParameterError("give either --seeds or -p seed=..., not both")
    for entry in entries:  # every value checked against the study's schema before any kernel
        check_parameters(entry.notebook, {**params, "seed": 0} if seeds else params)
        params = check_schema(entry.id, params)
    out_root = (Path(out_root) if out_root else figures_dir()).resolve()
    tasks = [(entry, seed) for entry in entries for seed in (seeds or [None])]
    try:
        results = (_run_dask if engine == "dask" else _run_pool)(
            tasks, params, out_root, jobs, timeout, scheduler, f"labkit run ({profile})")
    finally:
        staging.tidy(out_root)
    order = {(e.id, s): i for i, (e, s) in enumerate(tasks)}
    results.sort(key=lambda r: order[(r.study, r.seed)])
    if seeds:
        results += [_aggregate(entry, seeds, results, out_root) for entry in entries]
    return results


def _aggregate(entry: Study, seeds: list[int], results: list[NotebookResult],
               out_root: Path) -> NotebookResult:
    """One summary row per study: the seed spread table and figure (labkit.seeds)."""
    from labkit import seeds as seeds_mod

    done = {r.seed for r in results if r.study == entry.id and r.status not in FAILED_STATUSES}
    dirs = {s: staging.locations(out_root, entry.id, s)[2] for s in seeds if s in done}
    t0 = time.perf_counter()
    name = f"{entry.notebook.name} [seeds {','.join(map(str, seeds))}]"
    try:
        if not dirs:
            raise LabkitError("no seed finished")
        written = seeds_mod.aggregate(entry.id, dirs, out_dir=out_root / entry.id)
    except Exception as exc:
        return NotebookResult(name, entry.id, "failed", 0.0, error=f"aggregate across seeds: "
                              f"{type(exc).__name__}: {exc}")
    status = "ok" if len(dirs) == len(seeds) else "partial"
    return NotebookResult(name, entry.id, status, round(time.perf_counter() - t0, 1),
                          len(written), str(out_root / entry.id),
                          warnings=[f"failed: seed {s} did not finish" for s in seeds
                                    if s not in dirs])


def _report(bar, r: NotebookResult) -> None:
    bar.set_postfix_str(f"{r.notebook}{'' if r.seed is None else f' seed {r.seed}'}: {r.status} "
                        f"({r.wall_s:.0f}s)")
    bar.update()


def _run_dask(tasks, params, out_root, jobs, timeout, scheduler, desc) -> list[NotebookResult]:
    from distributed import as_completed
    from tqdm.auto import tqdm

    results: list[NotebookResult] = []
    try:
        with cluster.connect(scheduler, max(1, min(jobs, len(tasks)))) as client, \
                tqdm(total=len(tasks), desc=desc, unit="notebook") as bar:
            t0 = time.perf_counter()
            # At most one notebook per worker thread at a time, submitted as slots free up: a
            # task sent ahead queues on a busy worker (each notebook is its own task group, so
            # the scheduler does not hold it back), and a worker that dies fails everything it
            # holds (allowed-failures 0), innocent queued notebooks included.
            slots = max(1, sum(client.nthreads().values()))
            queue = list(tasks)
            where = {}

            def submit_next():
                entry, seed = queue.pop(0)
                future = client.submit(run_one, str(entry.notebook), params, str(out_root), False,
                                       timeout, entry.id, seed, pure=False,
                                       key=f"{entry.id}-seed{seed}-{os.urandom(4).hex()}")
                where[future.key] = (entry, seed)
                return future

            pending = as_completed([submit_next() for _ in range(min(slots, len(queue)))],
                                   loop=client.loop)
            try:
                for future in pending:
                    entry, seed = where[future.key]
                    try:
                        result = future.result()
                    except Exception as exc:  # KilledWorker and friends: no result came back
                        saved = staging.pop_result(out_root, entry.id, seed)
                        result = NotebookResult(**saved) if saved else _died(
                            entry, seed, exc, params, out_root, round(time.perf_counter() - t0, 1))
                    del future
                    staging.pop_result(out_root, entry.id, seed)
                    results.append(result)
                    _report(bar, result)
                    if queue:
                        pending.add(submit_next())
            except BaseException:
                client.cancel(list(pending.futures))
                raise
    finally:  # after connect() has stopped the workers: nothing writes to staging any more
        _abandon_unfinished(tasks, results, out_root)
    return results


def _abandon_unfinished(tasks, results, out_root) -> None:
    done = {(r.study, r.seed) for r in results}
    for entry, seed in [(e, s) for e, s in tasks if (e.id, s) not in done]:
        staging.abandon(out_root, entry.id, seed)
        staging.pop_result(out_root, entry.id, seed)


def _run_pool(tasks, params, out_root, jobs, timeout, scheduler, desc) -> list[NotebookResult]:
    """The pre-Dask engine, kept to measure the Dask path's overhead against."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    results: list[NotebookResult] = []
    pool = ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tasks))),
                               initializer=cluster.watch_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(run_one, str(e.notebook), params, str(out_root), False, timeout,
                               e.id, seed): (e, seed) for e, seed in tasks}
        with tqdm(total=len(tasks), desc=desc, unit="notebook") as bar:
            for future in as_completed(futures):
                results.append(future.result())
                staging.pop_result(out_root, results[-1].study, results[-1].seed)
                _report(bar, results[-1])
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            cluster.kill_tree(process.pid)
        pool.shutdown(wait=False, cancel_futures=True)
        _abandon_unfinished(tasks, results, out_root)
        raise
    pool.shutdown()
    return results
