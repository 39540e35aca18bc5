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
