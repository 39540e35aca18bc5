"""One device rule for the whole package, and the dtype that goes with it.

Every load, train and measure path asks :func:`resolve_device` instead of defaulting to
``"cpu"``: an explicit choice (a function argument or a notebook's ``device`` parameter) wins,
then ``$LABKIT_DEVICE``, then CUDA when torch sees one, then Apple's MPS, then the CPU. Mixed
precision follows the device (:func:`compute_dtype`): bfloat16 on a CUDA device that supports
it, float32 elsewhere. The run record names both, so every number says where it was measured.
"""
from __future__ import annotations

import os
from typing import Any

from labkit.errors import ParameterError

AUTO = "auto"
ENV = "LABKIT_DEVICE"
_KINDS = ("cpu", "cuda", "mps")


def resolve_device(preference: str | None = AUTO) -> str:
    """``"auto"``/None -> ``$LABKIT_DEVICE`` -> ``cuda`` -> ``mps`` -> ``cpu``; else checked.

    >>> resolve_device("cpu")
    'cpu'
    """
    import torch

    choice = preference if preference not in (None, "", AUTO) else os.environ.get(ENV) or AUTO
    if choice == AUTO:
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    choice = str(choice)
    if choice.split(":")[0] not in _KINDS:
        raise ParameterError(f"device {choice!r} is not one of auto, cpu, cuda, cuda:N, mps "
                             f"(parameter `device` or ${ENV})")
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError(f"device {choice!r} requested (parameter `device` or ${ENV}) but "
                             "torch sees no CUDA device here; use 'auto' or 'cpu'")
    return choice


def compute_dtype(device: str, mixed_precision: bool = True):
    """bfloat16 on a CUDA device with bf16 support when ``mixed_precision``, else float32."""
    import torch

    if mixed_precision and str(device).startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def dtype_name(dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).replace("torch.", "")


def describe(device: str, dtype=None) -> dict[str, Any]:
    """What the run record and the runner's summary say about where numbers were measured."""
    import torch

    name = "CPU"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
    return {"device": str(device), "name": name,
            "dtype": dtype_name(dtype if dtype is not None else compute_dtype(device))}


def synchronize(device) -> None:
    """Wait for queued device work, so a clock read after it times the work, not the launch."""
    import torch

    kind = torch.device(device).type if not isinstance(device, torch.device) else device.type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()
