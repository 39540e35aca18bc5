"""Dask distributed for labkit: start or join a cluster, and map independent tasks over it.

Why Dask: ``labkit run`` (notebook x parameter set x seed) and the scaling sweep (one tiny
model per size x budget) are independent units that a second machine can run as well as this
one. By default an embedded :class:`distributed.LocalCluster` (one worker process per job, one
thread each, so ``--jobs 2`` on 2 cores behaves as the old process pool); with
``--scheduler tcp://host:8786`` or ``$LABKIT_DASK_SCHEDULER`` an existing cluster. Workers of a
real cluster need the same labkit installed and the same paths for the data mirror/cache and
the figures folder (shared storage: NFS or similar).

A kernel never joins the runner's embedded cluster by itself: a notebook task that waits on
sweep tasks submitted to the cluster it occupies can deadlock (every worker thread waiting),
so :func:`map_tasks` uses only a client it is given or an explicit ``$LABKIT_DASK_SCHEDULER``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from labkit.errors import LabkitError, ParameterError

SCHEDULER_ENV = "LABKIT_DASK_SCHEDULER"
PARENT_ENV = "LABKIT_RUN_PARENT_PID"
ENV_KEYS = "LABKIT_RUN_ENV_KEYS"
CONNECT_TIMEOUT_S = 5.0


def scheduler_address(scheduler: str | None = None) -> str | None:
    """The scheduler to join: the argument, else ``$LABKIT_DASK_SCHEDULER``, else None (local)."""
    address = (scheduler or os.environ.get(SCHEDULER_ENV) or "").strip()
    return address or None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast, with the address in the message, before distributed retries for its timeout."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme not in ("tcp", "tls", "ws", "wss"):
        return  # inproc:// or a custom comm: let distributed decide
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number
        raise ParameterError(
            f"Dask scheduler address {address!r} is malformed ({exc}); expected e.g. tcp://host:8786"
        ) from None
    if not host or port is None:
        raise ParameterError(
            f"Dask scheduler address {address!r} is malformed: expected e.g. tcp://host:8786 (host and port)"
        )
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise ParameterError(
            f"Dask scheduler {address!r} is unreachable ({exc.strerror or exc}); "
            f"start one (`dask scheduler`) or unset --scheduler/${SCHEDULER_ENV} "
            "to run on an embedded local cluster"
        ) from None


def _local_cluster(jobs: int):
    """The embedded cluster: ``jobs`` worker processes, one thread each, no dashboard.

    Worker processes get this process's environment unchanged (distributed would otherwise
    pin OMP/MKL/OpenBLAS to 1 thread, which would slow each notebook's kernel relative to the
    old process pool); memory_limit=0 because the kernels, not the workers, hold the memory; and
    a worker that dies fails its task at once (allowed-failures 0) instead of re-running a
    notebook that may kill the next worker too.

    Workers start through a forkserver that has imported distributed, papermill and the runner
    once: spawned workers would each import them afresh (seconds per worker on a busy 2-core
    machine, most of the Dask path's overhead over the old fork-based pool), while forking from
    this multi-threaded process is unsafe. The forkserver exits with this process.
    """
    import dask
    from distributed import LocalCluster

    settings = {
        "distributed.nanny.pre-spawn-environ": {
            "MALLOC_TRIM_THRESHOLD_": 65536,
            "OMP_NUM_THREADS": None,
            "MKL_NUM_THREADS": None,
            "OPENBLAS_NUM_THREADS": None,
        },
        "distributed.scheduler.allowed-failures": 0,
        # one task per worker thread: a worker that dies takes only its running notebook
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.worker.daemon": False,  # workers start kernels (child processes)
        "distributed.logging.distributed": "error",
        "distributed.worker.multiprocessing-method": "forkserver",
    }
    with dask.config.set(settings), warnings.catch_warnings():
        warm_up()
        # the scheduler's HTTP routes fall back to a free port when 8787 is taken: not news
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        return LocalCluster(
            n_workers=jobs,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            memory_limit=0,
            silence_logs=50,
            env=_environment(),
            preload=["labkit.cluster"],
        )


def warm_up() -> None:
    """Start the workers' forkserver now; it imports its modules while this process goes on
    (``labkit run`` checks the notebooks' parameters meanwhile). Idle, it exits with us."""
    import multiprocessing
    from multiprocessing import forkserver

    import dask
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # lets distributed set its preload first; ours replaces it
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["labkit.run.execute", "distributed", "papermill", "labkit.cluster"]
    )
    forkserver.ensure_running()


def _environment() -> dict[str, str]:
    """This process's environment for the workers, exactly (set in :func:`dask_setup`).

    Forked from a forkserver that may have started earlier in this process, a worker would
    otherwise see the environment of that moment (a test's or notebook's later LABKIT_* change
    would not reach the kernels); the key list lets the worker drop variables unset since.
    """
    env = {**os.environ, PARENT_ENV: str(os.getpid())}
    env[ENV_KEYS] = json.dumps(sorted(env))
    return env


@contextlib.contextmanager
def connect(scheduler: str | None = None, jobs: int = 1, timeout: float = CONNECT_TIMEOUT_S) -> Iterator[Any]:
    """Yield a :class:`distributed.Client`: the named scheduler, or an embedded LocalCluster.

    Args:
        scheduler: address such as ``tcp://host:8786``; default ``$LABKIT_DASK_SCHEDULER``.
        jobs: worker processes of the embedded cluster (ignored for a named scheduler).
        timeout: seconds to wait for a named scheduler before one ParameterError.
    """
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParameterError(f"jobs: expected an integer >= 1, got {jobs!r}")
    from distributed import Client

    address = scheduler_address(scheduler)
    if address:
        check_reachable(address, timeout)
        try:
            client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except Exception as exc:  # timeouts, refusals, or a server that is not a scheduler
            raise ParameterError(
                f"Dask scheduler {address!r} is unreachable or not a Dask scheduler: {type(exc).__name__}: {exc}"
            ) from None
        try:
            yield client
        finally:
            client.close()
        return
    try:
        cluster = _local_cluster(jobs)
    except Exception as exc:  # e.g. a worker that cannot start: one line, not a traceback
        raise LabkitError(
            f"could not start a local Dask cluster of {jobs} worker(s): {type(exc).__name__}: {exc}"
        ) from exc
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    except BaseException:  # interrupted or failed: stop workers and kernels now, do not wait
        for nanny in list(cluster.workers.values()):
            with contextlib.suppress(Exception):
                if nanny.pid:
                    kill_tree(nanny.pid)
        raise
    finally:
        _close_quietly(client, cluster)


def _close_quietly(client, cluster) -> None:
    """Close client and cluster; on an interrupted run, kill workers rather than wait on them."""
    import logging

    log = logging.getLogger("distributed")
    level = log.level
    log.setLevel(logging.CRITICAL)  # workers going away is expected now
    try:
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        with contextlib.suppress(Exception):
            cluster.close(timeout=10)
    finally:
        log.setLevel(level)


def map_tasks(fn: Callable[[Any], Any], items: Iterable[Any], desc: str, client: Any | None = None) -> list:
    """``[fn(item) for item in items]`` as Dask tasks, with a tqdm bar, results in input order.

    Runs on ``client`` if given, else on the cluster named by ``$LABKIT_DASK_SCHEDULER``, else
    in this process one after another (never on the runner's embedded cluster, see the module
    docstring). A failing task raises :class:`LabkitError` naming the item and the remote error
    (a LabkitError from the task keeps its type); the remaining tasks are cancelled.
    """
    from tqdm.auto import tqdm

    items = list(items)
    if client is None and scheduler_address() is None:
        out = []
        for item in tqdm(items, desc=desc, unit="task"):
            try:
                out.append(fn(item))
            except Exception as exc:
                raise _task_error(desc, item, exc) from exc
        return out
    if client is None:
        with connect() as joined:
            return map_tasks(fn, items, desc, client=joined)

    from distributed import as_completed

    futures = [
        client.submit(fn, item, pure=False, key=f"{desc}-{i}-{os.urandom(4).hex()}") for i, item in enumerate(items)
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(items)
    with tqdm(total=len(items), desc=desc, unit="task") as bar:
        for future in as_completed(futures, loop=client.loop):
            i = index[future.key]
            try:
                results[i] = future.result()
            except Exception as exc:
                client.cancel(futures)
                raise _task_error(desc, items[i], exc) from exc
            bar.update()
    return results


def _task_error(desc: str, item: Any, exc: BaseException) -> LabkitError:
    cls = type(exc) if isinstance(exc, LabkitError) else LabkitError
    message = f"{desc}: the task for {item!r} failed: {type(exc).__name__}: {exc}"
    try:
        return cls(message)
    except TypeError:  # a LabkitError subclass with another signature
        return LabkitError(message)


# ----------------------------------------------------------------- workers die with the run
def watch_parent(parent_pid: int | None = None, interval_s: float = 0.5) -> None:
    """Exit this process (and kill its children, e.g. kernels) once ``parent_pid`` is gone.

    Why a polling thread and not ``prctl(PR_SET_PDEATHSIG)``: the kernel sends that signal when
    the *thread* that forked us exits, and both distributed and ProcessPoolExecutor start
    worker processes from short-lived helper threads, which would kill a healthy worker
    mid-notebook; polling ``os.getppid()`` follows the process, and works beyond Linux.
    (distributed also exits its workers when the nanny's pipe closes; kernels exit on their own
    when their worker goes, through ipykernel's parent poller; this covers the pool engine and
    kills kernels at once instead of a second later.)
    """
    import psutil

    parent = parent_pid or os.getppid()
    direct = os.getppid() == parent  # else a grandparent: poll its existence instead

    def alive() -> bool:
        return os.getppid() == parent if direct else psutil.pid_exists(parent)

    def poll() -> None:
        while alive():
            time.sleep(interval_s)
        kill_children()
        os._exit(1)

    threading.Thread(target=poll, name="labkit-parent-watch", daemon=True).start()


def kill_children(sig: int | None = None) -> None:
    """Send ``sig`` (default SIGKILL) to every descendant of this process (kernels, workers)."""
    kill_tree(os.getpid(), sig, include_root=False)


def kill_tree(pid: int, sig: int | None = None, include_root: bool = True) -> None:
    """Send ``sig`` (default SIGKILL) to process ``pid`` and all its descendants.

    Descendants are collected first (a kernel started by jupyter_client sits in a session of
    its own, so a process-group signal would miss it), then the root is signalled last.
    """
    import signal

    import psutil

    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + ([root] if include_root else [])
    except psutil.Error:
        return
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig if sig is not None else signal.SIGKILL)


def dask_setup(worker: Any) -> None:  # noqa: ARG001 - distributed's preload hook
    """Preload hook of the embedded cluster's workers: take the ``labkit run`` process's
    environment exactly, and die with that process."""
    keys = os.environ.pop(ENV_KEYS, None)
    if keys:
        wanted = set(json.loads(keys))
        for key in [k for k in os.environ if k not in wanted]:
            del os.environ[key]
    pid = os.environ.get(PARENT_ENV)
    if pid and pid.isdigit():
        watch_parent(int(pid))
