"""Decoding time of the anchor cache against its baselines, with intervals on the speed-ups.

Why interleaved: on a shared machine the load drifts over seconds. Timing every repeat of one
method, then every repeat of the next, turns that drift into a fake speed-up. Here each repeat
runs the methods back to back (anchor, full, none, anchor, full, none, ...) on the same prompt
batch, so each repeat yields a *paired* ratio measured under the same conditions, and the
speed-up is reported as the median paired ratio with a 95% percentile-bootstrap interval over
repeats (:func:`labkit.stats.interval`). A target counts as met only when the interval's lower
end clears it (:func:`labkit.anchor.study.results_table`).

Why contexts past the model's training length: on CPU a tiny model's decode step is bound by
per-step overhead up to about a thousand tokens, where both caches cost the same; reading the
cache dominates only at several thousand tokens. Only speed is measured there, so the sweep runs
the trained model past its context (:func:`past_training_length`; RoPE positions extrapolate,
the continuations are meaningless) and the tables say so (``past_training_length``). No-cache
recompute costs a full forward per token, so it runs only up to ``no_cache_up_to`` tokens; the
contexts beyond use ``long_repeats`` repeats.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from labkit import stats
from labkit.anchor.anchors import AnchorSpec, anchor_flags, anchor_token_ids
from labkit.anchor.memory import peak_memory, run_method
from labkit.anchor.prompts import prompt_ids_of_length
from labkit.anchor.support import kv_bytes_per_token, model_device
from labkit.errors import ParameterError
from labkit.timing import timed

__all__ = ["METHODS", "latency_sweep", "speedup_table", "throughput_table", "median_interval", "past_training_length"]

#: Order of the methods inside one repeat (the interleaving).
METHODS = ("anchor_cache", "full_cache", "no_cache")
#: (column prefix, numerator method, denominator method, timing column) of every ratio in
#: :func:`speedup_table`: the anchor cache against both baselines, and the full cache against
#: recompute beside it (what any KV cache buys).
RATIOS = (
    ("speedup_vs_no_cache", "no_cache", "anchor_cache", "seconds"),
    ("full_speedup_vs_no_cache", "no_cache", "full_cache", "seconds"),
    ("speedup_vs_full_cache", "full_cache", "anchor_cache", "seconds"),
    ("decode_speedup_vs_full_cache", "full_cache", "anchor_cache", "decode_s"),
    ("prefill_speedup_vs_full_cache", "full_cache", "anchor_cache", "prefill_s"),
)


@contextlib.contextmanager
def past_training_length(model, length: int) -> Iterator[bool]:
    """Let ``model`` run ``length`` positions, beyond ``config.max_position_embeddings`` if need
    be (restored afterwards); yields True when it had to. Only for timing: RoPE extrapolates
    positions, but a model never trained there continues text badly."""
    config = model.config
    before = getattr(config, "max_position_embeddings", None)
    past = before is not None and length > before
    if past:
        config.max_position_embeddings = int(length)
    try:
        yield past
    finally:
        if past:
            config.max_position_embeddings = before


@torch.no_grad()
def latency_sweep(
    model,
    tokenizer,
    spec: AnchorSpec,
    documents: Sequence[str],
    contexts: Sequence[int],
    new_tokens: int = 16,
    batch: int = 1,
    repeats: int = 5,
    demo_tokens: int = 64,
    query_tokens: int = 12,
    seed: int = 0,
    prefill_chunk: int | None = None,
    *,
    no_cache_up_to: int | None = None,
    long_repeats: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Wall time of greedy decoding ``new_tokens`` after prompts of each context length.

    Methods: ``no_cache`` (recompute the whole sequence every step, causal: the baseline of the
    paper's 3.5x; only for contexts up to ``no_cache_up_to``, all when None), ``full_cache``
    (ordinary ``DynamicCache``), ``anchor_cache`` (AnSAN prefill, pruned cache). Per context,
    one untimed warm-up run each, which also measures its peak memory
    (:func:`labkit.anchor.memory.peak_memory`), then ``repeats`` rounds (``long_repeats`` beyond
    ``no_cache_up_to``) of the methods interleaved in :data:`METHODS` order. EOS is disabled so
    every method decodes exactly ``new_tokens`` tokens. Contexts beyond the model's
    ``max_position_embeddings`` run past its training length (:func:`past_training_length`).

    Returns:
        One row per (context, repeat, method): total, prefill and decode seconds
        (``decode_s`` covers the ``new_tokens - 1`` cached steps), per-token milliseconds,
        generated and decode tokens per second, peak memory (``peak_bytes``), KV bytes and
        cached tokens per row at the end, and ``past_training_length``.
    """
    if not contexts:
        raise ParameterError("contexts is empty: give at least one context length")
    for name, value in (("repeats", repeats), ("long_repeats", long_repeats)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ParameterError(f"{name} must be a positive int, got {value!r}")
    if isinstance(new_tokens, bool) or not isinstance(new_tokens, int) or new_tokens < 2:
        raise ParameterError(f"new_tokens must be an int >= 2, got {new_tokens!r}")
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    device = model_device(model)
    rows = []
    iterator = sorted(int(c) for c in contexts)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="latency", unit="context")
    for length in iterator:
        ids = prompt_ids_of_length(documents, tokenizer, spec, length, batch, demo_tokens, query_tokens, seed)
        anchors = int(anchor_flags(ids, ids_set).sum())
        long = no_cache_up_to is not None and length > no_cache_up_to
        methods = [m for m in METHODS if not (long and m == "no_cache")]
        n_repeats = long_repeats if long and long_repeats is not None else repeats
        with past_training_length(model, length + new_tokens) as past:
            peaks = {
                m: peak_memory(m, model, ids, ids_set, new_tokens, prefill_chunk) for m in methods
            }  # the warm-up (allocator, kernels), untimed
            for repeat in range(n_repeats):
                for method in methods:
                    result, seconds = timed(
                        lambda: run_method(method, model, ids, ids_set, new_tokens, prefill_chunk), device
                    )
                    stats_ = result.stats
                    kv = 0 if method == "no_cache" else int(stats_["kv_bytes"])
                    decode_s = float(stats_.get("decode_s", math.nan))
                    rows.append(
                        {
                            "context": length,
                            "repeat": repeat,
                            "method": method,
                            "batch": batch,
                            "new_tokens": new_tokens,
                            "past_training_length": past,
                            "seconds": seconds,
                            "prefill_s": float(stats_.get("prefill_s", math.nan)),
                            "decode_s": decode_s,
                            "ms_per_token": 1000 * seconds / new_tokens,
                            "decode_ms_per_token": 1000 * decode_s / (new_tokens - 1),
                            "tokens_per_s": batch * new_tokens / seconds,
                            "decode_tokens_per_s": batch * (new_tokens - 1) / decode_s,
                            "peak_bytes": peaks[method],
                            "kv_bytes": kv,
                            "cached_tokens_per_row": kv / (per_tok * batch),
                            "anchors_in_prompt": anchors,
                        }
                    )
    return pd.DataFrame(rows)


def median_interval(
    values, confidence: float = stats.CONFIDENCE, n_resamples: int = stats.N_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """Median of ``values`` and its percentile-bootstrap interval ``(median, low, high)``
    (:func:`labkit.stats.interval` with ``np.median``).

    Fewer than two finite values give no interval (``low`` and ``high`` are NaN): one repeat
    says nothing about the spread, so no target can be declared met from it.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    if x.size >= 2 and np.all(x == x[0]):
        return float(x[0]), float(x[0]), float(x[0])
    iv = stats.interval(x, np.median, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return iv.estimate, iv.low, iv.high


def speedup_table(
    latency: pd.DataFrame, confidence: float = stats.CONFIDENCE, n_resamples: int = stats.N_RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """Per context: the anchor cache's speed-ups over no-cache recompute and over the full
    cache (total, decode-only, prefill-only), and the full cache's over recompute beside them.

    Each ratio is the median over repeats of the paired ratio ``baseline / method`` (same
    repeat, back to back), with ``_lo`` / ``_hi`` columns holding its bootstrap interval at
    ``confidence``; ratios against recompute are NaN where it did not run. Seconds are medians
    over repeats; KV bytes and cached tokens are those of the last repeat (identical across
    repeats).
    """
    need = {"context", "method", "seconds", "decode_s", "prefill_s", "kv_bytes", "cached_tokens_per_row"}
    missing = need - set(latency.columns)
    if missing:
        raise ParameterError(f"latency table lacks columns {sorted(missing)} (use latency_sweep())")
    latency = latency if "repeat" in latency.columns else latency.assign(repeat=0)
    rows = []
    for context, part in latency.groupby("context", sort=True):
        wide = part.pivot_table(
            index="repeat",
            columns="method",
            values=["seconds", "decode_s", "prefill_s", "kv_bytes", "cached_tokens_per_row"],
        )
        row = {
            "context": int(context),
            "repeats": int(len(wide)),
            "past_training_length": bool(part.get("past_training_length", pd.Series([False])).any()),
        }
        for method in ("no_cache", "full_cache", "anchor_cache"):
            have = method in wide["seconds"]
            row[f"{method}_s"] = float(wide["seconds"][method].median()) if have else math.nan
        for name, num, den, column in RATIOS:
            if num in wide[column] and den in wide[column]:
                med, lo, hi = median_interval(
                    (wide[column][num] / wide[column][den]).to_numpy(), confidence, n_resamples, seed
                )
            else:
                med = lo = hi = math.nan
            row.update({name: med, f"{name}_lo": lo, f"{name}_hi": hi})
        last = wide.index.max()
        row.update(
            {
                "kv_bytes_full": float(wide["kv_bytes"]["full_cache"][last]),
                "kv_bytes_anchor": float(wide["kv_bytes"]["anchor_cache"][last]),
                "tokens_full": float(wide["cached_tokens_per_row"]["full_cache"][last]),
                "tokens_anchor": float(wide["cached_tokens_per_row"]["anchor_cache"][last]),
            }
        )
        rows.append(row)
    out = pd.DataFrame(rows)
    out["kv_reduction"] = 1 - out.kv_bytes_anchor / out.kv_bytes_full
    return out


def throughput_table(latency: pd.DataFrame) -> pd.DataFrame:
    """Per (context, method): median total and prefill seconds, decode tokens per second (all
    rows of the batch) and peak memory (MiB above the weights and inputs)."""
    grouped = latency.groupby(["context", "method"], sort=True)
    out = grouped.agg(
        past_training_length=("past_training_length", "any"),
        batch=("batch", "first"),
        repeats=("repeat", "nunique"),
        total_s=("seconds", "median"),
        prefill_s=("prefill_s", "median"),
        decode_tokens_per_s=("decode_tokens_per_s", "median"),
        peak_mib=("peak_bytes", "first"),
    ).reset_index()
    out["peak_mib"] = out.peak_mib / 2**20
    order = {m: i for i, m in enumerate(("full_cache", "anchor_cache", "no_cache"))}
    return out.sort_values(["context", "method"], key=lambda c: c.map(order) if c.name == "method" else c).reset_index(
        drop=True
    )
