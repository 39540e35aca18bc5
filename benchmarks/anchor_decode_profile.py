"""Profile one decode step of the full cache and of the anchor cache (torch.profiler, CPU).

Why: at short contexts a tiny model's decode step is bound by per-step overhead (mask
building, cache bookkeeping, Python), not by attention, so the anchor cache can only be as
fast as the full cache there if its own bookkeeping is lean. This script shows where one step
goes, for both caches, on the study's architecture (random weights: only speed is measured):

    python benchmarks/anchor_decode_profile.py --context 128 --batch 4 --steps 48
    python benchmarks/anchor_decode_profile.py --context 8192 --batch 4 --steps 16

Prints median milliseconds per decode step (over ``--repeats`` generations, after a warm-up)
and the top operators by self CPU time of one profiled generation, per cache. Run it with
``PYTHONPATH`` at an older checkout to profile the code before a change (the issue's
before/after). Writes nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=48, help="new tokens per generation")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=12, help="operators shown per cache")
    ap.add_argument("--no-profile", action="store_true", help="timings only")
    args = ap.parse_args(argv)

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from labkit.anchor.decoding import anchor_generate, full_cache_generate

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n = args.context + args.steps
    cfg = LlamaConfig(
        vocab_size=2049,
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=max(1024, n),
        tie_word_embeddings=True,
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(cfg).eval()
    anchor = 2048
    ids = torch.randint(0, 2000, (args.batch, args.context))
    ids[:, 19::20] = anchor  # a sentence of 20 tokens, like the study's prose
    att = torch.ones_like(ids)

    def run(method):
        if method == "anchor":
            return anchor_generate(
                model,
                None,
                ids,
                max_new_tokens=args.steps,
                attention_mask=att,
                anchor_ids={anchor},
                eos_token_id=-1,
                open_limit=None,
            )
        return full_cache_generate(model, None, ids, args.steps, att, eos_token_id=-1)

    with torch.no_grad():
        for method in ("anchor", "full"):
            run(method)  # warm-up
        times = {"anchor": [], "full": []}
        for _ in range(args.repeats):
            for method in ("anchor", "full"):
                times[method].append(1000 * run(method).stats["decode_s"] / (args.steps - 1))
        for method, ms in times.items():
            print(
                f"{method:6s} cache: decode {statistics.median(ms):.3f} ms/step "
                f"(median of {args.repeats}; min {min(ms):.3f}) at context {args.context}, "
                f"batch {args.batch}"
            )
        if args.no_profile:
            return 0
        from torch.profiler import ProfilerActivity, profile

        for method in ("anchor", "full"):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run(method)
            events = prof.key_averages()
            calls = sum(e.count for e in events if e.key.startswith("aten::"))
            self_us = sum(e.self_cpu_time_total for e in events)
            # per generated token: ATen calls do not depend on the load, microseconds do
            print(
                f"\n== {method} cache: one generation ({args.steps} tokens): "
                f"{calls / args.steps:.0f} ATen calls and {self_us / 1000 / args.steps:.2f} ms "
                f"self CPU per token; top ops by self CPU time"
            )
            print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
