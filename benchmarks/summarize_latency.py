"""Benchmark: latency per transcript and tokens/s of every summarizer, side by side in one run.

Runs each system of study 3 (extractive baselines, the MiniLM selectors zero-shot and fine-tuned,
and the compact fine-tuned generator of the chosen profile) on the same QMSum test meetings with
every cache off (summaries and sentence embeddings: each system embeds with its own model
instance), and prints seconds per transcript,
input tokens read per second and output tokens written per second. Writes
``figures/meeting_summarization/benchmark_summarize_latency.json``.

    python benchmarks/summarize_latency.py [--quick] [--profile smoke|default] [--meetings N]
"""

from __future__ import annotations

import argparse

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 meetings, smoke-profile models")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--meetings", type=int, default=8)
    args = parser.parse_args()

    from labkit import studies
    from labkit.config import resolve
    from labkit.device import describe
    from labkit.io import write_json
    from labkit.paths import study_dir
    from labkit.summarize import PROFILES, evaluate, metrics, study

    cfg = resolve(PROFILES, "smoke" if args.quick else args.profile)
    cfg["max_meetings"] = 2 if args.quick else args.meetings
    items, train = study.load_items(cfg)
    count = metrics.count_tokens_with(cfg["token_counter"])
    compact, _ = study.compact_system(cfg, train)
    # time the real work: no cached sentence embeddings either
    selectors, _ = study.selector_systems(cfg, train, use_cache=False)
    systems = (
        study.extractive_systems(cfg["embedder"], train=train, seed=int(cfg.get("seed") or 0), use_cache=False)
        + selectors
        + [compact]
    )
    rows = []
    for system in systems:
        run = evaluate.run_system(system, items, "medium", progress=False, use_cache=False)
        eff = metrics.efficiency(
            [s.latency_s for s in run.stats], [count(i.transcript) for i in items], [count(p) for p in run.predictions]
        )
        rows.append({"system": system.name, "kind": system.kind, "transcripts": len(items), **eff})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.3f}"))
    out = study_dir(studies.for_benchmark(__file__).id) / "benchmark_summarize_latency.json"
    # every system is timed by labkit.timing (device synchronised before each clock reading)
    write_json(out, {"profile": cfg["profile"], "instruction": "medium", "device": describe(), "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
