"""Wall-clock timing that is honest on accelerators.

CUDA kernels run asynchronously: reading ``time.perf_counter()`` right after a forward pass
measures how long it took to *queue* the work, not to do it. Every timer in labkit therefore
synchronises the model's device before it reads the clock (a no-op on CPU), through the two
helpers here, so speed-ups compare finished work on every machine.
"""
from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

import torch

__all__ = ["sync", "Stopwatch", "timed"]

T = TypeVar("T")


def _as_device(device: Any) -> torch.device | None:
    """A ``torch.device`` from a device, a string, a model or a tensor (``None`` if unknown)."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        return torch.device(device)
    if torch.is_tensor(device):
        return device.device
    if isinstance(device, torch.nn.Module):
        param = next(device.parameters(), None)
        return None if param is None else param.device
    dev = getattr(device, "device", None)
    return _as_device(dev) if dev is not None and dev is not device else None


def sync(device: Any = None) -> None:
    """Wait until queued work on ``device`` (a device, name, model or tensor) has finished.

    Only CUDA (and MPS) queue work asynchronously; on CPU this returns at once.
    """
    dev = _as_device(device)
    if dev is None:
        return
    if dev.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(dev)
    elif dev.type == "mps" and hasattr(torch, "mps") and torch.backends.mps.is_available():
        torch.mps.synchronize()


class Stopwatch:
    """Elapsed seconds between synchronised clock readings on one device.

    ``with Stopwatch(model) as sw: ...`` then ``sw.seconds``; or ``sw = Stopwatch(dev).start()``
    and ``sw.lap()`` for seconds since the last lap (prefill, then decode).
    """

    def __init__(self, device: Any = None):
        self.device = _as_device(device)
        self._start = self._last = None
        self.seconds = float("nan")

    def now(self) -> float:
        """``perf_counter`` after the device's queued work is done."""
        sync(self.device)
        return time.perf_counter()

    def start(self) -> "Stopwatch":
        self._start = self._last = self.now()
        return self

    def lap(self) -> float:
        """Seconds since :meth:`start` or the previous lap."""
        if self._last is None:
            self.start()
            return 0.0
        t = self.now()
        elapsed, self._last = t - self._last, t
        self.seconds = t - self._start
        return elapsed

    def stop(self) -> float:
        """Total seconds since :meth:`start` (also kept in ``.seconds``)."""
        self.lap()
        return self.seconds

    def __enter__(self) -> "Stopwatch":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def timed(fn: Callable[[], T], device: Any = None) -> tuple[T, float]:
    """Run ``fn()`` and return ``(result, seconds)``, synchronising ``device`` on both ends."""
    with Stopwatch(device) as sw:
        result = fn()
    return result, sw.seconds
