"""Energy and carbon per task (per epoch, per inference batch) with codecarbon, offline.

codecarbon's online tracker geolocates over the network and silently assumes Canada when it
cannot; labkit always uses :class:`codecarbon.OfflineEmissionsTracker` with an explicit
country. Without RAPL counters (as on most VMs) codecarbon *estimates* CPU power from load and
the CPU's TDP; :attr:`Measurement.power_method` says which, so captions can say so.

An estimate from load x TDP is wall time x a modelled power (a near-constant number of watts
for a CPU-bound job), not a measurement of what the model costs: a table that shows it as
"energy" beside a measured number misleads. :func:`energy_basis` turns a power method into
``"estimated"`` / ``"measured"`` / ``"partly measured"``, :func:`energy_label` into a short
table value and :func:`energy_caption` into a caption sentence, so every study names the
estimate the same way and puts seconds first where it is one.

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
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from labkit.timing import Stopwatch

DEFAULT_COUNTRY = os.environ.get("LABKIT_COUNTRY", "USA")

POWER_METHODS = {
    "intel_rapl": "measured (RAPL counters)",
    "cpu_load": "estimated from CPU load x TDP (no RAPL access)",
    "constant": "estimated as a constant share of TDP",
    "powergadget": "measured (Intel Power Gadget)",
    "apple_powermetrics": "measured (powermetrics)",
}


ESTIMATED, MEASURED, PARTLY_MEASURED = "estimated", "measured", "partly measured"


def energy_basis(power_method: str) -> str:
    """``"measured"`` when every compute part (CPU, GPU) is read from a power counter (RAPL,
    NVML, powermetrics), ``"estimated"`` when none is, ``"partly measured"`` otherwise. RAM is
    always estimated from installed memory by codecarbon and does not decide it.

    >>> energy_basis("CPU estimated from CPU load x TDP (no RAPL access); RAM estimated from installed memory")
    'estimated'
    >>> energy_basis("CPU measured (RAPL counters); GPU measured (NVML); RAM estimated from installed memory")
    'measured'
    >>> energy_basis("CPU estimated from CPU load x TDP (no RAPL access); GPU measured (NVML); "
    ...              "RAM estimated from installed memory")
    'partly measured'
    """
    parts = [p.strip() for p in str(power_method).split(";") if p.strip()]
    compute = [p for p in parts if not p.startswith("RAM")]
    measured = ["measured" in p for p in compute]
    if not compute or not any(measured):
        return ESTIMATED
    return MEASURED if all(measured) else PARTLY_MEASURED


def energy_label(power_method: str) -> str:
    """A short table value: ``"estimated (CPU load x TDP)"``, ``"measured (RAPL)"``, ...

    >>> energy_label("CPU estimated from CPU load x TDP (no RAPL access); RAM estimated from installed memory")
    'estimated (CPU load x TDP)'
    >>> energy_label("CPU measured (RAPL counters); GPU measured (NVML); RAM estimated from installed memory")
    'measured (RAPL, NVML)'
    """
    basis = energy_basis(power_method)
    method = str(power_method)
    sources = [
        name
        for key, name in (
            ("RAPL", "RAPL"),
            ("NVML", "NVML"),
            ("Power Gadget", "Power Gadget"),
            ("powermetrics", "powermetrics"),
        )
        if key in method and f"no {key}" not in method
    ]
    estimates = [
        name
        for key, name in (("CPU load x TDP", "CPU load x TDP"), ("constant share of TDP", "constant share of TDP"))
        if key in method
    ]
    if basis == ESTIMATED:
        return f"estimated ({', '.join(estimates) or 'no power counter'})"
    if basis == MEASURED:
        return f"measured ({', '.join(sources)})"
    return f"partly measured ({', '.join(sources)}; {', '.join(estimates) or 'rest estimated'})"


def energy_caption(power_method: str) -> str:
    """One caption sentence saying what the energy numbers are.

    >>> energy_caption("CPU estimated from CPU load x TDP (no RAPL access); RAM estimated from installed memory")[:60]
    'Energy is estimated, not measured: no power counter is reada'
    """
    basis = energy_basis(power_method)
    if basis == ESTIMATED:
        return (
            "Energy is estimated, not measured: no power counter is readable here "
            f"({power_method}), so it is seconds x a modelled power and ranks systems as "
            "their seconds do; read seconds first."
        )
    if basis == MEASURED:
        return f"Energy measured ({power_method})."
    return f"Energy partly measured ({power_method}); the estimated parts are seconds x a modelled power."


def mean_power_w(energy_kwh: float, seconds: float) -> float:
    """The average power a measurement implies (W): for an estimate from load x TDP this is
    close to one constant, which is how a reader tells an estimate from a measurement."""
    return float(3.6e6 * energy_kwh / seconds) if seconds and seconds > 0 else float("nan")


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

    @property
    def basis(self) -> str:
        """``"estimated"`` / ``"measured"`` / ``"partly measured"`` (:func:`energy_basis`)."""
        return energy_basis(self.power_method)

    @property
    def mean_power_w(self) -> float:
        return mean_power_w(self.energy_kwh, self.duration_s)


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

    def open(self) -> CarbonSession:
        """Start the tracker (what ``with`` does), for a session that spans notebook cells;
        end it with :meth:`close`."""
        return self.__enter__()

    def close(self) -> None:
        """Stop the tracker; the measurements stay."""
        self.__exit__(None, None, None)

    def __enter__(self) -> CarbonSession:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # after import: it sets its own

        self._tracker = OfflineEmissionsTracker(
            country_iso_code=self.country,
            output_methods=[],
            log_level="error",
            measure_power_secs=self.measure_power_secs,
            allow_multiple_runs=True,
        )
        self._tracker.start()
        self.power_method = _power_method(self._tracker)
        return self

    def __exit__(self, *exc) -> None:
        if self._tracker is not None:
            with contextlib.suppress(Exception):
                self._tracker.stop()
            self._tracker = None

    @property
    def basis(self) -> str:
        """What this session's energy numbers are (:func:`energy_basis`)."""
        return energy_basis(self.power_method)

    @property
    def label(self) -> str:
        """Short table value (:func:`energy_label`)."""
        return energy_label(self.power_method)

    @property
    def caption(self) -> str:
        """Caption sentence (:func:`energy_caption`)."""
        return energy_caption(self.power_method)

    def start_task(self, name: str) -> None:
        # the stopwatch waits for work already queued on the device, so it is not billed here
        self._task_name, self._task_clock = name, Stopwatch().start()
        self._tracker.start_task(name)

    def stop_task(self) -> Measurement:
        wall = self._task_clock.stop()  # waits for the task's queued device work first
        data = self._tracker.stop_task()
        m = Measurement(
            task=self._task_name,
            duration_s=float(data.duration or wall),
            energy_kwh=float(data.energy_consumed),
            emissions_g=float(data.emissions) * 1000,
            cpu_energy_kwh=float(data.cpu_energy),
            ram_energy_kwh=float(data.ram_energy),
            gpu_energy_kwh=float(data.gpu_energy),
            power_method=self.power_method,
            country=self.country,
        )
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
        """Sums over all tasks so far (for the run record), with ``basis`` ("estimated",
        "measured" or "partly measured") beside the power method, so the record names an
        estimate as one."""
        return {
            "energy_kwh": sum(m.energy_kwh for m in self.measurements),
            "emissions_g": sum(m.emissions_g for m in self.measurements),
            "duration_s": sum(m.duration_s for m in self.measurements),
            "tasks": len(self.measurements),
            "power_method": self.power_method,
            "basis": self.basis,
            "country": self.country,
        }


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
