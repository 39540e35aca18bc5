"""Dense AnSAN mask vs flex-attention BlockMask for continued training: tokens/s and peak memory.

    python benchmarks/anchor_training_masks.py [--contexts 1024,4096] [--device auto] [--steps 3]

A tiny random-weight Llama (hidden 64, 2 layers, 4 heads; a speed/memory benchmark, not a
model) sees batches of random tokens with an anchor every ~20 tokens. ``dense``: SDPA with the
additive ``(B, 1, L, L)`` mask of :class:`labkit.anchor.training.AnchorCollator`; ``flex``:
``attn_implementation="flex_attention"`` with the ``BlockMask`` of
:class:`labkit.anchor.flex.FlexAnchorCollator` (transformers compiles flex-attention). Each
(context, path, phase) runs in a fresh subprocess: one warm-up step (compilation), then
``--steps`` timed steps. Phases: ``train`` (forward + backward, what continued training does)
where the device supports it (flex has no backward on CPU in torch <= 2.13: reported as n/a),
and ``forward`` (no grad) everywhere. Mask building is inside the timed step (the collator's
work). Peak memory: CUDA ``max_memory_allocated`` above the bytes allocated before the timed
steps; CPU: the highest resident set size (``/proc/self/statm``, sampled every 2 ms) during
the timed steps minus the RSS before them, with glibc told to return freed blocks at once
(``MALLOC_MMAP_THRESHOLD_=65536``, ``MALLOC_TRIM_THRESHOLD_=0``) so RSS tracks live memory.
Writes ``figures/anchor_attention/benchmark_anchor_training_masks.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time

ANCHOR = 3


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(path: str, phase: str, context: int, batch: int, steps: int, device: str) -> dict:
    """One measurement in this (fresh) process; returns a JSON-able record."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from labkit.anchor.flex import FlexAnchorCollator, flex_training_available
    from labkit.anchor.training import AnchorCollator
    from labkit.timing import timed

    record = {"path": path, "phase": phase, "context": context, "batch": batch, "device": device}
    if path == "flex" and phase == "train":
        ok, why = flex_training_available(device)
        if not ok:
            return {**record, "skipped": why}
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=172, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=context + 8)
    cfg._attn_implementation = "flex_attention" if path == "flex" else "sdpa"
    model = LlamaForCausalLM(cfg).to(device)
    model.train(phase == "train")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(8, 512, (batch, context), generator=gen)
    ids[torch.rand(batch, context, generator=gen) < 0.05] = ANCHOR
    features = [{"input_ids": row.tolist()} for row in ids]
    collate = (FlexAnchorCollator([ANCHOR], 0, device=device) if path == "flex"
               else AnchorCollator([ANCHOR], 0))
    optim = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step():
        batch_t = {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in collate(features).items()}
        if phase == "train":
            loss = model(**batch_t).loss
            loss.backward()
            optim.step()
            optim.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                model(**{k: v for k, v in batch_t.items() if k != "labels"})

    # labkit.timing waits for the device before each clock read (one timer for every benchmark)
    record["warmup_s"] = timed(step, device)[1]  # warm-up: compilation, allocator
    cuda = device.startswith("cuda")
    peak = {"rss": 0}
    stop = threading.Event()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss()

        def sample():
            while not stop.is_set():
                peak["rss"] = max(peak["rss"], _rss())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    _, seconds = timed(lambda: [step() for _ in range(steps)], device)
    if cuda:
        peak_bytes = torch.cuda.max_memory_allocated() - before
    else:
        stop.set()
        sampler.join()
        peak_bytes = max(peak["rss"], _rss()) - before
    return {**record, "steps": steps, "seconds": seconds,
            "tokens_per_s": steps * batch * context / seconds, "peak_bytes": int(peak_bytes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contexts", default="1024,4096")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        path, phase, context = args.worker.split(":")
        print(json.dumps(worker(path, phase, int(context), args.batch, args.steps, args.device)))
        return 0

    from labkit import io, studies
    from labkit.models import pick_device
    from labkit.paths import study_dir

    device = pick_device(args.device)
    contexts = [int(c) for c in args.contexts.split(",")]
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    records = []
    for context in contexts:
        for phase in ("train", "forward"):
            for path in ("dense", "flex"):
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"{path}:{phase}:{context}",
                       "--batch", str(args.batch), "--steps", str(args.steps), "--device", device]
                done = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if done.returncode != 0:
                    tail = done.stderr.strip().splitlines()[-1:] or ["?"]
                    rec = {"path": path, "phase": phase, "context": context, "error": tail[0]}
                else:
                    rec = json.loads(done.stdout.strip().splitlines()[-1])
                records.append(rec)
                shown = (f"{rec['tokens_per_s']:10.0f} tok/s  peak {rec['peak_bytes'] / 2**20:8.1f} MiB"
                         f"  (warm-up {rec['warmup_s']:.1f} s)" if "seconds" in rec
                         else f"n/a: {rec.get('skipped') or rec.get('error')}")
                print(f"context {context:6d}  {phase:7s}  {path:5s}  {shown}", flush=True)
    out = {"device": device, "batch": args.batch, "steps": args.steps, "records": records,
           "model": "random-weight Llama, hidden 64, 2 layers, 4 heads, 2 KV heads, vocab 512",
           "peak_memory_measure": ("torch.cuda.max_memory_allocated above the bytes allocated "
                                   "before the timed steps" if device.startswith("cuda") else
                                   "peak RSS (sampled every 2 ms) during the timed steps minus "
                                   "RSS before them, glibc returning freed blocks at once"),
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()}}
    path = io.write_json(study_dir(studies.for_benchmark(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "anchor_inference.py")).id)
        / "benchmark_anchor_training_masks.json", out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
