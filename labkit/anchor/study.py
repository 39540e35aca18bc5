"""Measurements of study 2 (``notebooks/anchor_attention.ipynb``, ``benchmarks/anchor_inference.py``).

Every number comes from running real models (labkit's tiny LM trained on real text, or any HF
causal LM) on held-out real text:

* :func:`kv_cache_table`: KV-cache bytes of a full cache vs the anchor-pruned cache after
  k-shot prompts (the bytes are those of the actual tensors in the pruned ``DynamicCache``);
* :func:`kept_anchor_examples`: per token, anchor or not, kept or not (for the explorer);
* :func:`quality_table`: held-out perplexity and next-token accuracy, full attention vs
  anchor inference through the *pruned cache* (not merely the mask, unlike the official code);
* :func:`headline` / :func:`results_table`: the measured values against the study's targets.

The study's other parts live in their own modules and are re-exported here, so the notebook
reaches everything as ``study.<name>``: :mod:`labkit.anchor.latency` (interleaved timing, speed-ups
with bootstrap intervals), :mod:`labkit.anchor.fewshot` (k-shot accuracy) and
:mod:`labkit.anchor.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from labkit import io, records
from labkit.anchor.anchors import (
    AnchorSpec,
    add_anchor_token,
    anchor_flags,
    anchor_token_ids,
    insert_anchor_tokens,
)
from labkit.anchor.cache import anchor_prefill
from labkit.anchor.fewshot import FEWSHOT_TASKS, fewshot_accuracy, fewshot_items, fewshot_panel
from labkit.anchor.figures import figure1, figure1_caption, latency_figure, memory_throughput_figure
from labkit.anchor.latency import latency_sweep, speedup_table
from labkit.anchor.prompts import kshot_prompts
from labkit.anchor.recall import RecallProbe, probe_vocab
from labkit.anchor.recall_lm import train_recall_lm
from labkit.anchor.support import kv_bytes_per_token, max_positions
from labkit.anchor.targets import TARGETS, headline, kv_summary, results_table
from labkit.anchor.teacher_forced import anchor_cache_logits
from labkit.anchor.training import AnchorTrainConfig, train_anchor_lm
from labkit.lm import TinyLMConfig, corpus_documents, load_causal_lm, train_tiny_lm
from labkit.paths import study_dir
from labkit.timing import Stopwatch

__all__ = [
    "kv_cache_table",
    "kept_anchor_examples",
    "save_kept_anchors",
    "latency_sweep",
    "speedup_table",
    "quality_table",
    "fewshot_items",
    "fewshot_accuracy",
    "fewshot_panel",
    "figure1",
    "figure1_caption",
    "latency_figure",
    "memory_throughput_figure",
    "train_config",
    "setup_models",
    "recall_probe",
    "headline",
    "results_table",
    "kv_summary",
    "FEWSHOT_TASKS",
    "STUDY",
    "TARGETS",
]

STUDY = "anchor_attention"


# --------------------------------------------------------------------------- KV cache size
@torch.no_grad()
def kv_cache_table(
    model,
    tokenizer,
    spec: AnchorSpec,
    documents: Sequence[str],
    ks: Iterable[int] = (1, 2, 3, 4, 5),
    n_prompts: int = 3,
    demo_tokens: int = 64,
    query_tokens: int = 12,
    seed: int = 0,
) -> pd.DataFrame:
    """KV-cache size after encoding k-shot prompts: full cache vs anchor-pruned cache.

    One row per (k, prompt); ``kv_bytes_anchor`` is measured on the pruned cache tensors,
    ``kv_bytes_full`` is bytes/token x prompt tokens (what a full ``DynamicCache`` holds).
    """
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    rows = []
    for k in ks:
        for p, prompt in enumerate(
            kshot_prompts(
                documents,
                tokenizer,
                spec,
                k,
                n_prompts,
                demo_tokens,
                query_tokens,
                seed + k,
                max_tokens=max_positions(model),
            )
        ):
            ids = torch.tensor([tokenizer.encode(prompt.text, add_special_tokens=False)])
            flags = anchor_flags(ids, ids_set)
            state = anchor_prefill(model, ids, flags, open_limit=None)
            n = ids.shape[1]
            kept = int(state.kept_tokens[0])
            rows.append(
                {
                    "demonstrations": k,
                    "prompt": p,
                    "prompt_tokens": n,
                    "anchors": int(flags.sum()),
                    "kept_tokens": kept,
                    "kv_bytes_full": per_tok * n,
                    "kv_bytes_anchor": state.kv_bytes(),
                    "kv_reduction": 1 - state.kv_bytes() / (per_tok * n),
                }
            )
    return pd.DataFrame(rows)


@torch.no_grad()
def kept_anchor_examples(
    model,
    tokenizer,
    spec: AnchorSpec,
    documents: Sequence[str],
    model_name: str,
    ks: Iterable[int] = (1, 2, 3, 4, 5),
    demo_tokens: int = 64,
    query_tokens: int = 12,
    seed: int = 0,
) -> dict:
    """The payload of ``kept_anchors.json``: which prompt tokens stay in the pruned cache."""
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    examples = []
    for k in ks:
        prompt = kshot_prompts(
            documents, tokenizer, spec, k, 1, demo_tokens, query_tokens, seed, max_tokens=max_positions(model)
        )[0]
        ids = torch.tensor([tokenizer.encode(prompt.text, add_special_tokens=False)])
        flags = anchor_flags(ids, ids_set)
        state = anchor_prefill(model, ids, flags, open_limit=None)
        kept_pos = set(state.pos[0][state.valid[0]].tolist())
        n = ids.shape[1]
        examples.append(
            {
                "demonstrations": k,
                "context_tokens": n,
                "tokens": tokenizer.convert_ids_to_tokens(ids[0].tolist()),
                "is_anchor": [bool(f) for f in flags[0].tolist()],
                "kept": [i in kept_pos for i in range(n)],
                "kv_bytes_full": int(per_tok * n),
                "kv_bytes_anchor": int(state.kv_bytes()),
            }
        )
    return {"model": model_name, "mode": spec.mode, "examples": examples}


def save_kept_anchors(payload: dict, record: records.RunRecord):
    """Write ``figures/<study>/kept_anchors.json`` atomically and note it in the run record."""

    path = io.write_json(study_dir(record.study) / "kept_anchors.json", payload)
    record.note_output(
        "data", "kept_anchors", "Tokens kept in the anchor cache for 1..5-demonstration prompts", {"json": path}
    )
    return path


# --------------------------------------------------------------------------- quality
def _windows(tokenizer, documents: Sequence[str], spec: AnchorSpec, context: int, max_tokens: int) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for doc in documents:
        text = insert_anchor_tokens(doc, spec)
        stream.extend(tokenizer.encode(text, add_special_tokens=False) + ([eos] if eos is not None else []))
        if len(stream) >= max_tokens:
            break
    stream = stream[:max_tokens]
    return [stream[i : i + context] for i in range(0, len(stream), context) if len(stream[i : i + context]) >= 2]


@torch.no_grad()
def _score(
    model,
    windows: list[list[int]],
    skip: set[int],
    anchor_ids: set[int] | None,
    drop: set[int],
    batch_size: int,
    chunk: int,
) -> tuple[float, float, int]:
    """Sum of NLL, correct count and scored count. Tokens in ``drop`` are removed from the input
    first; targets in ``skip`` are not scored; the first remaining token has no context."""
    nll, correct, count = 0.0, 0, 0
    device = next(model.parameters()).device
    rows = [[t for t in w if t not in drop] for w in windows]
    for start in range(0, len(rows), batch_size):
        group = [r for r in rows[start : start + batch_size] if len(r) >= 2]
        if not group:
            continue
        L = max(len(r) for r in group)
        ids = torch.zeros(len(group), L, dtype=torch.long)
        att = torch.zeros(len(group), L, dtype=torch.long)
        for b, r in enumerate(group):
            ids[b, : len(r)] = torch.tensor(r)
            att[b, : len(r)] = 1
        ids, att = ids.to(device), att.to(device)
        if anchor_ids is None:
            pos = (att.cumsum(1) - 1).clamp(min=0)
            logits = model(input_ids=ids, attention_mask=att, position_ids=pos).logits.float()
        else:
            flags = anchor_flags(ids, anchor_ids) & att.bool()
            logits = anchor_cache_logits(model, ids, flags, att, chunk=chunk)
        target = ids[:, 1:]
        ok = att[:, 1:].bool()
        if skip:
            ok &= ~torch.isin(target, torch.tensor(sorted(skip), device=device))
            # the first scored target needs one earlier non-skipped token as context
            seen = (~torch.isin(ids, torch.tensor(sorted(skip), device=device))).long().cumsum(1)
            ok &= seen[:, :-1] > 0
        lp = torch.log_softmax(logits[:, :-1], dim=-1)
        tok_lp = lp.gather(2, target[..., None])[..., 0]
        nll -= float(tok_lp[ok].sum())
        correct += int((logits[:, :-1].argmax(-1) == target)[ok].sum())
        count += int(ok.sum())
    return nll, correct, count


def quality_table(
    models: dict[str, tuple[Any, Any]],
    spec: AnchorSpec,
    documents: Sequence[str],
    context: int,
    max_tokens: int = 20_000,
    batch_size: int = 8,
    chunk: int = 64,
    plain_full: Iterable[str] = ("base",),
) -> pd.DataFrame:
    """Held-out perplexity and next-token accuracy: every model under full attention and under
    anchor inference through the pruned cache (``chunk`` tokens per step, pruned after each).

    ``models`` maps a label to ``(model, tokenizer)``; for AC every tokenizer must have the
    ``<AC>`` token (:func:`labkit.anchor.add_anchor_token`). The scored tokens are the same in
    every row: the text's own tokens, never ``<AC>``. Under full attention the models named in
    ``plain_full`` (not anchor-trained) read the plain text, ``<AC>`` tokens removed.
    """
    plain_full = set(plain_full)
    rows = []
    for label, (model, tokenizer) in models.items():
        ids_set = anchor_token_ids(tokenizer, spec)
        windows = _windows(tokenizer, documents, spec, context, max_tokens)
        skip = ids_set if spec.mode == "ac" else set()
        for inference in ("full", "anchor"):
            drop = ids_set if (spec.mode == "ac" and inference == "full" and label in plain_full) else set()
            clock = Stopwatch(model).start()
            nll, correct, count = _score(
                model, windows, skip, ids_set if inference == "anchor" else None, drop, batch_size, chunk
            )
            rows.append(
                {
                    "model": label,
                    "inference": inference,
                    "tokens_scored": count,
                    "perplexity": math.exp(nll / count) if count else math.nan,
                    "next_token_accuracy": correct / count if count else math.nan,
                    "seconds": clock.stop(),
                }
            )
    frame = pd.DataFrame(rows)
    full = frame[frame.inference == "full"].set_index("model").perplexity
    frame["ppl_vs_full_same_model"] = frame.apply(lambda r: r.perplexity / full[r.model] - 1, axis=1)
    return frame


# --------------------------------------------------------------------------- setup
def recall_probe(cfg: dict):
    """The :class:`~labkit.anchor.recall.RecallProbe` of a resolved profile (None without one)."""

    return RecallProbe(**cfg["recall"]) if cfg.get("recall") else None


def train_config(cfg: dict):
    """The :class:`~labkit.anchor.training.AnchorTrainConfig` of a resolved profile ``cfg``
    (its continued training mixes in the profile's recall probe, as the base's did)."""

    return AnchorTrainConfig(
        mode=cfg["mode"],
        ac_init=cfg["ac_init"],
        symbols=tuple(cfg["symbols"]),
        train_tokens=int(cfg["anchor_train_tokens"]),
        batch_size=int(cfg["anchor_batch_size"]),
        learning_rate=float(cfg["anchor_learning_rate"]),
        seed=int(cfg["seed"]),
        attention=cfg.get("anchor_attention", "auto"),
        probe=recall_probe(cfg),
    )


def setup_models(cfg: dict, base_model: str | None = None, carbon=None, progress: bool = True) -> dict:
    """Train (or load from cache) the base LM and its anchor-trained copy; load both.

    The base is labkit's tiny LM trained on real text mixed with recall-probe documents
    (:func:`labkit.anchor.recall_lm.train_recall_lm`), or ``base_model``. Returns a dict:
    ``base_name``, ``anchored`` (:class:`AnchoredLM`), ``spec``, ``models`` (label ->
    ``(model, tokenizer)``: ``"base"`` with the anchor token added the way training starts, and
    ``"anchor-trained"``), ``heldout`` (held-out documents), ``context``, ``probe`` and
    ``vocab`` (the probe's words, :func:`labkit.anchor.recall.probe_vocab`; None without a probe).
    """

    tcfg = train_config(cfg)
    probe = tcfg.probe
    if base_model is None:
        lm_cfg = TinyLMConfig(**cfg["base_lm"], seed=int(cfg["seed"]))
        base = (
            train_recall_lm(lm_cfg, probe, progress=progress, carbon=carbon)
            if probe is not None
            else train_tiny_lm(lm_cfg, progress=progress, carbon=carbon)
        )
        base_name, base_metrics = base.name, dict(base.metrics)
    else:
        base, base_name, base_metrics = base_model, str(base_model), {}
    anchored = train_anchor_lm(base, tcfg, progress=progress, carbon=carbon)
    spec = tcfg.spec
    # measurement-only loads: the compute dtype of the device (bf16 on CUDA, float32 on CPU),
    # so the dtype the run record names is the one the KV table and timings ran in
    base_m, base_t = load_causal_lm(str(getattr(base, "path", base)), dtype="auto")
    add_anchor_token(base_m, base_t, spec)
    trained = anchored.load(dtype="auto")
    train_docs, heldout = corpus_documents(tcfg.corpus, tcfg.heldout_fraction)
    vocab = probe_vocab(base_t, train_docs, probe) if probe is not None else None
    context = int(anchored.metrics.get("context_length") or base_m.config.max_position_embeddings)
    return {
        "base_name": base_name,
        "base_metrics": base_metrics,
        "anchored": anchored,
        "spec": spec,
        "heldout": heldout,
        "models": {"base": (base_m, base_t), "anchor-trained": trained},
        "context": context,
        "probe": probe,
        "vocab": vocab,
    }


def models_table(setup: dict) -> pd.DataFrame:
    """The ``models`` table: the base LM and its anchor-trained copy (continued training under
    the AnSAN mask), with the training numbers each reports."""
    base, anchored, spec = setup["base_metrics"], setup["anchored"], setup["spec"]
    anchor_keys = ("train_loss", "steps", "train_tokens", "context_length", "anchors_per_1k_tokens", "wall_s")
    return pd.DataFrame(
        [
            {
                "model": setup["base_name"],
                "role": "base",
                **{k: base.get(k) for k in ("train_loss", "heldout_loss", "steps", "train_tokens", "wall_s")},
            },
            {
                "model": anchored.name,
                "role": f"AnLLM-{spec.mode.upper()} continued training",
                **{k: anchored.metrics[k] for k in anchor_keys},
                "attention": anchored.metrics.get("attention", "dense"),
            },
        ]
    )


def past_training_note(speed: pd.DataFrame, context: int) -> str:
    """A caption sentence naming the contexts that run past the model's training length
    (speed only there), or ``""`` when there are none."""
    past = sorted(speed.context[speed.past_training_length].tolist())
    if not past:
        return ""
    return (
        f" Contexts {', '.join(map(str, past))} run past the model's training length ({context} tokens): "
        "speed only, the continuations are meaningless."
    )
