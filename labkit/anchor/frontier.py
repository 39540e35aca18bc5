"""The KV-budget frontier: AnLLM's anchor cache against training-free KV compression (kvpress).

Why: the AnLLM paper compares its anchor cache only with a full cache and with recompute. A
reader's first question is whether anchor training beats the training-free compression they
could apply to the model they already have, at the same memory. This module answers it on
equal terms:

* one set of held-out k-shot prompts (:func:`labkit.anchor.prompts.kshot_prompts`: k
  demonstrations of real held-out text, then an open query). Anchor methods read the
  demonstrations closed by ``<AC>`` (AC) or as they are (EP: the periods are the anchors); the
  full cache and the presses read the same text without ``<AC>``;
* the context (demonstrations) is encoded once per method: full cache; anchor cache (anchor
  prefill, pruned to anchors + the open sentence); or a kvpress press keeping a set share
  (:mod:`labkit.anchor.presses`), on a sweep of shares and at each anchor method's own measured
  share of that very prompt;
* the scored tokens are the same for every method: the query tokens, teacher-forced one decode
  step at a time through the kept cache (the first from the prefill's last logits);
* the budget is the K/V bytes in the cache tensors right after the prefill, over the full
  cache of the same prompt. Prefill and query seconds are wall clock, synchronised on the
  model's device, per prompt (tables give medians over prompts).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch

from labkit.anchor.anchors import AnchorSpec, anchor_token_ids
from labkit.anchor.frontier_names import (
    DEFAULT_BUDGETS,
    FULL,
    NO_FAR_CONTEXT,
    OWN,
    TRAINED_FULL,
    budget_label,
    check_budgets,
)
from labkit.anchor.frontier_report import (
    frontier_figure,
    frontier_headline,
    frontier_summary,
    headline_text,
    paired_comparison,
)
from labkit.anchor.presses import PRESSES, check_presses, press_failed, run_anchor, run_cache
from labkit.anchor.prompts import DEMO_SEPARATOR, KShotPrompt, kshot_prompts
from labkit.anchor.study import train_config
from labkit.anchor.support import kv_bytes_per_token, max_positions, model_device
from labkit.anchor.training import train_anchor_lm
from labkit.errors import DataError, ModelError, ParameterError

__all__ = [
    "DEFAULT_BUDGETS",
    "NO_FAR_CONTEXT",
    "anchor_methods",
    "encode",
    "frontier_table",
    "frontier_summary",
    "paired_comparison",
    "frontier_headline",
    "headline_text",
    "frontier_figure",
    "budget_label",
]


def encode(tokenizer, prompt: KShotPrompt, spec: AnchorSpec | None) -> tuple[list[int], list[int]]:
    """``(context ids, query ids)`` of one prompt for one model. The context is the
    demonstrations, each closed by ``<AC>`` when ``spec`` is AC, joined and followed by the
    separator; the query is encoded on its own, so its tokens are the same for every method."""
    closed = [d + spec.ac_token if spec is not None and spec.mode == "ac" else d for d in prompt.demonstrations]
    context = DEMO_SEPARATOR.join(closed) + DEMO_SEPARATOR
    return (
        tokenizer.encode(context, add_special_tokens=False),
        tokenizer.encode(prompt.query, add_special_tokens=False),
    )


def anchor_methods(
    cfg: dict, setup: dict, modes: Sequence[str] = ("ac",), *, progress: bool = False, carbon=None
) -> dict[str, tuple]:
    """``label -> (model, tokenizer, spec)`` of the anchor methods: ``AnLLM-AC`` / ``AnLLM-EP``
    for each of ``modes`` (the setup's own anchor-trained model, or one trained / loaded from the
    model cache with the same recipe in the other mode) and the base model through the anchor
    cache of the profile's mode (what the continued training buys)."""

    spec, out = setup["spec"], {}
    for mode in modes:
        if mode not in ("ac", "ep"):
            raise ParameterError(f"frontier_modes: unknown anchor mode {mode!r}; choices: ac, ep")
        if mode == spec.mode:
            model, tokenizer = setup["models"]["anchor-trained"]
            out[f"AnLLM-{mode.upper()}"] = (model, tokenizer, spec)
            continue
        tcfg = train_config({**cfg, "mode": mode})
        trained = train_anchor_lm(setup["base_name"], tcfg, progress=progress, carbon=carbon)
        out[f"AnLLM-{mode.upper()}"] = (*trained.load(dtype="auto"), tcfg.spec)
    base_model, base_tokenizer = setup["models"]["base"]
    out["base + anchor cache"] = (base_model, base_tokenizer, spec)
    return out


# --------------------------------------------------------------------------- the sweep
def _fitting_prompts(
    base: tuple,
    anchors: Mapping[str, tuple],
    documents: Sequence[str],
    k: int,
    n_prompts: int,
    demo_tokens: int,
    query_tokens: int,
    seed: int,
) -> list[KShotPrompt]:
    """The first ``n_prompts`` prompts whose context + query fit every model's context window.

    Demonstrations are at least ``demo_tokens`` long but end on a sentence boundary, so a
    k-shot prompt can overrun a model's context; twice as many candidates are drawn (when the
    held-out text has them) and those that do not fit are skipped, the same for every method.
    """

    spec0 = next(iter(anchors.values()))[2] if anchors else AnchorSpec(mode="ac")
    try:
        candidates = kshot_prompts(documents, base[1], spec0, k, 2 * n_prompts, demo_tokens, query_tokens, seed)
    except DataError:
        candidates = kshot_prompts(documents, base[1], spec0, k, n_prompts, demo_tokens, query_tokens, seed)
    users = [(base[0], base[1], None)] + list(anchors.values())
    limits = [max_positions(m) for m, _, _ in users]
    fit = [
        p
        for p in candidates
        if all(lim is None or sum(map(len, encode(tok, p, spec))) <= lim for (_, tok, spec), lim in zip(users, limits))
    ]
    if len(fit) < n_prompts:
        raise ParameterError(
            f"only {len(fit)} of {len(candidates)} {k}-shot prompts fit in the models' "
            f"context of {min([x for x in limits if x] or [0])} tokens, {n_prompts} were asked "
            "for: lower demo_tokens, frontier_k or frontier_prompts"
        )
    return fit[:n_prompts]


def frontier_table(
    base: tuple,
    anchors: Mapping[str, tuple],
    documents: Sequence[str],
    *,
    k: int = 5,
    n_prompts: int = 20,
    demo_tokens: int = 64,
    query_tokens: int = 12,
    budgets: Iterable[float] = DEFAULT_BUDGETS,
    presses: Iterable[str] | None = None,
    seed: int = 0,
    chunk: int | None = None,
    warn: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per (method, budget, prompt): KV bytes kept, kept share, query NLL / correct
    count, prefill and query seconds.

    Args:
        base: ``(model, tokenizer)`` of the base model (full cache and every press).
        anchors: ``label -> (model, tokenizer, spec)`` (:func:`anchor_methods`).
        documents: held-out documents the prompts are cut from.
        budgets: kept shares of the press sweep; presses also run at each anchor method's
            own kept share of each prompt (budget ``"= <label>"``).
        presses: kvpress press names (:data:`labkit.anchor.presses.PRESSES`; None = all).
        chunk: tokens per anchor-prefill forward (None: :func:`labkit.anchor.prefill_chunk`).
        warn: called with ``"failed: press <name>: <reason>"`` when a press fails on this
            model; that press is left out and the others go on (default: raise).
    """
    names = check_presses(presses)
    shares = check_budgets(budgets)
    if not isinstance(n_prompts, int) or n_prompts < 2:
        raise ParameterError(f"n_prompts must be an int >= 2 (bootstrap over prompts), got {n_prompts!r}")
    base_model, base_tok = base
    prompts = _fitting_prompts(base, anchors, documents, k, n_prompts, demo_tokens, query_tokens, seed)
    device = model_device(base_model)
    plain = [encode(base_tok, p, None) for p in prompts]
    rows: list[dict] = []

    def add(method, kind, budget, target, p, length, per_tok, result):
        rows.append(
            {
                "method": method,
                "kind": kind,
                "budget": budget,
                "target_share": target,
                "prompt": p,
                "context_tokens": length,
                "query_tokens": len(plain[p][1]),
                "kv_bytes_full": per_tok * length,
                "kept_share": result["kv_bytes"] / (per_tok * length),
                **result,
            }
        )

    base_per_tok = kv_bytes_per_token(base_model)
    ids_of = [torch.tensor([c], device=device) for c, _ in plain]
    run_cache(base_model, ids_of[0], plain[0][1], None, None)  # warm-up, untimed
    for p, (ctx, query) in enumerate(plain):
        add(
            "full cache",
            FULL,
            FULL,
            1.0,
            p,
            len(ctx),
            base_per_tok,
            run_cache(base_model, ids_of[p], query, None, None),
        )
    matched: dict[str, list[int]] = {}  # budget label -> press kept tokens per prompt
    for label, (model, tok, spec) in anchors.items():
        ids_set, per_tok = anchor_token_ids(tok, spec), kv_bytes_per_token(model)
        dev = model_device(model)
        kept = []
        for p, prompt in enumerate(prompts):
            ctx, query = encode(tok, prompt, spec)
            if query != plain[p][1]:
                raise ModelError(
                    f"{label}: its tokenizer encodes query {p} differently from the "
                    "base tokenizer; the frontier needs the same scored tokens"
                )
            ids = torch.tensor([ctx], device=dev)
            if p == 0:
                run_anchor(model, ids, ids_set, query, chunk)  # warm-up, untimed
            result = run_anchor(model, ids, ids_set, query, chunk)
            add(label, OWN, OWN, math.nan, p, len(ctx), per_tok, result)
            if model is not base_model:
                add(
                    f"{label}, full cache",
                    TRAINED_FULL,
                    FULL,
                    1.0,
                    p,
                    len(ctx),
                    per_tok,
                    run_cache(model, ids, query, None, None),
                )
            share = result["kv_bytes"] / (per_tok * len(ctx))
            kept.append(max(1, min(len(plain[p][0]), round(share * len(plain[p][0])))))
        if kept not in matched.values():
            matched[f"= {label}"] = kept
    for name in names:
        start = len(rows)
        try:
            for p, (ctx, query) in enumerate(plain):
                L = len(ctx)
                todo = [(budget_label(s), s, max(1, round(s * L))) for s in shares]
                todo += [(b, kept[p] / L, kept[p]) for b, kept in matched.items()]
                for budget, target, n_kept in todo:
                    add(
                        PRESSES[name][0],
                        "press",
                        budget,
                        target,
                        p,
                        L,
                        base_per_tok,
                        run_cache(base_model, ids_of[p], query, name, n_kept),
                    )
        except Exception as exc:  # noqa: BLE001 - a press kvpress cannot run here is a warning
            del rows[start:]
            press_failed(name, exc, warn)
    return pd.DataFrame(rows)
