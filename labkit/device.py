"""One device rule for the whole package, the dtype that goes with it, and device sync.

Every load, train and measure path asks :func:`resolve_device` instead of defaulting to
``"cpu"``: an explicit choice (a function argument or a notebook's ``device`` parameter) wins,
then ``$LABKIT_DEVICE``, then CUDA when torch sees one, then Apple's MPS, then the CPU (the
only place labkit falls back to ``"cpu"``). Mixed precision follows the device
(:func:`compute_dtype`): bfloat16 on a CUDA device that supports it, float32 elsewhere, and
``$LABKIT_MIXED_PRECISION=0`` (a notebook's ``mixed_precision=False``) turns it off. The run
record names both (:func:`describe`), so every number says where it was measured.
:func:`synchronize` is the one wait-for-the-device used by every timer (:mod:`labkit.timing`).
"""

from __future__ import annotations

import os
from typing import Any

from labkit.errors import ParameterError

AUTO = "auto"
ENV = "LABKIT_DEVICE"
MIXED_PRECISION_ENV = "LABKIT_MIXED_PRECISION"
FALLBACK = "cpu"
_KINDS = ("cpu", "cuda", "mps")
#: the accepted spellings, in words (the grammar is :func:`device_problem`)
DEVICE_FORMS = "auto, cpu, cuda, cuda:N, mps"
#: how many threads this process may keep busy; ``labkit run`` sets it in every kernel (the
#: cores divided by ``--jobs``, or ``--threads``), so two notebooks side by side never run
#: more busy threads than there are cores (oversubscribed OpenMP pools spin and lose several
#: times their share)
THREADS_ENV = "LABKIT_THREADS"
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on", "")


def cpu_threads() -> int:
    """Threads this process may use: ``$LABKIT_THREADS`` (set by ``labkit run``), else the
    older ``$LABKIT_TORCH_THREADS``, else every core. Torch pools (:func:`labkit.training.use_torch_threads`)
    and process pools (the scaling fit's joblib workers) are both sized by it."""
    for name in (THREADS_ENV, "LABKIT_TORCH_THREADS"):
        value = os.environ.get(name, "").strip()
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return max(1, os.cpu_count() or 1)


def device_problem(value: str) -> str | None:
    """Why ``value`` is not a device name labkit accepts, or None (no torch needed).

    >>> device_problem("cuda:1"), device_problem("tpu")
    (None, 'must be one of auto, cpu, cuda, cuda:N, mps')
    """
    kind, _, index = str(value).strip().lower().partition(":")
    if kind == AUTO and not index:
        return None
    if kind not in _KINDS or (index and not (kind == "cuda" and index.isdigit())) or (":" in str(value) and not index):
        return f"must be one of {DEVICE_FORMS}"
    return None


def resolve_device(preference: str | None = AUTO) -> str:
    """``"auto"``/None -> ``$LABKIT_DEVICE`` -> ``cuda`` -> ``mps`` -> ``cpu``; else checked.

    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("tpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    labkit.errors.ParameterError: device 'tpu' is not one of auto, cpu, cuda, cuda:N, mps ...
    """
    import torch

    choice = preference if preference not in (None, "", AUTO) else os.environ.get(ENV) or AUTO
    if choice == AUTO:
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return FALLBACK
    choice = str(choice).strip().lower()
    kind, _, index = choice.partition(":")
    if device_problem(choice):
        raise ParameterError(f"device {choice!r} is not one of {DEVICE_FORMS} (parameter `device` or ${ENV})")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ParameterError(
            f"device {choice!r} requested (parameter `device` or ${ENV}) but "
            "torch sees no CUDA device here; use 'auto' or 'cpu'"
        )
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ParameterError(
            f"device {choice!r} requested (parameter `device` or ${ENV}) but "
            f"torch sees {torch.cuda.device_count()} CUDA device(s)"
        )
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ParameterError(
            f"device {choice!r} requested (parameter `device` or ${ENV}) but "
            "torch sees no MPS device here; use 'auto' or 'cpu'"
        )
    return choice


def parse_mixed_precision(value: Any) -> bool:
    """A notebook's ``mixed_precision`` value: None -> ``$LABKIT_MIXED_PRECISION`` (default on).

    >>> parse_mixed_precision(False), parse_mixed_precision("on")
    (False, True)
    """
    if value is None:
        return mixed_precision_enabled()
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _OFF + _ON[:-1]:
        return value.strip().lower() in _ON
    raise ParameterError(f"parameter `mixed_precision` must be true, false or null, got {value!r}")


def mixed_precision_enabled() -> bool:
    """Whether bf16 mixed precision may be used: ``$LABKIT_MIXED_PRECISION`` (default on)."""
    raw = os.environ.get(MIXED_PRECISION_ENV, "").strip().lower()
    if raw in _OFF:
        return False
    if raw in _ON:
        return True
    raise ParameterError(f"${MIXED_PRECISION_ENV}={raw!r} is not 0/1/true/false")


def compute_dtype(device: str, mixed_precision: bool | None = None):
    """bfloat16 on a CUDA device with bf16 support when mixed precision is on, else float32.

    ``mixed_precision=None`` follows :func:`mixed_precision_enabled`.

    >>> compute_dtype("cpu")
    torch.float32
    """
    import torch

    if mixed_precision is None:
        mixed_precision = mixed_precision_enabled()
    if mixed_precision and str(device).startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).replace("torch.", "")


def describe(device: str | None = None, dtype=None, mixed_precision: bool | None = None) -> dict[str, Any]:
    """What the run record and the runner's summary say about where numbers were measured.

    ``device`` defaults to the device rule; ``dtype`` to :func:`compute_dtype` (the dtype
    mixed precision computes in); ``mixed_precision`` is the setting (the notebook parameter
    or ``$LABKIT_MIXED_PRECISION``). The record's ``mixed_precision`` says whether it is *in
    use*: on, and a device where the dtype is lower than float32 (never on a CPU).

    >>> describe("cpu", mixed_precision=True)
    {'device': 'cpu', 'name': 'CPU', 'dtype': 'float32', 'mixed_precision': False}
    """
    import torch

    device = resolve_device(device)
    if mixed_precision is None:
        mixed_precision = mixed_precision_enabled()
    dtype = dtype if dtype is not None else compute_dtype(device, mixed_precision)
    name = "CPU"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    elif str(device).startswith("mps"):
        name = "Apple MPS"
    return {
        "device": str(device),
        "name": name,
        "dtype": dtype_name(dtype),
        "mixed_precision": bool(mixed_precision) and dtype_name(dtype) != "float32",
    }


def as_torch_device(device: Any):
    """A ``torch.device`` from a device, a name, a model or a tensor (``None`` if unknown)."""
    import torch

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
    dev = getattr(device, "device", None)  # e.g. a SentenceTransformer or an HF pipeline
    return as_torch_device(dev) if dev is not None and dev is not device else None


def synchronize(device: Any = None) -> None:
    """Wait for queued work on ``device`` (a device, name, model or tensor) to finish.

    CUDA (and MPS) queue kernels asynchronously, so a clock read right after a forward pass
    times the launch, not the work; every timer calls this first. On CPU (or ``None``) it
    returns at once.
    """
    import torch

    dev = as_torch_device(device)
    if dev is None:
        return
    if dev.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(dev)
    elif dev.type == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        torch.mps.synchronize()


def use(device: str | None = None, mixed_precision: Any = None) -> dict[str, Any]:
    """Make a notebook's ``device`` / ``mixed_precision`` choice the package's, for this process.

    Both are checked first (a clear :class:`ParameterError` before any work), then written to
    ``$LABKIT_DEVICE`` / ``$LABKIT_MIXED_PRECISION``, which every loader, trainer and timer reads
    through :func:`resolve_device` and :func:`mixed_precision_enabled`, so no call in the
    notebook has to pass them on. Returns :func:`describe` of the choice (for the run record).
    """
    resolved = resolve_device(device)
    enabled = parse_mixed_precision(mixed_precision)
    os.environ[ENV] = resolved
    os.environ[MIXED_PRECISION_ENV] = "1" if enabled else "0"
    return describe(resolved, mixed_precision=enabled)
