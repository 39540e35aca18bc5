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

Throughput mode (issue 13), selected by ``--model-shape``:

    python benchmarks/anchor_inference.py --model-shape tinyllama-1.1b --device cuda --dtype bfloat16
    python benchmarks/anchor_inference.py --model-shape tiny --contexts 256,512 --max-batch 8

A random-weight Llama of the named shape (``tinyllama-1.1b``: hidden 2048, 22 layers, 32 heads,
4 KV heads; ``tiny``: hidden 64, 2 layers, for CPU), a labkit BPE tokenizer trained on the corpus'
training documents with ``<AC>`` added, and prompts cut from real held-out text (QMSum and
Tiny Shakespeare from ``LABKIT_DATA_MIRROR``) with ``<AC>`` after every sentence. Per context and
method (no cache, full cache, anchor cache): the largest batch that fits (doubling then
bisection, capped by ``--max-batch``; an out-of-memory error is caught and recorded as the
boundary) and tokens/s there, latency at batch 1 and 8, and peak memory above the weights
(CUDA: ``max_memory_allocated``; CPU: peak bytes of live tensors created during the run, seen
by a dispatch mode in an untimed second run, :class:`labkit.anchor.memory.LiveTensorPeak`).
Methods are interleaved per repeat; ratios vs the full cache are medians of paired ratios with
95% bootstrap intervals. Writes ``figures/anchor_attention/benchmark_anchor_inference_throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

#: Random-weight Llama shapes of the throughput mode (``vocab``: BPE vocabulary trained here).
SHAPES = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=172,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab=2048,
    ),
    "tinyllama-1.1b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=22,
        num_attention_heads=32,
        num_key_value_heads=4,
        vocab=32000,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke sizes (about a minute once cached)")
    parser.add_argument("--profile", default=None, help="smoke | default | paper (default: default)")
    parser.add_argument("--base-model", default=None, help="any HF causal LM name or folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--model-shape",
        default=None,
        choices=sorted(SHAPES),
        help="throughput mode on a random-weight model of this shape",
    )
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (throughput mode)")
    parser.add_argument(
        "--dtype", default=None, help="float32 | bfloat16 | float16 (default: bfloat16 on CUDA, float32 on CPU)"
    )
    parser.add_argument(
        "--contexts",
        default=None,
        help="comma-separated prompt lengths (default 1024,4096,16384,32768 on CUDA, 256,512 on CPU)",
    )
    parser.add_argument("--new-tokens", type=int, default=None, help="default 64 (CUDA), 16 (CPU)")
    parser.add_argument(
        "--max-batch", type=int, default=None, help="cap of the batch search (default 1024 on CUDA, 8 on CPU)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timing repeats")
    parser.add_argument("--methods", default="no_cache,full_cache,anchor_cache")
    args = parser.parse_args(argv)
    if args.model_shape is not None:
        return throughput_main(args)

    from labkit import config
    from labkit.anchor import PROFILES, study
    from labkit.errors import LabkitError
    from labkit.timing import Stopwatch

    profile = args.profile or ("smoke" if args.quick else "default")
    wall = Stopwatch(None).start()  # whole-benchmark wall time, no device work to wait for
    try:
        cfg = config.resolve(PROFILES, profile)
        cfg["seed"] = args.seed
        config.set_seed(args.seed)
        setup = study.setup_models(cfg, args.base_model, progress=False)
        model, tok = setup["models"]["anchor-trained"]
        spec, heldout = setup["spec"], setup["heldout"]
        kv = study.kv_cache_table(
            model,
            tok,
            spec,
            heldout,
            ks=(5,),
            n_prompts=cfg["kv_prompts"],
            demo_tokens=cfg["demo_tokens"],
            query_tokens=cfg["query_tokens"],
            seed=args.seed,
        )
        kv_summary = kv.groupby("demonstrations", as_index=False).mean(numeric_only=True)
        latency = study.latency_sweep(
            model,
            tok,
            spec,
            heldout,
            cfg["contexts"],
            cfg["new_tokens"],
            cfg["latency_batch"],
            cfg["repeats"],
            cfg["demo_tokens"],
            cfg["query_tokens"],
            seed=args.seed,
            prefill_chunk=cfg["prefill_chunk"],
        )
        speed = study.speedup_table(latency)
        quality = study.quality_table(
            setup["models"], spec, heldout, setup["context"], cfg["ppl_tokens"], cfg["ppl_batch"]
        )
    except LabkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results = study.results_table(kv_summary, speed, quality)
    head = study.headline(kv_summary, speed, quality)

    print(
        f"anchor inference benchmark - profile {profile}, model {setup['anchored'].name} "
        f"(AnLLM-{spec.mode.upper()}), {os.cpu_count()} CPU threads, shared machine"
    )
    print(f"speed-ups: median of {int(speed.repeats.min())}+ interleaved repeats, 95% bootstrap interval")
    print(
        speed[
            [
                "context",
                "no_cache_s",
                "full_cache_s",
                "anchor_cache_s",
                "speedup_vs_no_cache",
                "speedup_vs_no_cache_lo",
                "speedup_vs_no_cache_hi",
                "speedup_vs_full_cache",
                "speedup_vs_full_cache_lo",
                "speedup_vs_full_cache_hi",
                "decode_speedup_vs_full_cache",
                "kv_reduction",
            ]
        ].to_string(index=False, float_format=lambda v: f"{v:.3f}")
    )
    print(
        quality[["model", "inference", "perplexity", "next_token_accuracy"]].to_string(
            index=False, float_format=lambda v: f"{v:.3f}"
        )
    )
    print()
    print(results.to_string(index=False))
    out = {
        "profile": profile,
        "model": setup["anchored"].name,
        "base_model": setup["base_name"],
        "mode": spec.mode,
        "targets": study.TARGETS,
        "headline": head,
        "results": results.to_dict(orient="records"),
        "latency": latency.to_dict(orient="records"),
        "speedup": speed.to_dict(orient="records"),
        "quality": quality.to_dict(orient="records"),
        "kv_cache": kv_summary.to_dict(orient="records"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "wall_s": wall.stop(),
    }
    return _write(out, "benchmark_anchor_inference.json")


# --------------------------------------------------------------------------- throughput mode
def _shape_model(shape: str, vocab: int, max_pos: int, device: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dims = {k: v for k, v in SHAPES[shape].items() if k != "vocab"}
    cfg = LlamaConfig(
        vocab_size=vocab, max_position_embeddings=max_pos, rope_theta=10000.0, tie_word_embeddings=False, **dims
    )
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg)
    return model.to(dtype).eval()


def _prompt_stream(shape: str, seed: int):  # noqa: ARG001 (the held-out split is fixed; seed kept for symmetry)
    """(tokenizer with <AC>, spec, token stream of held-out text with <AC> after each sentence)."""
    from labkit.anchor.anchors import AnchorSpec, insert_anchor_tokens
    from labkit.lm import corpus_documents, train_tokenizer

    train, heldout = corpus_documents(("tinyshakespeare", "qmsum"), 0.05)
    tok = train_tokenizer("\n\n".join(train), SHAPES[shape]["vocab"])
    spec = AnchorSpec(mode="ac")
    tok.add_special_tokens({"extra_special_tokens": [spec.ac_token]}, replace_extra_special_tokens=False)
    stream = []
    for doc in heldout:
        stream += tok.encode(insert_anchor_tokens(doc, spec), add_special_tokens=False)
    return tok, spec, stream


def _make_ids(stream: list[int], context: int):
    import torch

    data = torch.tensor(stream, dtype=torch.long)
    stride = max(1, len(stream) // 97)

    def make(batch: int):  # row b starts b strides further on, wrapping around the held-out text
        starts = (torch.arange(batch) * stride) % len(stream)
        index = (starts[:, None] + torch.arange(context)[None]) % len(stream)
        return data[index]

    return make


def throughput_main(args) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from labkit.anchor.latency import median_interval
    from labkit.anchor.memory import THROUGHPUT_METHODS, is_out_of_memory, largest_batch, measure_point
    from labkit.device import resolve_device
    from labkit.errors import LabkitError, ParameterError
    from labkit.timing import Stopwatch

    wall = Stopwatch(None).start()  # whole-benchmark wall time, no device work to wait for
    try:
        device = resolve_device(args.device)
        cuda = device.startswith("cuda")
        dtype_name = args.dtype or ("bfloat16" if cuda else "float32")
        if dtype_name not in ("float32", "bfloat16", "float16"):
            raise ParameterError(f"--dtype must be float32, bfloat16 or float16, got {dtype_name!r}")
        dtype = getattr(torch, dtype_name)
        contexts = [int(c) for c in (args.contexts or ("1024,4096,16384,32768" if cuda else "256,512")).split(",")]
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        bad = [m for m in methods if m not in THROUGHPUT_METHODS]
        if bad or not methods:
            raise ParameterError(f"--methods must name some of {THROUGHPUT_METHODS}, got {args.methods!r}")
        new_tokens = args.new_tokens or (64 if cuda else 16)
        max_batch = args.max_batch or (1024 if cuda else 8)
        if args.repeats < 2:
            raise ParameterError("--repeats must be >= 2 (intervals need two paired ratios)")
        tok, spec, stream = _prompt_stream(args.model_shape, args.seed)
        model = _shape_model(args.model_shape, len(tok), max(contexts) + new_tokens + 8, device, dtype)
        anchor_ids = {int(tok.convert_tokens_to_ids(spec.ac_token))}
    except LabkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    print(
        f"throughput: {args.model_shape} (random weights, {weights / 2**30:.2f} GiB), {device}, "
        f"{dtype_name}, {new_tokens} new tokens, {args.repeats} interleaved repeats, "
        f"{len(stream)} held-out tokens with <AC> after every sentence"
    )
    if not cuda:
        print("peak memory on CPU: live tensor bytes created during a run (dispatch-mode count), not RSS")
    records, searches, boundaries = [], [], []

    def point(method, ids, memory=True):
        try:
            return measure_point(method, model, ids, anchor_ids, new_tokens, memory=memory)
        except Exception as err:  # noqa: BLE001
            if not is_out_of_memory(err):
                raise
            boundaries.append({"context": int(ids.shape[1]), "batch": int(ids.shape[0]), "method": method, "oom": True})
            if cuda:
                torch.cuda.empty_cache()
            return None

    for context in contexts:
        make = _make_ids(stream, context)
        for method in methods:  # warm-up: kernels, allocator
            point(method, make(1), memory=False)
        found = {}
        for method in methods:
            best, best_point = largest_batch(
                method,
                model,
                make,
                anchor_ids,
                new_tokens,
                max_batch,
                on_point=lambda p: boundaries.append({"context": context, **p}) if p.get("oom") else None,
            )
            found[method] = best
            print(
                f"  context {context}: {method} largest batch {best}"
                f"{' (= --max-batch cap)' if best == max_batch else ''}"
            )
        # interleaved repeats: latency at batch 1 and 8, tokens/s at each method's largest batch
        for repeat in range(args.repeats):
            for label, batch_of in (("b1", lambda m: 1), ("b8", lambda m: 8), ("max", lambda m: found[m])):
                for method in methods:
                    batch = batch_of(method)
                    if batch < 1 or (label != "max" and found[method] < min(batch, max_batch)):
                        continue  # the search already hit out-of-memory below this batch
                    rec = point(method, make(batch), memory=(repeat == 0))
                    if rec is not None:
                        records.append({**rec, "repeat": repeat, "setting": label})
        for method in methods:
            tps = [
                r["tokens_per_s"]
                for r in records
                if r["context"] == context and r["method"] == method and r["setting"] == "max"
            ]
            searches.append(
                {
                    "context": context,
                    "method": method,
                    "max_batch": found[method],
                    "tokens_per_s": float(np.median(tps)) if tps else float("nan"),
                    "capped": found[method] == max_batch,
                }
            )
    table = pd.DataFrame(records)
    print()
    rows = []
    for (context, setting), part in table.groupby(["context", "setting"], sort=True):
        wide = part.pivot_table(index="repeat", columns="method", values=["seconds", "tokens_per_s"])
        first = part[part.repeat == part.repeat.min()].set_index("method")
        for method in methods:
            if method not in wide["seconds"]:
                continue
            row = {
                "context": context,
                "setting": setting,
                "method": method,
                "batch": int(first.loc[method, "batch"]),
                "seconds": float(wide["seconds"][method].median()),
                "tokens_per_s": float(wide["tokens_per_s"][method].median()),
                "peak_MiB": float(first.loc[method, "peak_bytes"]) / 2**20,
                "kv_MiB": float(first.loc[method, "kv_bytes"]) / 2**20,
            }
            if "full_cache" in wide["seconds"]:
                if setting == "max":  # throughput ratio: method tokens/s over full cache's
                    ratio = wide["tokens_per_s"][method] / wide["tokens_per_s"]["full_cache"]
                else:  # latency speed-up: full-cache seconds over the method's
                    ratio = wide["seconds"]["full_cache"] / wide["seconds"][method]
                med, lo, hi = median_interval(ratio.to_numpy())
                row.update({"vs_full": med, "vs_full_lo": lo, "vs_full_hi": hi})
            rows.append(row)
    summary = pd.DataFrame(rows)
    print(
        "latency (b1, b8: vs_full = full-cache seconds / method seconds) and throughput at each "
        "method's largest batch (max: vs_full = tokens/s ratio); median [95% CI]"
    )
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print()
    print(pd.DataFrame(searches).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    if boundaries:
        print(f"\nout-of-memory boundaries: {boundaries}")
    out = {
        "mode": "throughput",
        "model_shape": args.model_shape,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if cuda else platform.processor(),
        "dtype": dtype_name,
        "new_tokens": new_tokens,
        "max_batch_cap": max_batch,
        "repeats": args.repeats,
        "weights_bytes": weights,
        "peak_memory_measure": (
            "torch.cuda.max_memory_allocated above the bytes allocated before the run"
            if cuda
            else "peak bytes of live tensors created during an untimed run (labkit.anchor.memory.LiveTensorPeak)"
        ),
        "records": records,
        "max_batch": searches,
        "summary": summary.to_dict(orient="records"),
        "oom": boundaries,
        "torch": torch.__version__,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform()},
        "wall_s": wall.stop(),
    }
    return _write(out, "benchmark_anchor_inference_throughput.json")


def _write(out: dict, name: str) -> int:
    """Write the benchmark's JSON into the anchor study's folder; exit code 0."""
    from labkit import io, studies
    from labkit.paths import study_dir

    path = io.write_json(study_dir(studies.for_benchmark(__file__).id) / name, out)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
