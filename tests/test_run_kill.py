"""``labkit run`` stops when told: SIGKILL or SIGTERM of the command leaves no worker or kernel
behind, and the study's previous good outputs untouched (issue 14, item 3).

A throwaway study whose notebook sleeps is started with ``python -m labkit.run.cli run`` in a
session of its own; once its kernel runs, every descendant is noted, the command is signalled,
and each noted process must be gone within 15 s.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

psutil = pytest.importorskip("psutil")

pytestmark = pytest.mark.slow


def slow_study(folder: Path) -> Path:
    folder.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("profile = None\nseed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import os, time\nprint('kernel', os.getpid(), flush=True)\ntime.sleep(120)"),
        nbformat.v4.new_code_cell("import labkit.notebook\nlabkit.notebook.end(None)"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / "sleepy.ipynb")
    (folder / "study.json").write_text(
        json.dumps({"id": "sleepy", "title": "Sleeps", "notebook": "sleepy.ipynb", "tables": []})
    )
    return folder


def _kernels(proc: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in proc.children(recursive=True):
        try:
            if "ipykernel" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:
            pass
    return found


def _survivors(pids: set[int]) -> list[str]:
    alive = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{pid} {' '.join(p.cmdline())[:80]}")
        except psutil.Error:
            pass
    return alive


@pytest.fixture
def started(tmp_path):
    """A ``labkit run sleepy`` whose kernel is running; yields (process, figures, descendants)."""
    figs = tmp_path / "figs"
    good = figs / "sleepy"
    good.mkdir(parents=True)
    (good / "run_record.json").write_text('{"study": "sleepy", "marker": "previous good run"}')
    env = {
        **os.environ,
        "LABKIT_STUDY_PATH": str(slow_study(tmp_path / "study")),
        "LABKIT_FIGURES_DIR": str(figs),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "labkit.run.cli",
        "run",
        "sleepy",
        "--profile",
        "smoke",
        "--jobs",
        "1",
    ]
    # Ctrl-C as a terminal delivers it: a test run started in the background (`nohup ... &`,
    # a non-interactive shell's `&`) inherits SIGINT *ignored*, and Python then installs no
    # KeyboardInterrupt handler in the child, so the SIGINT case would wait forever
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    while not _kernels(parent) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert _kernels(parent), f"no kernel started: {proc.communicate(timeout=10)[0][-2000:]}"
    time.sleep(1.0)  # let the kernel reach the sleeping cell
    pids = {p.pid for p in parent.children(recursive=True)}
    try:
        yield proc, figs, pids
    finally:
        for pid in pids | {proc.pid}:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        proc.communicate(timeout=30)


def _wait_gone(pids: set[int], seconds: float = 15.0) -> list[str]:
    deadline = time.time() + seconds
    while _survivors(pids) and time.time() < deadline:
        time.sleep(0.2)
    return _survivors(pids)


def test_sigkill_of_labkit_run_leaves_no_worker_or_kernel(started):
    proc, figs, pids = started
    assert len(pids) >= 2  # at least a worker and its kernel
    t0 = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    assert _wait_gone(pids) == [], "processes outlived the killed run"
    print(f"all {len(pids)} descendants gone {time.time() - t0:.1f} s after SIGKILL")
    record = json.loads((figs / "sleepy" / "run_record.json").read_text())
    assert record["marker"] == "previous good run"
    assert not (figs / "sleepy" / "sleepy.ipynb").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_sigint_stop_everything_clean_staging_and_keep_the_failed_notebook(started, sig):
    proc, figs, pids = started
    os.kill(proc.pid, sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out[-2000:]
    assert "interrupted" in out
    assert _wait_gone(pids) == []
    folder = figs / "sleepy"
    assert json.loads((folder / "run_record.json").read_text())["marker"] == "previous good run"
    assert sorted(p.name for p in folder.iterdir()) == ["run_record.json", "sleepy.failed.ipynb"]
    failed = nbformat.read(folder / "sleepy.failed.ipynb", as_version=4)
    assert failed.metadata["papermill"]["output_path"] == "<figures>/sleepy/sleepy.failed.ipynb"
    assert not (figs / ".staging").exists()
