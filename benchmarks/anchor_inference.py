"""Benchmark of anchor-based inference (study 2): KV-cache reduction, speed-ups, perplexity gap.

    python benchmarks/anchor_inference.py [--quick] [--profile NAME] [--base-model NAME_OR_PATH]

Trains (or loads from labkit's cache) the profile's tiny base LM and its anchor-trained copy,
then measures in one run, side by side: KV-cache bytes full vs anchor after 5-demonstration
prompts of held-out text, greedy decoding time of no-cache recompute / full cache / anchor
cache across context lengths, and held-out perplexity under full attention vs anchor inference.
Prints each target next to the measured value and writes
``figures/anchor_attention/benchmark_anchor_inference.json``. ``--quick`` uses the smoke profile.
Timings are wall-clock on this machine (CUDA synchronised before each clock reading), the three
methods interleaved per repeat; speed-ups are medians of paired ratios with 95% bootstrap
intervals, and a target counts as met only when the interval's lower end clears it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (about a minute once cached)")
    parser.add_argument("--profile", default=None, help="smoke | default | paper (default: default)")
    parser.add_argument("--base-model", default=None, help="any HF causal LM name or folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from labkit import config, io
    from labkit.anchor import PROFILES, study
    from labkit.errors import LabkitError
    from labkit import studies
    from labkit.paths import study_dir

    profile = args.profile or ("smoke" if args.quick else "default")
    t0 = time.perf_counter()
    try:
        cfg = config.resolve(PROFILES, profile)
        cfg["seed"] = args.seed
        config.set_seed(args.seed)
        setup = study.setup_models(cfg, args.base_model, progress=False)
        model, tok = setup["models"]["anchor-trained"]
        spec, heldout = setup["spec"], setup["heldout"]
        kv = study.kv_cache_table(model, tok, spec, heldout, ks=(5,), n_prompts=cfg["kv_prompts"],
                                  demo_tokens=cfg["demo_tokens"], query_tokens=cfg["query_tokens"],
                                  seed=args.seed)
        kv_summary = kv.groupby("demonstrations", as_index=False).mean(numeric_only=True)
        latency = study.latency_sweep(model, tok, spec, heldout, cfg["contexts"], cfg["new_tokens"],
                                      cfg["latency_batch"], cfg["repeats"], cfg["demo_tokens"],
                                      cfg["query_tokens"], seed=args.seed,
                                      prefill_chunk=cfg["prefill_chunk"])
        speed = study.speedup_table(latency)
        quality = study.quality_table(setup["models"], spec, heldout, setup["context"],
                                      cfg["ppl_tokens"], cfg["ppl_batch"])
    except LabkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = study.results_table(kv_summary, speed, quality)
    head = study.headline(kv_summary, speed, quality)

    print(f"anchor inference benchmark - profile {profile}, model {setup['anchored'].name} "
          f"(AnLLM-{spec.mode.upper()}), {os.cpu_count()} CPU threads, shared machine")
    print(f"speed-ups: median of {int(speed.repeats.min())}+ interleaved repeats, 95% bootstrap interval")
    print(speed[["context", "no_cache_s", "full_cache_s", "anchor_cache_s", "speedup_vs_no_cache",
                 "speedup_vs_no_cache_lo", "speedup_vs_no_cache_hi", "speedup_vs_full_cache",
                 "speedup_vs_full_cache_lo", "speedup_vs_full_cache_hi",
                 "decode_speedup_vs_full_cache", "kv_reduction"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(quality[["model", "inference", "perplexity", "next_token_accuracy"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(results.to_string(index=False))
    out = {"profile": profile, "model": setup["anchored"].name, "base_model": setup["base_name"],
           "mode": spec.mode, "targets": study.TARGETS, "headline": head,
           "results": results.to_dict(orient="records"), "latency": latency.to_dict(orient="records"),
           "speedup": speed.to_dict(orient="records"), "quality": quality.to_dict(orient="records"),
           "kv_cache": kv_summary.to_dict(orient="records"),
           "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
           "wall_s": time.perf_counter() - t0}
    folder = study_dir(studies.for_benchmark(__file__).id)
    path = io.write_json(folder / "benchmark_anchor_inference.json", out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
