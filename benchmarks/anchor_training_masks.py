"""Dense AnSAN mask vs flex-attention BlockMask in continued training: tokens/s and peak memory.

    python benchmarks/anchor_training_masks.py [--contexts 1024,4096] [--device auto]
        [--batch 1] [--steps 5] [--unfused-cpu-flex]

A tiny random-weight Llama (hidden 64, 2 layers, 4 heads, 2 KV heads; a speed/memory
benchmark, not a model) sees blocks of random tokens with an anchor at 5% of positions. Both
paths go through the code continued training runs (:func:`labkit.anchor.training.train_anchor_lm`):
:func:`labkit.anchor.flex.attention_collator` puts the model on its path (``dense``: SDPA with
the additive ``(B, 1, L, L)`` mask; ``flex``: ``attn_implementation="flex_attention"`` with the
``BlockMask``, transformers compiling flex-attention) and
:func:`labkit.anchor.training.anchor_trainer` builds the same HF ``Trainer`` (AdamW, clipping,
bf16 autocast on CUDA). Phases: ``train`` (Trainer steps: batch collation incl. the mask,
forward, backward, optimiser) and ``forward`` (collation + a no-grad forward). Each (context,
phase, path) runs in a fresh subprocess: one warm-up step (compilation, optimiser state), then
``--steps`` timed steps; tokens/s and peak memory are per step, printed as the median with a
95% percentile-bootstrap interval over the steps, and flex/dense ratios with an interval from
resampling both paths' steps.

flex has no backward on CPU in torch <= 2.13, so CPU ``train`` rows for flex are n/a;
``--unfused-cpu-flex`` adds them anyway as path ``flex-unfused``: PyTorch's eager flex-attention
(its device guard lifted, as ``tests/anchor/test_flex_training.py`` does), which materialises
the scores per head: a correctness path, no stand-in for the fused CUDA kernel.

Peak memory per step: CUDA ``max_memory_allocated`` (reset before each step); CPU the highest
resident set size (``/proc/self/statm``, sampled every 2 ms) during the step, glibc returning
freed blocks at once (``MALLOC_MMAP_THRESHOLD_=65536``, ``MALLOC_TRIM_THRESHOLD_=0``) so RSS
tracks live memory. Both above a baseline: for ``train`` the bytes in use before
``Trainer.train()`` (so the batch the data loader prefetches, mask included, counts; AdamW state
and gradients, equal for both paths, count too), for ``forward`` those after the warm-up step
(so flex-attention's compiled code, host memory on CPU, does not count).
Writes ``figures/anchor_attention/benchmark_anchor_training_masks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

ANCHOR = 3
VOCAB = 512


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Meter:
    """Per-step seconds and peak bytes between :meth:`mark` calls (device-synchronised)."""

    def __init__(self, device: str):
        import torch

        self.torch, self.cuda = torch, device.startswith("cuda")
        self.seconds, self.peaks, self.base, self._peak = [], [], 0, 0
        self._stop = threading.Event()
        self._thread = None
        from labkit.timing import Stopwatch

        self.clock = Stopwatch(device)

    def baseline(self) -> None:
        """The bytes in use now are what every step's peak is measured above."""
        self.base = self.torch.cuda.memory_allocated() if self.cuda else _rss()

    def begin(self, baseline: bool = True) -> None:
        """Start the timed steps (peaks reset, clock read); ``baseline`` takes it here."""
        if baseline:
            self.baseline()
        if self.cuda:
            self.torch.cuda.reset_peak_memory_stats()
        else:
            self._peak = _rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self.clock.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, _rss())
            time.sleep(0.002)

    def mark(self) -> None:
        """End of one step: record its seconds and its peak, reset the peak."""
        self.seconds.append(self.clock.lap())
        if self.cuda:
            self.peaks.append(self.torch.cuda.max_memory_allocated() - self.base)
            self.torch.cuda.reset_peak_memory_stats()
        else:
            now = _rss()
            self.peaks.append(max(self._peak, now) - self.base)
            self._peak = now

    def end(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _lift_cpu_flex_guard() -> None:
    """PyTorch's eager flex-attention autograd on CPU (see the module docstring)."""
    import torch.nn.attention.flex_attention as torch_flex
    import transformers.integrations.flex_attention as hf_flex

    import labkit.anchor.flex as lab_flex

    torch_flex._validate_device = lambda *tensors: None
    hf_flex.compile_friendly_flex_attention = lambda q, k, v, training=False, **kw: torch_flex.flex_attention(
        q, k, v, **kw
    )
    lab_flex.flex_training_available = lambda device: (True, "")


def worker(path: str, phase: str, context: int, batch: int, steps: int, device: str) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able record."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, TrainerCallback
    from transformers.trainer_callback import PrinterCallback

    from labkit.anchor.flex import attention_collator, choose_training_attention
    from labkit.anchor.training import AnchorTrainConfig, anchor_trainer

    record = {"path": path, "phase": phase, "context": context, "batch": batch, "device": device}
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context + 8,
    )
    cfg._attn_implementation = "sdpa"
    model = LlamaForCausalLM(cfg).to(device)
    if path == "flex-unfused":
        _lift_cpu_flex_guard()
    attention = "dense" if path == "dense" else "flex"
    if phase == "train" and attention == "flex":
        got, why = choose_training_attention("auto", device, model)
        if got != "flex":
            return {**record, "skipped": why}
    collate = attention_collator(model, attention, [ANCHOR], 0)
    gen = torch.Generator().manual_seed(0)
    blocks = torch.randint(8, VOCAB, ((steps + 1) * batch, context), generator=gen)
    blocks[torch.rand(blocks.shape, generator=gen) < 0.05] = ANCHOR
    features = [{"input_ids": row} for row in blocks]
    if attention == "flex":
        record["tiles_skipped_pct"] = float(collate(features[:batch])["attention_mask"].sparsity())
    meter = _Meter(device)
    if phase == "train":

        class Steps(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == 1:
                    record["warmup_s"] = meter.clock.lap()
                    meter.begin(baseline=False)
                else:
                    meter.mark()

        tcfg = AnchorTrainConfig(batch_size=batch, context_length=context, warmup_steps=0)
        with tempfile.TemporaryDirectory() as scratch:
            trainer = anchor_trainer(
                model.train(), blocks, collate, tcfg, steps=steps + 1, scratch=scratch, callbacks=[Steps()]
            )
            trainer.remove_callback(PrinterCallback)  # keep stdout for the JSON line
            meter.baseline()  # before the loader's prefetched batch (and its mask) exists
            meter.clock.start()
            trainer.train()
    else:
        model.eval()
        meter.clock.start()
        for i in range(steps + 1):
            with torch.no_grad():
                inputs = {
                    k: (v.to(device) if torch.is_tensor(v) else v)
                    for k, v in collate(features[i * batch : (i + 1) * batch]).items()
                }
                model(**{k: v for k, v in inputs.items() if k != "labels"})
            del inputs  # one batch (and mask) alive at a time, as in inference
            if i == 0:
                record["warmup_s"] = meter.clock.lap()
                meter.begin()
            else:
                meter.mark()
    meter.end()
    return {
        **record,
        "steps": steps,
        "step_seconds": meter.seconds,
        "tokens_per_s": [batch * context / s for s in meter.seconds],
        "peak_bytes": [int(b) for b in meter.peaks],
    }


def _median_interval(values) -> tuple[float, float, float]:
    from labkit.anchor.latency import median_interval

    return median_interval(values)


def _ratio_interval(num, den, seed: int = 0) -> tuple[float, float, float]:
    """Median(num) / median(den) with a 95% percentile-bootstrap interval (independent samples)."""
    import numpy as np
    from scipy.stats import bootstrap

    a, b = np.asarray(num, float), np.asarray(den, float)
    ratio = float(np.median(a) / np.median(b))
    if a.size < 2 or b.size < 2 or (np.all(a == a[0]) and np.all(b == b[0])):
        return ratio, float("nan"), float("nan")
    res = bootstrap(
        (a, b),
        lambda x, y, axis: np.median(x, axis=axis) / np.median(y, axis=axis),
        paired=False,
        vectorized=True,
        method="percentile",
        n_resamples=2000,
        rng=np.random.default_rng(seed),
    )
    return ratio, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _show(values, scale: float = 1.0, fmt: str = "{:.0f}") -> str:
    med, lo, hi = (v / scale for v in _median_interval(values))
    return f"{fmt.format(med)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contexts", default="1024,4096")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--unfused-cpu-flex", action="store_true", help="also train through PyTorch's eager flex-attention on CPU"
    )
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        path, phase, context = args.worker.split(":")
        print(json.dumps(worker(path, phase, int(context), args.batch, args.steps, args.device)))
        return 0

    from labkit import io, studies
    from labkit.device import resolve_device
    from labkit.errors import ParameterError
    from labkit.paths import study_dir

    if args.steps < 2:
        raise ParameterError("--steps must be >= 2 (intervals need two timed steps)")
    device = resolve_device(args.device)
    contexts = [int(c) for c in args.contexts.split(",")]
    paths = ["dense", "flex"] + (["flex-unfused"] if args.unfused_cpu_flex and device == "cpu" else [])
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "LABKIT_DEVICE": device}
    print(
        f"{device}, batch {args.batch}: median of {args.steps} steps after a warm-up step, "
        "95% bootstrap interval in brackets",
        flush=True,
    )
    records, ratios = [], []
    for context in contexts:
        for phase in ("train", "forward"):
            done_here = {}
            for path in paths:
                if path == "flex-unfused" and phase == "forward":
                    continue
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    f"{path}:{phase}:{context}",
                    "--batch",
                    str(args.batch),
                    "--steps",
                    str(args.steps),
                    "--device",
                    device,
                ]
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                    rec = {"path": path, "phase": phase, "context": context, "error": tail[0]}
                else:
                    rec = json.loads(done.stdout.strip().splitlines()[-1])
                records.append(rec)
                if "tokens_per_s" in rec:
                    done_here[path] = rec
                    tiles = f"  tiles skipped {rec['tiles_skipped_pct']:.1f}%" if "tiles_skipped_pct" in rec else ""
                    shown = (
                        f"{_show(rec['tokens_per_s'])} tok/s  peak "
                        f"{_show(rec['peak_bytes'], 2**20, '{:.1f}')} MiB  "
                        f"(warm-up {rec['warmup_s']:.1f} s){tiles}"
                    )
                else:
                    shown = f"n/a: {rec.get('skipped') or rec.get('error')}"
                print(f"context {context:6d}  {phase:7s}  {path:12s}  {shown}", flush=True)
            for path in [p for p in done_here if p != "dense" and "dense" in done_here]:
                ref, got = done_here["dense"], done_here[path]
                row = {
                    "context": context,
                    "phase": phase,
                    "path": path,
                    "tokens_per_s_ratio": _ratio_interval(got["tokens_per_s"], ref["tokens_per_s"]),
                    "peak_ratio": _ratio_interval(got["peak_bytes"], ref["peak_bytes"]),
                }
                ratios.append(row)
                t, m = row["tokens_per_s_ratio"], row["peak_ratio"]
                print(
                    f"context {context:6d}  {phase:7s}  {path} / dense: tokens/s {t[0]:.2f}x "
                    f"[{t[1]:.2f}, {t[2]:.2f}]  peak memory {m[0]:.2f}x [{m[1]:.2f}, {m[2]:.2f}]",
                    flush=True,
                )
    out = {
        "device": device,
        "batch": args.batch,
        "steps": args.steps,
        "records": records,
        "ratios": ratios,
        "interval": "95% percentile bootstrap over the timed steps",
        "model": "random-weight Llama, hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 512",
        "peak_memory_measure": (
            (
                "torch.cuda.max_memory_allocated"
                if device.startswith("cuda")
                else "peak RSS (sampled every 2 ms; glibc returning freed blocks at once)"
            )
            + " per step, above the bytes in use before Trainer.train() "
            "(train) or after the warm-up step (forward)"
        ),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
    }
    path = io.write_json(
        study_dir(
            studies.for_benchmark(os.path.join(os.path.dirname(os.path.abspath(__file__)), "anchor_inference.py")).id
        )
        / "benchmark_anchor_training_masks.json",
        out,
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
