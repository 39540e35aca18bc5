"""Peak memory of one generation and the largest batch that fits, per cache method.

Split from :mod:`labkit.anchor.latency` (the timing sweep): :class:`LiveTensorPeak` measures
peak tensor memory on CPU, :func:`measure_point` times one generation and measures its peak,
:func:`largest_batch` searches the batch boundary (``benchmarks/anchor_inference.py``).
"""

from __future__ import annotations

import math

import torch

from labkit.anchor.decoding import anchor_generate, full_cache_generate, no_cache_generate
from labkit.anchor.support import model_device
from labkit.device import synchronize
from labkit.errors import ParameterError
from labkit.timing import timed

__all__ = [
    "THROUGHPUT_METHODS",
    "LiveTensorPeak",
    "is_out_of_memory",
    "run_method",
    "measure_point",
    "largest_batch",
    "peak_memory",
]

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
                for t in out if isinstance(out, (tuple, list)) else (out,):
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

    def __enter__(self) -> LiveTensorPeak:
        self._mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._mode.__exit__(*exc)


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA / CPU allocation failures (the boundary of the batch search)."""
    if isinstance(err, (MemoryError, getattr(torch.cuda, "OutOfMemoryError", MemoryError))):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate" in text or "cannot allocate" in text
    )


def _free(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run_method(method: str, model, ids: torch.Tensor, anchor_ids: set[int], new_tokens: int, chunk: int | None = None):
    """One greedy generation of ``new_tokens`` (EOS disabled) by ``method``; returns the result."""
    att = torch.ones_like(ids)
    if method == "anchor_cache":
        return anchor_generate(
            model,
            None,
            ids,
            max_new_tokens=new_tokens,
            attention_mask=att,
            anchor_ids=anchor_ids,
            eos_token_id=-1,
            open_limit=None,
            chunk=chunk,
        )
    if method == "full_cache":
        return full_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1)
    if method == "no_cache":
        return no_cache_generate(model, None, ids, new_tokens, att, eos_token_id=-1)
    raise ParameterError(f"method must be one of {THROUGHPUT_METHODS}, got {method!r}")


def measure_point(
    method: str,
    model,
    ids: torch.Tensor,
    anchor_ids: set[int],
    new_tokens: int,
    chunk: int | None = None,
    memory: bool = True,
) -> dict:
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
    return {
        "context": int(ids.shape[1]),
        "batch": B,
        "method": method,
        "seconds": seconds,
        "tokens_per_s": B * new_tokens / seconds,
        "peak_bytes": peak,
        "kv_bytes": kv,
    }


def largest_batch(
    method: str,
    model,
    make_ids,
    anchor_ids: set[int],
    new_tokens: int,
    max_batch: int,
    chunk: int | None = None,
    on_point=None,
) -> tuple[int, dict | None]:
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
                point = measure_point(method, model, make_ids(batch), anchor_ids, new_tokens, chunk, memory=False)
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


def peak_memory(
    method: str, model, ids: torch.Tensor, anchor_ids: set[int], new_tokens: int, chunk: int | None = None
) -> float:
    """Peak memory of one generation above what existed before, from one untimed run (which
    doubles as the timing sweep's warm-up): CUDA ``max_memory_allocated``, CPU
    :class:`LiveTensorPeak`."""
    device = model_device(model)
    ids = ids.to(device)
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run_method(method, model, ids, anchor_ids, new_tokens, chunk)
        synchronize(device)
        return float(torch.cuda.max_memory_allocated(device) - before)
    with LiveTensorPeak() as meter:
        run_method(method, model, ids, anchor_ids, new_tokens, chunk)
    return float(meter.peak)
