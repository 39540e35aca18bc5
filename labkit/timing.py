"""Wall-clock timing that is honest on accelerators.

CUDA kernels run asynchronously: reading ``time.perf_counter()`` right after a forward pass
measures how long it took to *queue* the work, not to do it. Every timer in labkit therefore
synchronises the model's device before it reads the clock (a no-op on CPU), through the two
helpers here, so speed-ups compare finished work on every machine. The wait itself is
:func:`labkit.device.synchronize` (one implementation; ``timing.sync`` is the same function).
Only this module, the run record's and runner's whole-notebook wall time and the carbon
tracker read ``time.perf_counter()`` (``tests/test_timing.py`` checks).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from labkit.device import as_torch_device, resolve_device, synchronize

__all__ = ["sync", "Stopwatch", "timed"]

T = TypeVar("T")

#: The one device wait (kept here under its old name for callers of ``timing.sync``).
sync = synchronize


class Stopwatch:
    """Elapsed seconds between synchronised clock readings on one device.

    ``with Stopwatch(model) as sw: ...`` then ``sw.seconds``; or ``sw = Stopwatch(dev).start()``
    and ``sw.lap()`` for seconds since the last lap (prefill, then decode).

    ``device`` is where the timed work runs (a device, name, model or tensor); the default
    ``"auto"`` is the package's device rule (:func:`labkit.device.resolve_device`), so a timer
    that does not know the model still waits for the accelerator labkit is using.
    ``None`` never waits (for work that is not on a device: a curve fit, file I/O).
    """

    def __init__(self, device: Any = "auto"):
        if isinstance(device, str) and device == "auto":
            device = resolve_device()
        self.device = as_torch_device(device)
        self._start = self._last = None
        self.seconds = float("nan")

    def now(self) -> float:
        """``perf_counter`` after the device's queued work is done."""
        synchronize(self.device)
        return time.perf_counter()

    def start(self) -> Stopwatch:
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

    def __enter__(self) -> Stopwatch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def timed(fn: Callable[[], T], device: Any = "auto") -> tuple[T, float]:
    """Run ``fn()`` and return ``(result, seconds)``, synchronising ``device`` on both ends."""
    with Stopwatch(device) as sw:
        result = fn()
    return result, sw.seconds
