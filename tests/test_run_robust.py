"""``labkit run`` under real use (issue 26): two runs of one study, impossible folders, a
kernel killed from outside. Real processes, real kernels."""

import json
import os
import shutil
import subprocess
import sys
import time

import nbformat
import pytest
from test_runner import light_study

from labkit.run import cli, locks, plan, runner, staging, summary

psutil = pytest.importorskip("psutil")


def _cli(*argv: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "labkit.run.cli", "run", *argv],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_concurrent_runs_of_one_study_take_turns_and_no_wait_names_the_other(tmp_path):
    ext = light_study(tmp_path / "ext", "turns", "import time\ntime.sleep(4)")
    figs = tmp_path / "figs"
    env = {"LABKIT_STUDY_PATH": str(ext), "LABKIT_FIGURES_DIR": str(figs)}
    first = _cli("turns", "--profile", "smoke", "--force", "--no-gallery", env=env)
    deadline = time.time() + 60
    while not (figs / locks.LOCKS / "turns.json").is_file() and time.time() < deadline:
        time.sleep(0.1)
    t0 = time.perf_counter()
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "labkit.run.cli",
            "run",
            "turns",
            "--profile",
            "smoke",
            "--no-wait",
            "--no-gallery",
        ],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 2, refused.stderr
    assert f"pid {first.pid}" in refused.stderr and "another labkit run" in refused.stderr
    assert time.perf_counter() - t0 < 20  # imports and one lock attempt, on a loaded machine
    second = _cli("turns", "--profile", "smoke", "--force", "--no-gallery", env=env)
    out1, err1 = first.communicate(timeout=180)
    out2, err2 = second.communicate(timeout=180)
    assert first.returncode == 0 and second.returncode == 0, err1[-2000:] + err2[-2000:] + out2[-2000:]
    assert "waiting for turns" in err2
    record = json.loads((figs / "turns" / "run_record.json").read_text())
    assert sorted(p.name for p in (figs / "turns").iterdir()) == [
        "numbers.csv",
        "numbers.md",
        "run_record.json",
        "turns.ipynb",
    ]
    assert record["run_key"]["digest"]  # one complete run's outputs, key included
    assert not (figs / ".staging").exists()


@pytest.mark.parametrize("seed", [None, 0])
def test_a_finishing_run_leaves_the_fresh_staging_folder_of_the_next_run_alone(tmp_path, seed):
    """The flaky take-turns test, without the timing: run B took the study's lock as soon as
    run A let it go and made its (still empty) staging folder; A then tidies up on its way
    out. A used to remove every empty folder under .staging, so B's papermill failed at once:
    "output folder .staging/turns doesn't exist" (turns.ipynb: failed (0s))."""
    _, stage, _ = staging.locations(tmp_path, "turns", seed)
    stage.mkdir(parents=True)  # run B, under the study's lock (staging.prepare)
    staging.tidy(tmp_path)  # run A, finished, its lock already released
    assert stage.is_dir()
    (stage / ".turns.executing.ipynb").write_text("{}")  # B's papermill can save into it
    shutil.rmtree(stage)  # B promoted or abandoned it, under the lock
    staging.tidy(tmp_path)  # the shared folders go once empty
    assert not (tmp_path / staging.STAGING).exists()


def test_an_interrupted_waiting_run_does_not_abandon_the_staging_of_the_run_it_waits_for(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(light_study(tmp_path / "ext", "turns", "pass")))
    tasks = plan.plan(["turns"], "smoke")
    _, stage, _ = staging.prepare(tmp_path, "turns", None)  # the lock holder's notebook
    (stage / ".turns.executing.ipynb").write_text("{}")
    waiting = locks.Locks(tmp_path)  # never got the lock (Ctrl-C while waiting)
    runner._abandon_unfinished(tasks, [], tmp_path, waiting)
    assert (stage / ".turns.executing.ipynb").is_file()
    assert waiting.try_acquire("turns")
    runner._abandon_unfinished(tasks, [], tmp_path, waiting)  # its own: cleaned up
    assert not stage.exists()
    waiting.release_all()


def test_a_failure_says_why_on_stderr_as_it_happens(capsys):
    progress = runner._Progress(1, "labkit run (smoke)")
    progress.done(summary.NotebookResult("turns.ipynb", "turns", "failed", 0.0, error="FileNotFoundError: gone\n  tb"))
    progress.close()
    assert "labkit run: turns.ipynb failed: FileNotFoundError: gone" in capsys.readouterr().err


def test_a_dead_holder_is_taken_over_with_a_warning(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / locks.LOCKS).mkdir()
    (tmp_path / locks.LOCKS / "st.json").write_text(json.dumps({"pid": dead.pid, "started": "x"}))
    held = locks.Locks(tmp_path)
    assert held.try_acquire("st")
    assert held.warnings and f"pid {dead.pid}" in held.warnings[0]
    assert "took over the lock" in capsys.readouterr().err
    other = locks.Locks(tmp_path)
    assert not other.try_acquire("st")  # held by this process now
    held.release_all()
    assert other.try_acquire("st")
    other.release_all()


@pytest.mark.parametrize("case", ["under a file", "read-only"])
def test_an_impossible_figures_folder_fails_at_once_with_one_line(tmp_path, case):
    if case == "under a file":
        (tmp_path / "afile").write_text("x")
        target, why = tmp_path / "afile" / "figs", "is a file, so no folder can be made under it"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        (tmp_path / "ro").mkdir(mode=0o500)
        target, why = tmp_path / "ro", "is not writable"
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "labkit.run.cli", "run", "data_overview"],
        env={**os.environ, "LABKIT_FIGURES_DIR": str(target)},
        capture_output=True,
        text=True,
    )
    assert time.perf_counter() - t0 < 2.0
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "figures folder" in lines[0] and why in lines[0], done.stderr


def test_a_missing_data_mirror_and_an_unwritable_cache_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path / "figs"))
    monkeypatch.setenv("LABKIT_DATA_MIRROR", str(tmp_path / "nowhere"))
    assert cli.main(["run", "data_overview"]) == 2
    assert f"LABKIT_DATA_MIRROR entry {tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err
    monkeypatch.delenv("LABKIT_DATA_MIRROR")
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cachefile"))
    assert cli.main(["run", "data_overview"]) == 2
    assert "cache folder" in capsys.readouterr().err


@pytest.mark.slow
def test_a_kernel_killed_from_outside_is_explained_and_leaves_nothing_running(tmp_path, capsys, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import os, subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(300)'])\n"
            "open(os.environ['CHILD_PID_FILE'], 'w').write(str(child.pid))\n"
            "block = bytearray(200_000_000)"
        ),
        nbformat.v4.new_code_cell("import signal, time\ntime.sleep(1.5)\nos.kill(os.getpid(), signal.SIGKILL)"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "oom.ipynb"
    nbformat.write(nb, path)
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path / "figs"))
    monkeypatch.setenv("CHILD_PID_FILE", str(tmp_path / "child.pid"))
    assert cli.main(["run", str(path), "--no-gallery"]) == 1
    out = capsys.readouterr().out
    assert "the kernel died (signal 9: killed from outside, often out of memory) in cell 4 of 4" in out
    assert "peak memory" in out and "--jobs 1" in out
    assert "Traceback" not in out and "DeadKernelError" not in out
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the dead kernel's child {child} is still running")
    assert (tmp_path / "figs" / "oom" / "oom.failed.ipynb").is_file()
