"""Held-out loss and parameter counts of causal LMs (any HF causal LM, not only labkit's)."""

from __future__ import annotations

import math

from labkit.errors import ParameterError


def count_parameters(model) -> tuple[int, int]:
    """``(non_embedding, total)`` unique parameters (tied weights counted once).

    Non-embedding excludes the token (and learned position) embeddings and an untied LM head,
    as in Kaplan et al.'s N.
    """
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    embedding_ids = set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None and getattr(module, "weight", None) is not None:
            embedding_ids.add(id(module.weight))
    import torch

    for mod in model.modules():  # learned absolute position embeddings (GPT-2 style)
        if isinstance(mod, torch.nn.Embedding) and id(mod.weight) not in embedding_ids:
            embedding_ids.add(id(mod.weight))
    emb = sum(p.numel() for p in model.parameters() if id(p) in embedding_ids)
    # parameters() yields each tied tensor once, so emb counts tied embeddings once too
    return total - emb, total


def max_context(model) -> int | None:
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_context(model, context_length: int) -> None:
    """One :class:`ParameterError` when ``context_length`` is not a window ``model`` can score."""
    if not isinstance(context_length, int) or context_length < 2:
        raise ParameterError(f"context_length must be an int >= 2, got {context_length!r}")
    limit = max_context(model)
    if limit is not None and context_length > limit:
        raise ParameterError(
            f"context_length {context_length} is longer than the model's context (max_position_embeddings = {limit})"
        )


def heldout_loss(
    model, tokenizer, text: str, context_length: int, max_tokens: int | None = None, batch_size: int = 8
) -> float:
    """Mean next-token cross-entropy (nats/token) of ``text`` in non-overlapping windows.

    The text is tokenized without special tokens and cut into ``context_length`` windows; the
    first token of each window has no context and is not scored. ``max_tokens`` caps the
    tokens read (from the start, deterministic).
    """
    check_context(model, context_length)
    if not text or not text.strip():
        raise ParameterError("heldout_loss got empty text")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if max_tokens is not None:
        ids = ids[:max_tokens]
    return heldout_loss_ids(model, ids, context_length, batch_size=batch_size)


def heldout_loss_ids(model, ids, context_length: int, batch_size: int = 8) -> float:
    """:func:`heldout_loss` of an already tokenized stream (a caller scoring many models on
    the same text tokenizes it once)."""
    import torch

    ids = [int(i) for i in ids]
    check_context(model, context_length)
    if len(ids) < 2:
        raise ParameterError(f"text has {len(ids)} token(s); need at least 2 to score")
    windows = [ids[i : i + context_length] for i in range(0, len(ids), context_length)]
    windows = [w for w in windows if len(w) >= 2]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        # full windows batched; a shorter tail window on its own
        full = [w for w in windows if len(w) == len(windows[0])]
        rest = [w for w in windows if len(w) != len(windows[0])]
        groups = [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [[w] for w in rest]
        for group in groups:
            x = torch.tensor(group, dtype=torch.long, device=device)
            logits = model(input_ids=x).logits[:, :-1].float()
            target = x[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="sum"
            )
            nll += float(loss)
            count += target.numel()
    if was_training:
        model.train()
    return nll / count if count else math.nan
