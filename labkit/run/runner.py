"""``labkit run``: study notebooks through papermill on Dask, with a run cache and study locks.

A run goes through four steps, and only the last one is heavy:

1. :func:`labkit.run.plan.plan` -- names, ``-p`` values and seeds checked (no papermill, no
   Dask, no torch imported: a typo is refused in well under a second);
2. :mod:`labkit.run.checks` -- the figures, cache and data-mirror folders usable, every user
   file a parameter names parsed and validated, all before any kernel starts;
3. per task, under its study's lock (:mod:`labkit.run.locks`), the run cache
   (:mod:`labkit.run.cache`): a notebook whose inputs are unchanged and whose outputs are
   complete is reported ``cached`` and not run (``force=True`` runs it anyway);
4. the rest run as Dask tasks (:mod:`labkit.cluster`: an embedded LocalCluster of ``jobs``
   single-threaded workers, or ``scheduler``), each in its own kernel with ``threads``
   threads, writing through a staging folder (:mod:`labkit.run.staging`) that replaces
   ``<figures>/<study>/`` only on success (:func:`labkit.run.execute.run_one`); with seeds,
   seed ``n`` lands in ``<figures>/<study>/seeds/seed-<n>/`` and
   :func:`labkit.run.seeds.aggregate` summarises them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from labkit import cluster, studies
from labkit.errors import LabkitError, ParameterError
from labkit.paths import RESULTS_DIR, figures_dir
from labkit.run import cache, checks, locks, staging
from labkit.run.execute import run_one
from labkit.run.plan import Task, plan
from labkit.run.summary import FAILED_STATUSES, NotebookResult

WAIT_NOTE_EVERY_S = 30.0


def default_threads(jobs: int) -> int:
    """Threads per kernel when ``jobs`` notebooks share this machine: the cores, split evenly
    (one pool of threads per core, never more busy threads than cores)."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


def run(
    names: list[str] | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    jobs: int = 1,
    out_root: Path | None = None,
    timeout: int | None = None,
    seeds: list[int] | None = None,
    scheduler: str | None = None,
    force: bool = False,
    wait: bool = True,
    threads: int | None = None,
) -> list[NotebookResult]:
    """Run studies' notebooks (x ``seeds``); see the module docstring for the steps.

    Args:
        force: run even notebooks the run cache would skip.
        wait: when another run is writing a study, wait for it (saying for whom); False stops
            at once with a :class:`ParameterError` naming that run (``--no-wait``).
        threads: threads per kernel (default: the cores divided by ``jobs``).
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParameterError(f"--jobs: expected an integer >= 1, got {jobs!r}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise ParameterError(f"--threads: expected an integer >= 1, got {threads!r}")
    tasks = plan(names, profile, overrides, seeds)
    if cluster.scheduler_address(scheduler):
        cluster.check_reachable(cluster.scheduler_address(scheduler))
    out_root = checks.output_root(Path(out_root) if out_root else figures_dir())
    checks.environment_folders()
    for task in tasks:
        checks.user_files(task.entry.id, task.params)
        task.cache_key = cache.key_for(task)
    held = locks.Locks(out_root)
    if not wait:
        held.acquire_all_or_fail([t.entry.id for t in tasks])
    try:
        results = _dispatch(
            tasks,
            out_root,
            jobs,
            timeout,
            scheduler,
            force,
            held,
            threads or default_threads(jobs),
            f"labkit run ({tasks[0].params['profile'] if tasks else '-'})",
        )
        order = {t.id: i for i, t in enumerate(tasks)}
        results.sort(key=lambda r: order[(r.study, r.seed)])
        if seeds:
            entries = list({t.entry.id: t.entry for t in tasks}.values())
            results += [_aggregate(entry, seeds, results, out_root) for entry in entries]
    finally:
        staging.tidy(out_root)
        held.release_all()
    return results


# --------------------------------------------------------------------------- dispatching
def _cached(task: Task, out_root: Path, force: bool) -> NotebookResult | None:
    """The previous outputs as this task's result, when the run cache allows (under the lock)."""
    if force:
        return None
    _, _, final = staging.locations(out_root, task.entry.id, task.seed)
    verdict = cache.check(task, final)
    if not verdict.reusable:
        return None
    record = staging.read_record(final)
    return NotebookResult(
        task.entry.notebook.name,
        task.entry.id,
        "cached",
        0.0,
        sum(1 for p in final.iterdir() if p.suffix in (".png", ".html", ".csv", ".md")),
        str(final / f"{task.entry.id}.ipynb"),
        None,
        "",
        task.run_params,
        task.seed,
        staging.device_text(record),
        [str(w) for w in record.get("warnings", [])],
        verdict.why,
    )


class _Progress:
    """The tqdm bar of a run, and the 'waiting for' lines."""

    def __init__(self, total: int, desc: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="notebook")
        self._noted: dict[str, float] = {}

    def done(self, r: NotebookResult) -> None:
        label = f"{r.notebook}{'' if r.seed is None else f' seed {r.seed}'}"
        self.bar.set_postfix_str(f"{label}: {r.status} ({r.wall_s:.0f}s)")
        if r.status in FAILED_STATUSES:  # why, on stderr too: the summary table goes to stdout
            why = (r.error.strip().splitlines() or ["(no error was reported)"])[0]
            self.bar.write(f"labkit run: {label} failed: {why}", file=sys.stderr)
        self.bar.update()

    def waiting(self, study: str, holder: dict | None) -> None:
        now = time.monotonic()
        if now - self._noted.get(study, -1e9) >= WAIT_NOTE_EVERY_S:
            self._noted[study] = now
            self.bar.write(
                f"labkit run: waiting for {study}: another labkit run is writing it ({locks.describe(holder)})",
                file=sys.stderr,
            )

    def close(self) -> None:
        self.bar.close()


def _dispatch(
    tasks: list[Task],
    out_root: Path,
    jobs: int,
    timeout: int | None,
    scheduler: str | None,
    force: bool,
    held: locks.Locks,
    threads: int,
    desc: str,
) -> list[NotebookResult]:
    """Cached tasks first (no cluster is started when every task is cached), then the rest
    on Dask as their studies' locks allow."""
    results: list[NotebookResult] = []
    remaining = {t.entry.id: sum(1 for u in tasks if u.entry.id == t.entry.id) for t in tasks}
    seeded = any(t.seed is not None for t in tasks)
    progress = _Progress(len(tasks), desc)

    def finished(task: Task, result: NotebookResult) -> None:
        results.append(result)
        progress.done(result)
        remaining[task.entry.id] -= 1
        if remaining[task.entry.id] == 0 and not seeded:  # seeds: aggregated under the lock
            held.release(task.entry.id)

    queue: list[Task] = []
    for task in longest_first(tasks, out_root):
        if held.try_acquire(task.entry.id) and (hit := _cached(task, out_root, force)):
            finished(task, hit)
        else:
            queue.append(task)
    try:
        if queue:
            _run_on_dask(queue, out_root, jobs, timeout, scheduler, force, held, threads, progress, finished)
    finally:
        progress.close()
        _abandon_unfinished(tasks, results, out_root, held)
    return results


def expected_seconds(task: Task, out_root: Path) -> float:
    """How long ``task`` took last time: the wall time in its previous run record under
    ``out_root`` when that run used the same profile, else in the committed reference record
    (``results/<study>/record.json`` of the current folder), else 0 (unknown)."""
    _, _, final = staging.locations(out_root, task.entry.id, task.seed)
    profile = task.params.get("profile")
    reference = Path(RESULTS_DIR) / task.entry.id / "record.json"
    for record in (staging.read_record(final), _read_json(reference)):
        if record.get("profile") == profile and record.get("wall_time_s"):
            return float(record["wall_time_s"])
    return 0.0


def _read_json(path: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text(encoding="utf-8"))
    return {}


def longest_first(tasks: list[Task], out_root: Path) -> list[Task]:
    """The tasks in the order that finishes soonest on a few workers: longest expected first
    (list scheduling, LPT); ties, and studies never run before, keep the registry's order.
    The main job is two long notebooks and three short ones, so on 2 workers starting the
    two long ones first keeps one worker from idling at the end."""
    expected = {t.id: expected_seconds(t, out_root) for t in tasks}
    return sorted(tasks, key=lambda t: -expected[t.id])


def _next_ready(
    queue: list[Task], held: locks.Locks, out_root: Path, force: bool, finished, progress: _Progress
) -> Task | None:
    """Pop the first queued task whose study lock this run holds or can take now (a cached
    one is finished on the spot); None when every queued study is locked by another run."""
    for task in list(queue):
        if not held.try_acquire(task.entry.id):
            progress.waiting(task.entry.id, held.get(task.entry.id).holder())
            continue
        queue.remove(task)
        hit = _cached(task, out_root, force)  # another run may have just made it
        if hit:
            finished(task, hit)
            continue
        return task
    return None


def _run_on_dask(
    queue: list[Task],
    out_root: Path,
    jobs: int,
    timeout: int | None,
    scheduler: str | None,
    force: bool,
    held: locks.Locks,
    threads: int,
    progress: _Progress,
    finished,
) -> None:
    if cluster.scheduler_address(scheduler) is None:
        cluster.warm_up()  # the workers' forkserver imports while the cluster starts
    with cluster.connect(scheduler, max(1, min(jobs, len(queue)))) as client:
        t0 = time.perf_counter()
        # At most one notebook per worker thread at a time, submitted as slots free up: a task
        # sent ahead queues on a busy worker (each notebook is its own task group, so the
        # scheduler does not hold it back), and a worker that dies fails everything it holds
        # (allowed-failures 0), innocent queued notebooks included.
        slots = max(1, sum(client.nthreads().values()))
        in_flight: dict[Any, Task] = {}
        try:
            while queue or in_flight:
                while len(in_flight) < slots and queue:
                    task = _next_ready(queue, held, out_root, force, finished, progress)
                    if task is None:
                        break
                    future = client.submit(
                        run_one,
                        str(task.entry.notebook),
                        task.params,
                        str(out_root),
                        False,
                        timeout,
                        task.entry.id,
                        task.seed,
                        task.cache_key,
                        threads,
                        pure=False,
                        key=f"{task.entry.id}-seed{task.seed}-{os.urandom(4).hex()}",
                    )
                    in_flight[future] = task
                if not in_flight:
                    if queue:
                        time.sleep(0.5)  # every queued study is being written by another run
                    continue
                done = [f for f in in_flight if f.done()]
                if not done:
                    time.sleep(0.2)  # polled: a run also waits on other runs' locks meanwhile
                for future in done:
                    task = in_flight.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # KilledWorker and friends: no result came back
                        saved = staging.pop_result(out_root, task.entry.id, task.seed)
                        result = (
                            NotebookResult(**saved)
                            if saved
                            else _died(task, exc, out_root, round(time.perf_counter() - t0, 1))
                        )
                    staging.pop_result(out_root, task.entry.id, task.seed)
                    finished(task, result)
        except BaseException:
            client.cancel(list(in_flight))
            raise


def _died(task: Task, exc: BaseException, out_root: Path, wall_s: float) -> NotebookResult:
    """A task that never returned (its worker died): report it failed with the last words."""
    words, failed = staging.last_words(out_root, task.entry.id, task.seed)
    return NotebookResult(
        task.entry.notebook.name,
        task.entry.id,
        "failed",
        wall_s,
        0,
        str(failed or ""),
        None,
        f"the worker running this notebook died: {type(exc).__name__}: {exc}{words}",
        task.run_params,
        task.seed,
    )


def _abandon_unfinished(tasks: list[Task], results: list[NotebookResult], out_root: Path, held: locks.Locks) -> None:
    """After an interruption: clean up the staging of tasks that did not finish, but only of
    studies this run holds the lock of; a task still waiting for its study's lock must leave
    the staging folder of the run that holds it alone (that run is writing it)."""
    done = {(r.study, r.seed) for r in results}
    for task in [t for t in tasks if t.id not in done and held.holds(t.entry.id)]:
        staging.abandon(out_root, task.entry.id, task.seed)
        staging.pop_result(out_root, task.entry.id, task.seed)


def _aggregate(entry: studies.Study, seeds: list[int], results: list[NotebookResult], out_root: Path) -> NotebookResult:
    """One summary row per study: the seed spread table and figure (labkit.run.seeds)."""
    from labkit.run import seeds as seeds_mod  # pandas and plotly: only after a --seeds run

    done = {r.seed for r in results if r.study == entry.id and r.status not in FAILED_STATUSES}
    dirs = {s: staging.locations(out_root, entry.id, s)[2] for s in seeds if s in done}
    t0 = time.perf_counter()
    name = f"{entry.notebook.name} [seeds {','.join(map(str, seeds))}]"
    try:
        if not dirs:
            raise LabkitError("no seed finished")
        written = seeds_mod.aggregate(entry.id, dirs, out_dir=out_root / entry.id)
    except Exception as exc:
        return NotebookResult(
            name,
            entry.id,
            "failed",
            0.0,
            error=f"aggregate across seeds: {type(exc).__name__}: {exc}",
        )
    status = "ok" if len(dirs) == len(seeds) else "partial"
    return NotebookResult(
        name,
        entry.id,
        status,
        round(time.perf_counter() - t0, 1),
        len(written),
        str(out_root / entry.id),
        warnings=[f"failed: seed {s} did not finish" for s in seeds if s not in dirs],
    )
