"""Energy and carbon per task (per epoch, per inference batch) with codecarbon, offline.

codecarbon's online tracker geolocates over the network and silently assumes Canada when it
cannot; labkit always uses :class:`codecarbon.OfflineEmissionsTracker` with an explicit
country. Without RAPL counters (as on most VMs) codecarbon *estimates* CPU power from load and
the CPU's TDP; :attr:`Measurement.power_method` says which, so captions can say so.

Usage::

    with CarbonSession(country="USA") as session:
        for epoch in range(3):
            with session.task(f"epoch_{epoch}"):
                train_one_epoch()
    session.measurements  # one Measurement per task

or ``with measure("embed") as m: ...`` for a single task, or :class:`EpochCarbonCallback` for
a transformers / sentence-transformers Trainer.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import asdict, dataclass
from typing import Iterator

from labkit.timing import Stopwatch

DEFAULT_COUNTRY = os.environ.get("LABKIT_COUNTRY", "USA")

POWER_METHODS = {
    "intel_rapl": "measured (RAPL counters)",
    "cpu_load": "estimated from CPU load x TDP (no RAPL access)",
    "constant": "estimated as a constant share of TDP",
    "powergadget": "measured (Intel Power Gadget)",
    "apple_powermetrics": "measured (powermetrics)",
}


@dataclass
class Measurement:
    """Energy of one task. ``emissions_g`` = energy x the country's carbon intensity."""

    task: str
    duration_s: float
    energy_kwh: float
    emissions_g: float
    cpu_energy_kwh: float
    ram_energy_kwh: float
    gpu_energy_kwh: float
    power_method: str
    country: str

    def as_dict(self) -> dict:
        return asdict(self)


def _power_method(tracker) -> str:
    methods = []
    for hw in getattr(tracker, "_hardware", []):
        kind = type(hw).__name__
        if kind == "CPU":
            methods.append("CPU " + POWER_METHODS.get(getattr(hw, "_mode", ""), "unknown method"))
        elif kind == "GPU":
            methods.append("GPU measured (NVML)")
    methods.append("RAM estimated from installed memory")
    return "; ".join(methods)


class CarbonSession:
    """One codecarbon tracker; any number of named, non-overlapping tasks inside it."""

    def __init__(self, country: str = DEFAULT_COUNTRY, measure_power_secs: float = 1.0):
        self.country = country
        self.measure_power_secs = measure_power_secs
        self.measurements: list[Measurement] = []
        self._tracker = None
        self.power_method = "not started"

    def __enter__(self) -> "CarbonSession":
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after import: it sets its own

        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country, output_methods=[], log_level="error",
            measure_power_secs=self.measure_power_secs, allow_multiple_runs=True)
        self._tracker.start()
        self.power_method = _power_method(self._tracker)
        return self

    def __exit__(self, *exc) -> None:
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                self._tracker.stop()
            self._tracker = None

    def start_task(self, name: str) -> None:
        # the stopwatch waits for work already queued on the device, so it is not billed here
        self._task_name, self._task_clock = name, Stopwatch().start()
        self._tracker.start_task(name)

    def stop_task(self) -> Measurement:
        wall = self._task_clock.stop()  # waits for the task's queued device work first
        data = self._tracker.stop_task()
        m = Measurement(task=self._task_name, duration_s=float(data.duration or wall),
                        energy_kwh=float(data.energy_consumed), emissions_g=float(data.emissions) * 1000,
                        cpu_energy_kwh=float(data.cpu_energy), ram_energy_kwh=float(data.ram_energy),
                        gpu_energy_kwh=float(data.gpu_energy), power_method=self.power_method,
                        country=self.country)
        self.measurements.append(m)
        return m

    @contextlib.contextmanager
    def task(self, name: str) -> Iterator[list[Measurement]]:
        """Measure the ``with`` body as task ``name``; the result is appended to measurements."""
        self.start_task(name)
        try:
            yield self.measurements
        finally:
            self.stop_task()

    def total(self) -> dict:
        """Sums over all tasks so far (for the run record)."""
        return {"energy_kwh": sum(m.energy_kwh for m in self.measurements),
                "emissions_g": sum(m.emissions_g for m in self.measurements),
                "duration_s": sum(m.duration_s for m in self.measurements),
                "tasks": len(self.measurements), "power_method": self.power_method,
                "country": self.country}


@contextlib.contextmanager
def measure(name: str = "task", country: str = DEFAULT_COUNTRY) -> Iterator[list[Measurement]]:
    """Measure one block; the yielded list holds its :class:`Measurement` after the block."""
    with CarbonSession(country) as session, session.task(name):
        yield session.measurements


def epoch_callback(session: CarbonSession):
    """A transformers ``TrainerCallback`` that measures every training epoch as a task.

    Works with ``transformers.Trainer`` and sentence-transformers' trainer (which is one).
    Epoch ``k`` is recorded as task ``epoch_<k>`` (1-based) in ``session.measurements``.
    """
    from transformers import TrainerCallback

    class EpochCarbonCallback(TrainerCallback):
        def __init__(self):
            self.epoch = 0

        def on_epoch_begin(self, args, state, control, **kwargs):
            self.epoch += 1
            session.start_task(f"epoch_{self.epoch}")

        def on_epoch_end(self, args, state, control, **kwargs):
            session.stop_task()

    return EpochCarbonCallback()
