"""Measurements of study 2 (``notebooks/anchor_attention.ipynb``, ``benchmarks/anchor_inference.py``).

Every number comes from running real models (labkit's tiny LM trained on real text, or any HF
causal LM) on held-out real text:

* :func:`kv_cache_table`: KV-cache bytes of a full cache vs the anchor-pruned cache after
  k-shot prompts (the bytes are those of the actual tensors in the pruned ``DynamicCache``);
* :func:`kept_anchor_examples`: per token, anchor or not, kept or not (for the explorer);
* :func:`latency_sweep`: greedy decoding time of no-cache recompute, full cache and anchor cache
  across context lengths, measured side by side;
* :func:`quality_table`: held-out perplexity and next-token accuracy, full attention vs
  anchor inference through the *pruned cache* (not merely the mask, unlike the official code);
* :func:`fewshot_accuracy`: k-shot multiple-choice accuracy (OpenBookQA / PIQA / BoolQ) when the
  data registry has them.
"""
from __future__ import annotations

import math
import time
from typing import Any, Iterable, Sequence

import pandas as pd
import torch

from labkit.anchor.anchors import AnchorSpec, anchor_flags, anchor_token_ids, insert_anchor_tokens
from labkit.anchor.inference import (anchor_cache_logits, anchor_generate, anchor_prefill,
                                     full_cache_generate, kv_bytes_per_token, no_cache_generate)
from labkit.anchor.prompts import kshot_prompts, prompt_ids_of_length
from labkit.errors import DataUnavailableError, ParameterError

__all__ = ["kv_cache_table", "kept_anchor_examples", "save_kept_anchors", "latency_sweep",
           "speedup_table", "quality_table", "fewshot_items", "fewshot_accuracy",
           "figure1", "latency_figure", "FEWSHOT_TASKS", "STUDY"]

STUDY = "anchor_attention"
FEWSHOT_TASKS = ("openbookqa", "piqa", "boolq")


# --------------------------------------------------------------------------- KV cache size
@torch.no_grad()
def kv_cache_table(model, tokenizer, spec: AnchorSpec, documents: Sequence[str],
                   ks: Iterable[int] = (1, 2, 3, 4, 5), n_prompts: int = 3, demo_tokens: int = 64,
                   query_tokens: int = 12, seed: int = 0) -> pd.DataFrame:
    """KV-cache size after encoding k-shot prompts: full cache vs anchor-pruned cache.

    One row per (k, prompt); ``kv_bytes_anchor`` is measured on the pruned cache tensors,
    ``kv_bytes_full`` is bytes/token x prompt tokens (what a full ``DynamicCache`` holds).
    """
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    rows = []
    for k in ks:
        for p, prompt in enumerate(kshot_prompts(documents, tokenizer, spec, k, n_prompts,
                                                 demo_tokens, query_tokens, seed + k)):
            ids = torch.tensor([tokenizer.encode(prompt.text, add_special_tokens=False)])
            flags = anchor_flags(ids, ids_set)
            state = anchor_prefill(model, ids, flags, open_limit=None)
            n = ids.shape[1]
            kept = int(state.kept_tokens[0])
            rows.append({"demonstrations": k, "prompt": p, "prompt_tokens": n,
                         "anchors": int(flags.sum()), "kept_tokens": kept,
                         "kv_bytes_full": per_tok * n, "kv_bytes_anchor": state.kv_bytes(),
                         "kv_reduction": 1 - state.kv_bytes() / (per_tok * n)})
    return pd.DataFrame(rows)


@torch.no_grad()
def kept_anchor_examples(model, tokenizer, spec: AnchorSpec, documents: Sequence[str],
                         model_name: str, ks: Iterable[int] = (1, 2, 3, 4, 5),
                         demo_tokens: int = 64, query_tokens: int = 12, seed: int = 0) -> dict:
    """The payload of ``kept_anchors.json``: which prompt tokens stay in the pruned cache."""
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    examples = []
    for k in ks:
        prompt = kshot_prompts(documents, tokenizer, spec, k, 1, demo_tokens, query_tokens, seed)[0]
        ids = torch.tensor([tokenizer.encode(prompt.text, add_special_tokens=False)])
        flags = anchor_flags(ids, ids_set)
        state = anchor_prefill(model, ids, flags, open_limit=None)
        kept_pos = set(state.pos[0][state.valid[0]].tolist())
        n = ids.shape[1]
        examples.append({
            "demonstrations": k, "context_tokens": n,
            "tokens": tokenizer.convert_ids_to_tokens(ids[0].tolist()),
            "is_anchor": [bool(f) for f in flags[0].tolist()],
            "kept": [i in kept_pos for i in range(n)],
            "kv_bytes_full": int(per_tok * n), "kv_bytes_anchor": int(state.kv_bytes()),
        })
    return {"model": model_name, "mode": spec.mode, "examples": examples}


def save_kept_anchors(payload: dict, study: str = STUDY):
    """Write ``figures/<study>/kept_anchors.json`` atomically and note it in the run record."""
    from labkit import io, records
    from labkit.paths import study_dir

    path = io.write_json(study_dir(study) / "kept_anchors.json", payload)
    records.note_output("data", study, "kept_anchors",
                        "Tokens kept in the anchor cache for 1..5-demonstration prompts",
                        {"json": path})
    return path


# --------------------------------------------------------------------------- latency
def _timed(fn, repeats: int) -> tuple[dict[str, float], Any]:
    """Best (minimum) total, prefill and decode seconds over ``repeats`` runs of ``fn``."""
    best = {"seconds": math.inf, "prefill_s": math.inf, "decode_s": math.inf}
    out = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        total = time.perf_counter() - t0
        best["seconds"] = min(best["seconds"], total)
        best["prefill_s"] = min(best["prefill_s"], out.stats.get("prefill_s", math.nan))
        best["decode_s"] = min(best["decode_s"], out.stats.get("decode_s", math.nan))
    return best, out


@torch.no_grad()
def latency_sweep(model, tokenizer, spec: AnchorSpec, documents: Sequence[str],
                  contexts: Sequence[int], new_tokens: int = 16, batch: int = 1,
                  repeats: int = 3, demo_tokens: int = 64, query_tokens: int = 12,
                  seed: int = 0, prefill_chunk: int | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """Wall time of greedy decoding ``new_tokens`` after prompts of each context length.

    Methods, run back to back on the same prompt batch: ``no_cache`` (recompute the whole
    sequence every step, causal: the baseline of the paper's 3.5x), ``full_cache`` (ordinary
    ``DynamicCache``), ``anchor_cache`` (AnSAN prefill, pruned cache). The best of ``repeats``
    runs is kept (least disturbed by other load). EOS is disabled so every method decodes
    exactly ``new_tokens`` tokens. ``prefill_chunk`` encodes the anchor prompt that many tokens
    at a time, pruning after each chunk (same result, smaller attention). Rows hold the total,
    prefill and decode seconds (``decode_s`` covers the ``new_tokens - 1`` cached steps).
    """
    if not contexts:
        raise ParameterError("contexts is empty: give at least one context length")
    max_pos = getattr(model.config, "max_position_embeddings", None)
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    rows = []
    iterator = list(contexts)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="latency", unit="context")
    for length in iterator:
        if max_pos and length + new_tokens > max_pos:
            raise ParameterError(f"context {length} + new_tokens {new_tokens} exceeds the model's "
                                 f"context of {max_pos} (parameter 'contexts')")
        ids = prompt_ids_of_length(documents, tokenizer, spec, int(length), batch, demo_tokens,
                                   query_tokens, seed)
        att = torch.ones_like(ids)
        runs = {
            "no_cache": lambda: no_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1),
            "full_cache": lambda: full_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1),
            "anchor_cache": lambda: anchor_generate(model, None, ids, max_new_tokens=new_tokens,
                                                    attention_mask=att, anchor_ids=ids_set,
                                                    eos_token_id=-1, open_limit=None,
                                                    chunk=prefill_chunk),
        }
        runs["full_cache"]()  # warm-up (allocator, kernels)
        for method, fn in runs.items():
            best, result = _timed(fn, repeats)
            kv = 0 if method == "no_cache" else result.stats.get("kv_bytes")
            tokens = kv / (per_tok * batch)
            rows.append({"context": int(length), "method": method, "batch": batch,
                         "new_tokens": new_tokens, **best,
                         "ms_per_token": 1000 * best["seconds"] / new_tokens,
                         "decode_ms_per_token": 1000 * best["decode_s"] / max(1, new_tokens - 1),
                         "kv_bytes": kv, "cached_tokens_per_row": tokens, "anchors_in_prompt": int(anchor_flags(ids, ids_set).sum())})
    return pd.DataFrame(rows)


def speedup_table(latency: pd.DataFrame) -> pd.DataFrame:
    """Per context: anchor-cache speed-up over no-cache recompute and over the full cache."""
    wide = latency.pivot_table(index="context", columns="method", values="seconds")
    dec = latency.pivot_table(index="context", columns="method", values="decode_s")
    kv = latency.pivot_table(index="context", columns="method", values="kv_bytes")
    tok = latency.pivot_table(index="context", columns="method", values="cached_tokens_per_row")
    out = pd.DataFrame({
        "context": wide.index,
        "no_cache_s": wide["no_cache"].values, "full_cache_s": wide["full_cache"].values,
        "anchor_cache_s": wide["anchor_cache"].values,
        "speedup_vs_no_cache": (wide["no_cache"] / wide["anchor_cache"]).values,
        "speedup_vs_full_cache": (wide["full_cache"] / wide["anchor_cache"]).values,
        "decode_speedup_vs_no_cache": (dec["no_cache"] / dec["anchor_cache"]).values,
        "decode_speedup_vs_full_cache": (dec["full_cache"] / dec["anchor_cache"]).values,
        "kv_bytes_full": kv["full_cache"].values, "kv_bytes_anchor": kv["anchor_cache"].values,
        "tokens_full": tok["full_cache"].values, "tokens_anchor": tok["anchor_cache"].values,
    })
    out["kv_reduction"] = 1 - out.kv_bytes_anchor / out.kv_bytes_full
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- quality
def _windows(tokenizer, documents: Sequence[str], spec: AnchorSpec, context: int,
             max_tokens: int) -> list[list[int]]:
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    for doc in documents:
        text = insert_anchor_tokens(doc, spec)
        stream.extend(tokenizer.encode(text, add_special_tokens=False) + ([eos] if eos is not None else []))
        if len(stream) >= max_tokens:
            break
    stream = stream[:max_tokens]
    return [stream[i:i + context] for i in range(0, len(stream), context) if len(stream[i:i + context]) >= 2]


@torch.no_grad()
def _score(model, windows: list[list[int]], skip: set[int], anchor_ids: set[int] | None,
           drop: set[int], batch_size: int, chunk: int) -> tuple[float, float, int]:
    """Sum of NLL, correct count and scored count. Tokens in ``drop`` are removed from the input
    first; targets in ``skip`` are not scored; the first remaining token has no context."""
    nll, correct, count = 0.0, 0, 0
    device = next(model.parameters()).device
    rows = [[t for t in w if t not in drop] for w in windows]
    for start in range(0, len(rows), batch_size):
        group = [r for r in rows[start:start + batch_size] if len(r) >= 2]
        if not group:
            continue
        L = max(len(r) for r in group)
        ids = torch.zeros(len(group), L, dtype=torch.long)
        att = torch.zeros(len(group), L, dtype=torch.long)
        for b, r in enumerate(group):
            ids[b, :len(r)] = torch.tensor(r)
            att[b, :len(r)] = 1
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


def quality_table(models: dict[str, tuple[Any, Any]], spec: AnchorSpec, documents: Sequence[str],
                  context: int, max_tokens: int = 20_000, batch_size: int = 8,
                  chunk: int = 64, plain_full: Iterable[str] = ("base",)) -> pd.DataFrame:
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
            t0 = time.perf_counter()
            nll, correct, count = _score(model, windows, skip, ids_set if inference == "anchor" else None,
                                         drop, batch_size, chunk)
            rows.append({"model": label, "inference": inference, "tokens_scored": count,
                         "perplexity": math.exp(nll / count) if count else math.nan,
                         "next_token_accuracy": correct / count if count else math.nan,
                         "seconds": time.perf_counter() - t0})
    frame = pd.DataFrame(rows)
    full = frame[frame.inference == "full"].set_index("model").perplexity
    frame["ppl_vs_full_same_model"] = frame.apply(lambda r: r.perplexity / full[r.model] - 1, axis=1)
    return frame


# --------------------------------------------------------------------------- few-shot accuracy
def fewshot_items(task: str, frame: pd.DataFrame) -> list[dict]:
    """Normalise a registry frame to ``{"context", "choices", "answer"}`` items."""
    items = []
    for i, row in frame.iterrows():
        if task == "openbookqa":
            choices = row["choices"]
            texts, labels = list(choices["text"]), list(choices["label"])
            items.append({"context": f"Question: {row['question_stem']}\nAnswer:",
                          "choices": [f" {t}" for t in texts],
                          "answer": labels.index(row["answerKey"])})
        elif task == "piqa":
            items.append({"context": f"Goal: {row['goal']}\nSolution:",
                          "choices": [f" {row['sol1']}", f" {row['sol2']}"],
                          "answer": int(row["label"])})
        elif task == "boolq":
            items.append({"context": f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:",
                          "choices": [" no", " yes"], "answer": int(bool(row["answer"]))})
        else:
            raise ParameterError(f"unknown few-shot task {task!r}; choose from {FEWSHOT_TASKS}")
    return items


@torch.no_grad()
def fewshot_accuracy(model, tokenizer, spec: AnchorSpec, items: list[dict], k: int = 5,
                     n_eval: int = 50, chunk: int = 64) -> dict[str, float]:
    """k-shot accuracy (choice with the highest summed log-likelihood) under full attention and
    under anchor inference (pruned cache; each demonstration closed by an anchor)."""
    if len(items) < k + 1:
        raise ParameterError(f"need more than k={k} items for a k-shot evaluation, got {len(items)}")
    ids_set = anchor_token_ids(tokenizer, spec)
    closer = spec.ac_token if spec.mode == "ac" else ""
    demos = "\n\n".join(f"{d['context']}{d['choices'][d['answer']]}{closer}" for d in items[:k])
    right = {"full": 0, "anchor": 0}
    evaluated = items[k:k + n_eval]
    for item in evaluated:
        prefix = tokenizer.encode(f"{demos}\n\n{item['context']}", add_special_tokens=False)
        scores = {"full": [], "anchor": []}
        for choice in item["choices"]:
            cont = tokenizer.encode(choice, add_special_tokens=False)
            ids = torch.tensor([prefix + cont])
            n = len(cont)
            for inference in ("full", "anchor"):
                if inference == "full":
                    logits = model(input_ids=ids).logits.float()
                else:
                    logits = anchor_cache_logits(model, ids, anchor_flags(ids, ids_set), chunk=chunk)
                lp = torch.log_softmax(logits[0, -n - 1:-1], dim=-1)
                scores[inference].append(float(lp.gather(1, ids[0, -n:, None]).sum()))
        for inference in right:
            right[inference] += int(max(range(len(scores[inference])),
                                        key=scores[inference].__getitem__) == item["answer"])
    return {f"accuracy_{m}": right[m] / len(evaluated) for m in right} | {"items": len(evaluated)}


def fewshot_panel(model, tokenizer, spec: AnchorSpec, tasks: Sequence[str] = FEWSHOT_TASKS,
                  k: int = 5, n_eval: int = 50, record=None, loader=None) -> pd.DataFrame | None:
    """Few-shot accuracy per task via ``labkit.data.load``; tasks whose data are unavailable
    (offline) are skipped with ``record.warn``. Returns ``None`` when no task could run."""
    from labkit.data import load

    loader = loader or load
    rows = []
    for task in tasks:
        try:
            frame = loader(task)
        except DataUnavailableError as err:
            msg = f"few-shot panel: {task} skipped, data unavailable ({str(err).splitlines()[0][:160]})"
            if record is not None:
                record.warn(msg)
            continue
        result = fewshot_accuracy(model, tokenizer, spec, fewshot_items(task, frame), k, n_eval)
        rows.append({"task": task, **result})
    return pd.DataFrame(rows) if rows else None


# --------------------------------------------------------------------------- figures
def figure1(speedups: pd.DataFrame, title: str = "Anchor cache: KV size, cache length and speed-up"):
    """Like AnLLM's Figure 1: bars of KV-cache size and cached tokens (full vs anchor) per
    context length, with the speed-up curves on a second axis."""
    from plotly.subplots import make_subplots

    from labkit.figures import PALETTE

    x = [str(c) for c in speedups.context]
    fig = make_subplots(rows=1, cols=2, specs=[[{"secondary_y": True}, {}]], horizontal_spacing=0.24,
                        subplot_titles=("KV-cache size and speed-up", "cached tokens per prompt"))
    fig.add_bar(x=x, y=speedups.kv_bytes_full / 2**20, name="full cache",
                marker_color=PALETTE[1], legendgroup="full", row=1, col=1)
    fig.add_bar(x=x, y=speedups.kv_bytes_anchor / 2**20, name="anchor cache",
                marker_color=PALETTE[0], legendgroup="anchor", row=1, col=1)
    fig.add_bar(x=x, y=speedups.tokens_full, name="full cache: tokens", marker_color=PALETTE[1],
                legendgroup="full", showlegend=False, row=1, col=2)
    fig.add_bar(x=x, y=speedups.tokens_anchor, name="anchor cache: tokens",
                marker_color=PALETTE[0], legendgroup="anchor", showlegend=False, row=1, col=2)
    fig.add_scatter(x=x, y=speedups.speedup_vs_no_cache, name="speed-up vs no cache",
                    mode="lines+markers", line=dict(color=PALETTE[3]), secondary_y=True, row=1, col=1)
    fig.add_scatter(x=x, y=speedups.speedup_vs_full_cache, name="speed-up vs full cache",
                    mode="lines+markers", line=dict(color=PALETTE[2], dash="dash"),
                    secondary_y=True, row=1, col=1)
    fig.update_yaxes(title_text="speed-up (x)", secondary_y=True, row=1, col=1, rangemode="tozero",
                     showgrid=False)
    for col in (1, 2):
        fig.update_xaxes(title_text="context (tokens)", type="category", row=1, col=col)
    fig.update_yaxes(title_text="KV cache (MiB)", secondary_y=False, row=1, col=1)
    fig.update_yaxes(title_text="tokens", row=1, col=2)
    fig.update_layout(title=title, barmode="group", legend=dict(orientation="h", y=-0.2))
    return fig


def latency_figure(latency: pd.DataFrame, title: str = "Decoding time vs context length"):
    """Seconds per generated token of the three methods against context length."""
    import plotly.graph_objects as go

    from labkit.figures import PALETTE

    names = {"no_cache": "no cache (recompute)", "full_cache": "full KV cache",
             "anchor_cache": "anchor KV cache"}
    fig = go.Figure()
    for i, (method, label) in enumerate(names.items()):
        part = latency[latency.method == method].sort_values("context")
        fig.add_scatter(x=part.context, y=part.ms_per_token, name=label, mode="lines+markers",
                        line=dict(color=PALETTE[[3, 1, 0][i]]))
    fig.update_layout(title=title, xaxis_title="context (prompt tokens)",
                      yaxis_title="ms per generated token (prefill included)", yaxis_type="log")
    return fig


# --------------------------------------------------------------------------- setup
def train_config(cfg: dict):
    """The :class:`~labkit.anchor.training.AnchorTrainConfig` of a resolved profile ``cfg``."""
    from labkit.anchor.training import AnchorTrainConfig

    return AnchorTrainConfig(mode=cfg["mode"], ac_init=cfg["ac_init"], symbols=tuple(cfg["symbols"]),
                             train_tokens=int(cfg["anchor_train_tokens"]),
                             batch_size=int(cfg["anchor_batch_size"]),
                             learning_rate=float(cfg["anchor_learning_rate"]), seed=int(cfg["seed"]))


def setup_models(cfg: dict, base_model: str | None = None, carbon=None, progress: bool = True) -> dict:
    """Train (or load from cache) the base LM and its anchor-trained copy; load both.

    Returns a dict: ``base_name``, ``anchored`` (:class:`AnchoredLM`), ``spec``, ``models``
    (label -> ``(model, tokenizer)``: ``"base"`` with the anchor token added the way training
    starts, and ``"anchor-trained"``), ``heldout`` (held-out documents) and ``context``.
    """
    from labkit.anchor.anchors import add_anchor_token
    from labkit.anchor.training import train_anchor_lm
    from labkit.lm import TinyLMConfig, corpus_documents, load_causal_lm, train_tiny_lm

    tcfg = train_config(cfg)
    if base_model is None:
        base = train_tiny_lm(TinyLMConfig(**cfg["base_lm"], seed=int(cfg["seed"])), progress=progress,
                             carbon=carbon)
        base_name, base_metrics = base.name, dict(base.metrics)
    else:
        base, base_name, base_metrics = base_model, str(base_model), {}
    anchored = train_anchor_lm(base, tcfg, progress=progress, carbon=carbon)
    spec = tcfg.spec
    base_m, base_t = load_causal_lm(str(getattr(base, "path", base)))
    add_anchor_token(base_m, base_t, spec)
    trained = anchored.load()
    _, heldout = corpus_documents(tcfg.corpus, tcfg.heldout_fraction)
    context = int(anchored.metrics.get("context_length") or base_m.config.max_position_embeddings)
    return {"base_name": base_name, "base_metrics": base_metrics, "anchored": anchored, "spec": spec, "heldout": heldout,
            "models": {"base": (base_m, base_t), "anchor-trained": trained}, "context": context}


# --------------------------------------------------------------------------- targets
TARGETS = {"kv_reduction_5shot": 0.95, "speedup_vs_no_cache": 3.5, "speedup_vs_full_cache": 1.2,
           "ppl_gap": 0.05}


def headline(kv_summary: pd.DataFrame, speed: pd.DataFrame, quality: pd.DataFrame) -> dict:
    """The study's headline numbers (for ``record.results`` and the benchmark JSON)."""
    k_max = kv_summary.demonstrations.max()
    five = kv_summary[kv_summary.demonstrations == k_max].iloc[0]
    longest = speed.sort_values("context").iloc[-1]
    q = quality.set_index(["model", "inference"])
    out = {"kv_reduction_demonstrations": int(k_max), "kv_reduction": float(five.kv_reduction),
           "prompt_tokens": float(five.prompt_tokens), "kept_tokens": float(five.kept_tokens),
           "longest_context": int(longest.context),
           "speedup_vs_no_cache_longest": float(longest.speedup_vs_no_cache),
           "speedup_vs_no_cache_max": float(speed.speedup_vs_no_cache.max()),
           "speedup_vs_full_cache_longest": float(longest.speedup_vs_full_cache),
           "decode_speedup_vs_full_cache_longest": float(longest.decode_speedup_vs_full_cache),
           "speedups": speed[["context", "speedup_vs_no_cache", "speedup_vs_full_cache",
                              "decode_speedup_vs_no_cache", "decode_speedup_vs_full_cache"]
                             ].to_dict(orient="records")}
    for (model, inference), row in q.iterrows():
        out[f"ppl_{model}_{inference}"] = float(row.perplexity)
        out[f"acc_{model}_{inference}"] = float(row.next_token_accuracy)
    if ("anchor-trained", "anchor") in q.index:
        out["ppl_gap_anchor_trained"] = float(q.loc[("anchor-trained", "anchor")].ppl_vs_full_same_model)
    if ("base", "anchor") in q.index:
        out["ppl_gap_base"] = float(q.loc[("base", "anchor")].ppl_vs_full_same_model)
    return out


def results_table(kv_summary: pd.DataFrame, speed: pd.DataFrame, quality: pd.DataFrame) -> pd.DataFrame:
    """Measured values next to the issue's targets, with met / not met."""
    h = headline(kv_summary, speed, quality)
    rows = [
        {"measure": f"KV-cache reduction, {h['kv_reduction_demonstrations']}-demonstration prompts",
         "target": ">= 95%", "measured": f"{h['kv_reduction']:.1%}",
         "met": h["kv_reduction"] >= TARGETS["kv_reduction_5shot"]},
        {"measure": f"anchor cache vs no-cache recompute, {h['longest_context']} tokens",
         "target": ">= 3.5x", "measured": f"{h['speedup_vs_no_cache_longest']:.2f}x",
         "met": h["speedup_vs_no_cache_longest"] >= TARGETS["speedup_vs_no_cache"]},
        {"measure": f"anchor cache vs full cache, {h['longest_context']} tokens (total)",
         "target": ">= 1.2x", "measured": f"{h['speedup_vs_full_cache_longest']:.2f}x "
                                          f"(decode only {h['decode_speedup_vs_full_cache_longest']:.2f}x)",
         "met": h["speedup_vs_full_cache_longest"] >= TARGETS["speedup_vs_full_cache"]},
    ]
    if "ppl_gap_anchor_trained" in h:
        rows.append({"measure": "anchor-trained: perplexity, anchor inference vs full attention",
                     "target": "within 5%", "measured": f"{h['ppl_gap_anchor_trained']:+.1%}",
                     "met": abs(h["ppl_gap_anchor_trained"]) <= TARGETS["ppl_gap"]})
    if "ppl_gap_base" in h:
        rows.append({"measure": "base model: perplexity, anchor inference vs full attention",
                     "target": "(reference)", "measured": f"{h['ppl_gap_base']:+.1%}", "met": None})
    return pd.DataFrame(rows)
