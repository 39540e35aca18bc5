"""Load any causal LM (a labkit tiny LM, a local folder, an HF name) through the model registry."""
from __future__ import annotations

from labkit.errors import ModelError


def load_causal_lm(name_or_path: str, device: str = "auto"):
    """``(model, tokenizer)`` in eval mode, safetensors only.

    ``name_or_path``: ``"labkit/tiny-lm-<hash>"``, a local folder, or any HF causal-LM name
    available offline (resolved by :func:`labkit.models.resolve`). A missing tokenizer pad
    token is set to EOS so batched evaluation works.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from labkit.models import pick_device, resolve

    ref = resolve(str(name_or_path))
    try:
        model = AutoModelForCausalLM.from_pretrained(str(ref.path), use_safetensors=True)
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(f"model {name_or_path!r} at {ref.path} is not a causal LM transformers "
                         f"can load: {str(exc).splitlines()[0][:200]}") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(ref.path))
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(f"model {name_or_path!r} at {ref.path} has no loadable tokenizer: "
                         f"{str(exc).splitlines()[0][:200]}") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(pick_device(device))
    model.eval()
    return model, tokenizer
