"""Load any causal LM (a labkit tiny LM, a local folder, an HF name) through the model registry."""

from __future__ import annotations

from typing import Any

from labkit.device import compute_dtype, resolve_device
from labkit.errors import ModelError
from labkit.models import resolve


def load_causal_lm(name_or_path: str, device: str = "auto", dtype: Any = None):
    """``(model, tokenizer)`` in eval mode on the package's device, safetensors only.

    ``name_or_path``: ``"labkit/tiny-lm-<hash>"``, a local folder, or any HF causal-LM name
    available offline (resolved by :func:`labkit.models.resolve`). A missing tokenizer pad
    token is set to EOS so batched evaluation works.

    ``device``: ``"auto"`` is the device rule (:func:`labkit.device.resolve_device`: a
    notebook's ``device`` parameter / ``$LABKIT_DEVICE``, else CUDA when there is one).
    ``dtype``: ``None`` keeps the checkpoint's weights (float32 for labkit's models), which
    training needs (mixed precision keeps float32 master weights); ``"auto"`` casts to the
    device rule's compute dtype (:func:`labkit.device.compute_dtype`: bfloat16 on a CUDA device
    with bf16 support and mixed precision on) for measurement-only use; or a ``torch.dtype``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    placed = resolve_device(device)  # a bad device fails here, before any weights are read
    if isinstance(dtype, str) and dtype == "auto":
        dtype = compute_dtype(placed)
    ref = resolve(str(name_or_path))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(ref.path), use_safetensors=True)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(
            f"model {name_or_path!r} at {ref.path} is not a causal LM transformers "
            f"can load: {str(exc).splitlines()[0][:200]}"
        ) from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(ref.path))
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(
            f"model {name_or_path!r} at {ref.path} has no loadable tokenizer: {str(exc).splitlines()[0][:200]}"
        ) from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if dtype is None:
        model.to(placed)
    else:
        model.to(device=placed, dtype=dtype)
    model.eval()
    return model, tokenizer
