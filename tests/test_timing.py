"""labkit.timing: synchronised clocks (CUDA is faked here only to see that it is synchronised)."""

from __future__ import annotations

import time

import pytest
import torch

from labkit import timing


def test_stopwatch_and_timed_measure_finished_work():
    result, seconds = timing.timed(lambda: time.sleep(0.05) or 7, "cpu")
    assert result == 7 and 0.045 <= seconds < 1.0
    with timing.Stopwatch(torch.nn.Linear(2, 2)) as sw:
        time.sleep(0.02)
        first = sw.lap()
        time.sleep(0.03)
    assert 0.015 <= first < sw.seconds and sw.seconds >= 0.045


def test_sync_waits_for_cuda_before_the_clock(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    timing.sync("cpu")
    timing.sync(None)
    assert calls == []
    _, seconds = timing.timed(lambda: None, torch.device("cuda", 0))
    assert calls == [torch.device("cuda", 0)] * 2 and seconds >= 0
    timing.sync("cuda:0")
    assert len(calls) == 3


@pytest.mark.parametrize("device", [torch.zeros(1), torch.nn.Linear(1, 1), "cpu"])
def test_sync_accepts_tensors_models_and_names(device):
    timing.sync(device)  # CPU: returns at once


def test_one_synchronize_and_the_default_stopwatch_waits_for_the_rule_device(monkeypatch):
    from labkit import device

    assert timing.sync is device.synchronize
    calls = []
    monkeypatch.setenv(device.ENV, "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    with timing.Stopwatch():  # no device given: the device rule's (CUDA, faked)
        pass
    assert calls == [torch.device("cuda")] * 2
    with timing.Stopwatch(None):  # explicitly no device work (a scipy fit): never waits
        pass
    assert len(calls) == 2


# Whole-notebook wall time (records, the runner) is not device work; timing.py is the helper itself.
CLOCK_ALLOWED = {"timing.py", "records.py", "run/runner.py", "run/execute.py"}
CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "monotonic_ns", "time", "time_ns"}


def test_every_timing_path_in_labkit_uses_the_timer_helper():
    """No module of labkit reads a clock itself (``time.perf_counter()`` and friends, called or
    imported), so every measured duration goes through Stopwatch/timed and waits for the device."""
    import ast
    from pathlib import Path

    root = Path(timing.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in CLOCK_ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in CLOCKS
                and isinstance(node.value, ast.Name)
                and node.value.id == "time"
            ):
                offenders.append(f"{rel}:{node.lineno} time.{node.attr}")
            elif (
                isinstance(node, ast.ImportFrom) and node.module == "time" and any(a.name in CLOCKS for a in node.names)
            ):
                offenders.append(f"{rel}:{node.lineno} from time import ...")
    assert not offenders, "read the clock through labkit.timing (Stopwatch/timed): " + ", ".join(offenders)
