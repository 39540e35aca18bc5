"""Execute one notebook: papermill in this process, its own kernel, outputs through staging.

This runs inside a Dask worker (or in-process for one notebook). What it adds to papermill:

- the kernel gets the staging folder as ``LABKIT_FIGURES_DIR`` (and the run's thread budget)
  through a kernel-manager class, never through ``os.environ`` (shared by a worker's threads);
- kernels talk over IPC sockets (Unix domain sockets, readable only by this user) instead of
  unencrypted TCP on localhost, so ipykernel has nothing to warn about;
- a kernel that dies (the OOM killer, ``kill -9``) is explained in one line: the signal, the
  cell it was running, its peak memory, what to try; whatever it had started is killed too;
- a finished run gets its cache key written into its run record before it is promoted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labkit.device import THREADS_ENV  # how the runner tells a kernel its threads
from labkit.run import cache, staging
from labkit.run.summary import NotebookResult


def _failing_cell(exc: Exception) -> tuple[int | None, str]:
    count = getattr(exc, "exec_count", None)
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return count, f"{name}: {value}"
    return None, f"{type(exc).__name__}: {exc}"


class KernelWatch:
    """The kernel's process: its exit status and peak memory (sampled every ``interval_s``),
    and the processes it started, for after it died."""

    def __init__(self, interval_s: float = 0.5):
        self.interval_s = interval_s
        self.process = None  # the kernel's subprocess.Popen
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sockets: Path | None = None

    def socket_folder(self) -> Path:
        """A private folder for the kernel's IPC sockets (0700, removed by :meth:`stop`)."""
        if self._sockets is None:
            self._sockets = Path(tempfile.mkdtemp(prefix="labkit-kernel-"))
        return self._sockets

    def started(self, process) -> None:
        self.process = process
        threading.Thread(target=self._sample, name="labkit-kernel-memory", daemon=True).start()

    def _sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.process.pid)
        except psutil.Error:
            return
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                rss = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(recursive=True))
                self.peak_rss = max(self.peak_rss, rss)
            if self._stop.wait(self.interval_s):
                break

    def stop(self) -> None:
        self._stop.set()
        if self._sockets is not None and (self.process is None or self.process.poll() is not None):
            shutil.rmtree(self._sockets, ignore_errors=True)  # a live kernel keeps its sockets

    def returncode(self) -> int | None:
        if self.process is None:
            return None
        with contextlib.suppress(Exception):
            self.process.wait(timeout=2)
        return self.process.returncode

    def kill_leftovers(self) -> int:
        """Kill every process still in the dead kernel's session (jupyter_client starts each
        kernel as a session leader, so its children keep its session id when orphaned)."""
        import psutil

        if self.process is None:
            return 0
        sid, killed = self.process.pid, 0
        for proc in psutil.process_iter(["pid"]):
            with contextlib.suppress(psutil.Error, OSError):
                if proc.pid != os.getpid() and os.getsid(proc.pid) == sid:
                    proc.kill()
                    killed += 1
        return killed


def kernel_manager(env: dict[str, str], watch: KernelWatch) -> type:
    """A kernel-manager class whose kernels get ``env`` on top of this process's environment,
    talk over IPC, and report their process to ``watch``.

    Why a class: nbclient takes only a class; and why not ``os.environ``: every thread of a
    Dask worker shares it, so two notebooks in one worker would race on LABKIT_FIGURES_DIR.
    """
    from jupyter_client.manager import AsyncKernelManager

    class StagedKernelManager(AsyncKernelManager):
        def __init__(self, *args: Any, **kwargs: Any):
            kwargs.setdefault("transport", "ipc")
            # each kernel's sockets in a private folder: the default name ("kernel-ipc" in the
            # working folder) is the same for every kernel, and two kernels started at once
            # would then read each other's messages ("Invalid Signature")
            kwargs.setdefault("ip", str(watch.socket_folder() / "kernel"))
            super().__init__(*args, **kwargs)

        async def start_kernel(self, **kw: Any) -> None:
            kw["env"] = {**os.environ, **(kw.get("env") or {}), **env}
            await super().start_kernel(**kw)
            watch.started(getattr(self.provisioner, "process", None))

    return StagedKernelManager


def _signal_name(code: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(code).name
    return f"signal {code}"


def death_message(returncode: int | None, running: str, peak_rss: int) -> str:
    """One line for a kernel that died, with what to try.

    >>> print(death_message(-9, "cell 7 of 20 ('fit = sweep(cfg)')", 3 * 2**30))
    ... # doctest: +NORMALIZE_WHITESPACE
    died (signal 9: killed from outside, often out of memory) in cell 7 of 20
    ('fit = sweep(cfg)'), peak memory 3.0 GiB; try a smaller profile (--profile smoke),
    fewer notebooks at once (--jobs 1), or more memory
    """
    if returncode is not None and returncode < 0:
        sig = -returncode
        why = "killed from outside, often out of memory" if sig == signal.SIGKILL else _signal_name(sig)
        what = f"died (signal {sig}: {why})"
    elif returncode is not None:
        what = f"died (exit status {returncode})"
    else:
        what = "died (exit status unknown)"
    where = f" in {running}" if running else ""
    memory = f", peak memory {peak_rss / 2**30:.1f} GiB" if peak_rss else ""
    return (
        f"{what}{where}{memory}; try a smaller profile (--profile smoke), fewer notebooks "
        "at once (--jobs 1), or more memory"
    )


def _outputs(final: Path) -> int:
    if not final.is_dir():
        return 0
    return sum(1 for p in final.iterdir() if p.suffix in (".png", ".html", ".csv", ".md"))


def run_one(
    notebook: str,
    parameters: dict[str, Any],
    out_root: str,
    progress: bool = False,
    timeout: int | None = None,
    study: str | None = None,
    seed: int | None = None,
    key: dict[str, Any] | None = None,
    threads: int | None = None,
) -> NotebookResult:
    """Execute one notebook. Never raises a notebook's error (KeyboardInterrupt still
    propagates, after :func:`labkit.run.staging.abandon`).

    Outputs go to ``<out_root>/<study>/`` (or ``.../seeds/seed-<seed>/`` with ``seed``, which
    also sets the notebook's ``seed`` parameter) through a staging folder; the kernel starts
    in the notebook's own folder, so an external study's relative paths work. ``key`` (the
    run cache's, :func:`labkit.run.cache.key_for`) is written into the run record; ``threads``
    caps the kernel's thread pools (``OMP_NUM_THREADS``, torch, BLAS, joblib).
    """
    import papermill as pm

    nb = Path(notebook)
    study = study or nb.stem
    out_root_p = Path(out_root).resolve()
    params = dict(parameters) if seed is None else {**parameters, "seed": seed}
    root, stage, final = staging.prepare(out_root_p, study, seed)  # the study's lock is held
    partial = stage / f".{study}.executing.ipynb"
    env = {"LABKIT_FIGURES_DIR": str(root), "LABKIT_BATCH": "1"}
    if threads:
        env.update(
            {
                THREADS_ENV: str(threads),
                "OMP_NUM_THREADS": str(threads),
                "MKL_NUM_THREADS": str(threads),
                "OPENBLAS_NUM_THREADS": str(threads),
            }
        )
    watch = KernelWatch()
    t0 = time.perf_counter()
    try:
        with open(staging.log_path(root, study), "w", encoding="utf-8", buffering=1) as log:
            pm.execute_notebook(
                str(nb),
                str(partial),
                parameters=params,
                kernel_name="python3",
                progress_bar=progress,
                cwd=str(nb.parent),
                execution_timeout=timeout,
                stdout_file=log,
                stderr_file=log,
                kernel_manager_class=kernel_manager(env, watch),
            )
        status, cell, error = "ok", None, ""
    except Exception as exc:  # a failing notebook is a result, not a crash of the runner
        cell, error = _failing_cell(exc)
        status = "failed"
        if type(exc).__name__ == "DeadKernelError":
            watch.stop()
            error = "the kernel " + death_message(
                watch.returncode(), staging.running_cell(partial, last_started=True), watch.peak_rss
            )
            watch.kill_leftovers()
        elif not getattr(exc, "ename", None):
            error += "\n" + traceback.format_exc(limit=3)
    except BaseException:
        watch.stop()
        staging.abandon(out_root_p, study, seed)
        raise
    finally:
        watch.stop()
    record, warnings = {}, []
    if status == "ok":
        try:
            staging.write_portable(partial, stage / f"{study}.ipynb", out_root_p, final)
            record = staging.read_record(stage)
            if key and record:
                cache.stamp(stage, key)
            warnings = [str(w) for w in record.get("warnings", [])]
            status = "partial" if any(w.startswith("failed:") for w in warnings) else "ok"
            staging.promote(stage, final, root)
            executed = final / f"{study}.ipynb"
        except OSError as exc:  # the outputs could not be moved into place: say where
            status, error = "failed", f"could not move the outputs into {final}: {exc}"
            executed = staging.abandon(out_root_p, study, seed)  # None: it failed before any cell ran
    else:
        executed = staging.abandon(out_root_p, study, seed)  # None: it failed before any cell ran
    staging.log_path(root, study).unlink(missing_ok=True)
    result = NotebookResult(
        nb.name,
        study,
        status,
        round(time.perf_counter() - t0, 1),
        _outputs(final),
        str(executed) if executed else "",
        cell,
        error,
        params,
        seed,
        staging.device_text(record),
        warnings,
    )
    staging.write_result(out_root_p, study, seed, asdict(result))
    return result
