"""Decoding time of the anchor cache against its baselines, with intervals on the speed-ups.

Why interleaved: on a shared machine the load drifts over seconds. Timing every repeat of one
method, then every repeat of the next, turns that drift into a fake speed-up. Here each repeat
runs the three methods back to back (anchor, full, none, anchor, full, none, ...) on the same
prompt batch, so each repeat yields a *paired* ratio measured under the same conditions, and the
speed-up is reported as the median paired ratio with a 95 % percentile-bootstrap interval over
repeats (``scipy.stats.bootstrap``). A target counts as met only when the interval's lower end
clears it (:func:`labkit.anchor.study.results_table`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from labkit.anchor.anchors import AnchorSpec, anchor_flags, anchor_token_ids
from labkit.anchor.decoding import anchor_generate, full_cache_generate, no_cache_generate
from labkit.anchor.prompts import prompt_ids_of_length
from labkit.anchor.support import kv_bytes_per_token, model_device
from labkit.errors import ParameterError
from labkit.device import synchronize
from labkit.timing import timed

__all__ = ["METHODS", "latency_sweep", "speedup_table", "median_interval", "THROUGHPUT_METHODS",
           "LiveTensorPeak", "is_out_of_memory", "run_method", "measure_point", "largest_batch"]

#: Order of the methods inside one repeat (the interleaving).
METHODS = ("anchor_cache", "full_cache", "no_cache")
#: (column prefix, numerator method, timing column) of every speed-up in :func:`speedup_table`.
RATIOS = (("speedup_vs_no_cache", "no_cache", "seconds"),
          ("speedup_vs_full_cache", "full_cache", "seconds"),
          ("decode_speedup_vs_no_cache", "no_cache", "decode_s"),
          ("decode_speedup_vs_full_cache", "full_cache", "decode_s"))


@torch.no_grad()
def latency_sweep(model, tokenizer, spec: AnchorSpec, documents: Sequence[str],
                  contexts: Sequence[int], new_tokens: int = 16, batch: int = 1,
                  repeats: int = 5, demo_tokens: int = 64, query_tokens: int = 12,
                  seed: int = 0, prefill_chunk: int | None = None,
                  progress: bool = False) -> pd.DataFrame:
    """Wall time of greedy decoding ``new_tokens`` after prompts of each context length.

    Methods: ``no_cache`` (recompute the whole sequence every step, causal: the baseline of the
    paper's 3.5x), ``full_cache`` (ordinary ``DynamicCache``), ``anchor_cache`` (AnSAN prefill,
    pruned cache). Per context, one warm-up run each, then ``repeats`` rounds of the three
    methods interleaved in :data:`METHODS` order. EOS is disabled so every method decodes exactly
    ``new_tokens`` tokens. ``prefill_chunk`` is the anchor prefill chunk (``None``: its default).
    Clocks are read after the device is synchronised (:mod:`labkit.timing`).

    Returns:
        One row per (context, repeat, method): total, prefill and decode seconds
        (``decode_s`` covers the ``new_tokens - 1`` cached steps), per-token milliseconds,
        generated tokens per second, peak memory of the run above what existed before
        (``peak_bytes``, see :func:`measure_point`), KV bytes and cached tokens per row at the end.
    """
    if not contexts:
        raise ParameterError("contexts is empty: give at least one context length")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ParameterError(f"repeats must be a positive int, got {repeats!r}")
    max_pos = getattr(model.config, "max_position_embeddings", None)
    for length in contexts:
        if max_pos and int(length) + new_tokens > max_pos:
            raise ParameterError(f"context {length} + new_tokens {new_tokens} exceeds the model's "
                                 f"context of {max_pos} (parameter 'contexts')")
    ids_set = anchor_token_ids(tokenizer, spec)
    per_tok = kv_bytes_per_token(model)
    device = model_device(model)
    rows = []
    iterator = list(contexts)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc="latency", unit="context")
    for length in iterator:
        ids = prompt_ids_of_length(documents, tokenizer, spec, int(length), batch, demo_tokens,
                                   query_tokens, seed)
        att = torch.ones_like(ids)
        anchors = int(anchor_flags(ids, ids_set).sum())
        runs = {
            "anchor_cache": lambda: anchor_generate(model, None, ids, max_new_tokens=new_tokens,
                                                    attention_mask=att, anchor_ids=ids_set,
                                                    eos_token_id=-1, open_limit=None,
                                                    chunk=prefill_chunk),
            "full_cache": lambda: full_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1),
            "no_cache": lambda: no_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1),
        }
        peaks = {}
        for method in METHODS:  # warm-up (allocator, kernels); its timing is dropped, its peak
            # memory kept (CUDA: max_memory_allocated of the run; CPU: a LiveTensorPeak run)
            peaks[method] = measure_point(method, model, ids, ids_set, new_tokens,
                                          prefill_chunk)["peak_bytes"]
        for repeat in range(repeats):
            for method in METHODS:
                result, seconds = timed(runs[method], device)
                stats = result.stats
                kv = 0 if method == "no_cache" else int(stats.get("kv_bytes"))
                decode_s = float(stats.get("decode_s", math.nan))
                rows.append({"context": int(length), "repeat": repeat, "method": method,
                             "batch": batch, "new_tokens": new_tokens, "seconds": seconds,
                             "prefill_s": float(stats.get("prefill_s", math.nan)),
                             "decode_s": decode_s,
                             "ms_per_token": 1000 * seconds / new_tokens,
                             "decode_ms_per_token": 1000 * decode_s / max(1, new_tokens - 1),
                             "tokens_per_s": batch * new_tokens / seconds,
                             "peak_bytes": peaks[method],
                             "kv_bytes": kv, "cached_tokens_per_row": kv / (per_tok * batch),
                             "anchors_in_prompt": anchors})
    return pd.DataFrame(rows)


def median_interval(values, confidence: float = 0.95, n_resamples: int = 2000,
                    seed: int = 0) -> tuple[float, float, float]:
    """Median of ``values`` and its percentile-bootstrap interval ``(median, low, high)``.

    Fewer than two finite values give no interval (``low`` and ``high`` are NaN): one repeat
    says nothing about the spread, so no target can be declared met from it.
    """
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    if x.size < 2:
        return med, math.nan, math.nan
    if np.all(x == x[0]):
        return med, med, med
    res = bootstrap((x,), np.median, confidence_level=confidence, n_resamples=n_resamples,
                    method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return med, float(res.confidence_interval.low), float(res.confidence_interval.high)


def speedup_table(latency: pd.DataFrame, confidence: float = 0.95, n_resamples: int = 2000,
                  seed: int = 0) -> pd.DataFrame:
    """Per context: anchor-cache speed-ups over no-cache recompute and over the full cache.

    Each speed-up is the median over repeats of the paired ratio ``baseline / anchor`` (same
    repeat, back to back), with ``_lo`` / ``_hi`` columns holding its bootstrap interval at
    ``confidence``. Seconds are medians over repeats; KV bytes and cached tokens are those of the
    last repeat (identical across repeats).
    """
    need = {"context", "method", "seconds", "decode_s", "kv_bytes", "cached_tokens_per_row"}
    missing = need - set(latency.columns)
    if missing:
        raise ParameterError(f"latency table lacks columns {sorted(missing)} (use latency_sweep())")
    latency = latency if "repeat" in latency.columns else latency.assign(repeat=0)
    rows = []
    for context, part in latency.groupby("context", sort=True):
        wide = part.pivot_table(index="repeat", columns="method",
                                values=["seconds", "decode_s", "kv_bytes", "cached_tokens_per_row"])
        row = {"context": int(context), "repeats": int(len(wide))}
        for method in ("no_cache", "full_cache", "anchor_cache"):
            row[f"{method}_s"] = float(wide["seconds"][method].median())
        for name, baseline, column in RATIOS:
            ratios = (wide[column][baseline] / wide[column]["anchor_cache"]).to_numpy()
            med, lo, hi = median_interval(ratios, confidence, n_resamples, seed)
            row.update({name: med, f"{name}_lo": lo, f"{name}_hi": hi})
        last = wide.index.max()
        row.update({"kv_bytes_full": float(wide["kv_bytes"]["full_cache"][last]),
                    "kv_bytes_anchor": float(wide["kv_bytes"]["anchor_cache"][last]),
                    "tokens_full": float(wide["cached_tokens_per_row"]["full_cache"][last]),
                    "tokens_anchor": float(wide["cached_tokens_per_row"]["anchor_cache"][last])})
        rows.append(row)
    out = pd.DataFrame(rows)
    out["kv_reduction"] = 1 - out.kv_bytes_anchor / out.kv_bytes_full
    return out


# --------------------------------------------------------------------------- throughput
#: Methods of the throughput mode, in interleaving order.
THROUGHPUT_METHODS = ("no_cache", "full_cache", "anchor_cache")


class LiveTensorPeak:
    """Peak bytes of live tensors created inside the ``with`` block (CPU stand-in for CUDA's
    ``max_memory_allocated``).

    CPU has no allocator statistics, and RSS is blurred by glibc keeping freed pages. This
    ``TorchDispatchMode`` sees every tensor an ATen op returns, counts each storage once, and
    subtracts it when its last tensor dies (``weakref.finalize``), so ``peak`` is the largest
    sum of live storages created in the block: activations, masks and the KV cache, not the
    weights or inputs that existed before. Buffers an op allocates and frees internally are not
    seen. It adds Python work per op, so never time code while measuring with it.
    """

    def __init__(self):
        import weakref

        from torch.utils._python_dispatch import TorchDispatchMode

        owner = self
        self._finalize = weakref.finalize
        self.live: dict[int, list[int]] = {}  # storage ptr -> [bytes, tensors alive]
        self.current = self.peak = 0

        class _Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in (out if isinstance(out, (tuple, list)) else (out,)):
                    if torch.is_tensor(t):
                        owner._track(t)
                return out

        self._mode = _Mode()

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage.data_ptr()
        if key == 0:
            return
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [storage.nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        self._finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            self.current -= entry[0]
            del self.live[key]

    def __enter__(self) -> "LiveTensorPeak":
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA / CPU allocation failures (the boundary of the batch search)."""
    if isinstance(err, (MemoryError, getattr(torch.cuda, "OutOfMemoryError", MemoryError))):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate" in text
                                              or "cannot allocate" in text)


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_method(method: str, model, ids: torch.Tensor, anchor_ids: set[int], new_tokens: int,
               chunk: int | None = None):
    """One greedy generation of ``new_tokens`` (EOS disabled) by ``method``; returns the result."""
    att = torch.ones_like(ids)
    if method == "anchor_cache":
        return anchor_generate(model, None, ids, max_new_tokens=new_tokens, attention_mask=att,
                               anchor_ids=anchor_ids, eos_token_id=-1, open_limit=None, chunk=chunk)
    if method == "full_cache":
        return full_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1)
    if method == "no_cache":
        return no_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1)
    raise ParameterError(f"method must be one of {THROUGHPUT_METHODS}, got {method!r}")


def measure_point(method: str, model, ids: torch.Tensor, anchor_ids: set[int], new_tokens: int,
                  chunk: int | None = None, memory: bool = True) -> dict:
    """Time one generation and measure its peak memory above what existed before.

    CUDA: one run, ``max_memory_allocated`` after ``reset_peak_memory_stats`` minus the bytes
    allocated before (weights, inputs). CPU: a timed run, then (``memory=True``) an untimed run
    under :class:`LiveTensorPeak`. Raises what the run raised (callers catch OOM).
    """
    device = model_device(model)
    ids = ids.to(device)
    cuda = device.type == "cuda"
    if cuda:
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    result, seconds = timed(lambda: run_method(method, model, ids, anchor_ids, new_tokens, chunk), device)
    peak = math.nan
    if cuda:
        peak = torch.cuda.max_memory_allocated(device) - before
    elif memory:
        with LiveTensorPeak() as meter:
            result = run_method(method, model, ids, anchor_ids, new_tokens, chunk)
        peak = meter.peak
    B = int(ids.shape[0])
    kv = 0 if method == "no_cache" else int(result.stats["kv_bytes"])
    return {"context": int(ids.shape[1]), "batch": B, "method": method, "seconds": seconds,
            "tokens_per_s": B * new_tokens / seconds, "peak_bytes": peak, "kv_bytes": kv}


def largest_batch(method: str, model, make_ids, anchor_ids: set[int], new_tokens: int,
                  max_batch: int, chunk: int | None = None, on_point=None) -> tuple[int, dict | None]:
    """The largest batch (<= ``max_batch``) that runs, by doubling then bisection.

    ``make_ids(batch)`` gives the ``(batch, context)`` prompt ids. An out-of-memory error is
    caught, recorded (``on_point`` gets ``{"batch", "oom": True}``) and taken as the boundary.
    Returns ``(max_batch_that_fits, its measurement)`` (``(0, None)`` when batch 1 fails).
    """
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise ParameterError(f"max_batch must be a positive int, got {max_batch!r}")
    device = model_device(model)
    cache: dict[int, dict | None] = {}

    def fits(batch: int) -> bool:
        if batch not in cache:
            try:
                point = measure_point(method, model, make_ids(batch), anchor_ids, new_tokens, chunk,
                                      memory=False)
            except Exception as err:  # noqa: BLE001 - only OOM is a boundary, the rest re-raised
                if not is_out_of_memory(err):
                    raise
                point = None
            _free(device)
            cache[batch] = point
            if on_point is not None:
                on_point(point or {"method": method, "batch": batch, "oom": True})
        return cache[batch] is not None

    good, bad = 0, None
    batch = 1
    while batch <= max_batch:
        if not fits(batch):
            bad = batch
            break
        good = batch
        if batch == max_batch:
            break
        batch = min(2 * batch, max_batch)
    if bad is not None:
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(mid):
                good = mid
            else:
                bad = mid
    return good, cache.get(good)
