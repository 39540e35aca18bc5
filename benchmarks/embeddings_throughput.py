"""Benchmark: labkit's embedding throughput against raw ``SentenceTransformer.encode``.

On the MQP question texts, side by side in one run and alternating so machine noise hits both:
raw ``model.encode(texts)``; labkit's ``make_embedder("st:...")`` with a fresh (empty) cache, so
it really computes and writes every vector; and labkit again with the cache full. Targets:
labkit / raw >= 0.95 and cached re-run >= 50x faster than computing. Writes
``figures/embeddings_medical/benchmark_embeddings_throughput.json``.

    python benchmarks/embeddings_throughput.py [--quick] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="600 texts, one repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()

    import labkit.data as data
    from labkit import studies
    from labkit.device import describe
    from labkit.embeddings import make_embedder
    from labkit.io import write_json
    from labkit.models import load_sentence_transformer
    from labkit.paths import study_dir
    from labkit.timing import Stopwatch

    pairs = data.load("mqp")
    texts = list(dict.fromkeys(list(pairs["question_1"]) + list(pairs["question_2"])))
    repeats = 1 if args.quick else args.repeats
    if args.quick:
        texts = texts[:600]
    raw_model = load_sentence_transformer(args.model)
    raw_model.encode(texts[:64])  # warm up both paths outside the timings
    rows = {"raw": [], "labkit": [], "cached": []}
    for _ in range(repeats):
        with Stopwatch(raw_model) as clock:  # waits for the model's device before each reading
            raw_model.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
        rows["raw"].append(clock.seconds)
        with tempfile.TemporaryDirectory() as cache:
            os.environ["LABKIT_CACHE_DIR"] = cache
            fresh = make_embedder(f"st:{args.model}", batch_size=64)
            fresh.embed(texts[:64], progress=False)  # load the model (as raw_model was)
            fresh._cache._db.execute("DELETE FROM vectors")
            fresh._cache._db.commit()
            with Stopwatch(raw_model) as clock:  # same device rule as labkit's embedder
                fresh.embed(texts, progress=False)
            rows["labkit"].append(clock.seconds)
            with Stopwatch(raw_model) as clock:
                make_embedder(f"st:{args.model}").embed(texts, progress=False)
            rows["cached"].append(clock.seconds)
    best = {k: min(v) for k, v in rows.items()}
    result = {
        "device": describe(str(raw_model.device), mixed_precision=False),
        "texts": len(texts),
        "repeats": repeats,
        "seconds_best": best,
        "raw_texts_per_s": len(texts) / best["raw"],
        "labkit_texts_per_s": len(texts) / best["labkit"],
        "labkit_over_raw": best["raw"] / best["labkit"],
        "cached_speedup": best["labkit"] / best["cached"],
        "targets": {"labkit_over_raw": 0.95, "cached_speedup": 50},
    }
    result["met"] = result["labkit_over_raw"] >= 0.95 and result["cached_speedup"] >= 50
    print(
        f"{len(texts)} texts, best of {repeats}: raw encode {best['raw']:.2f} s "
        f"({result['raw_texts_per_s']:.0f}/s), labkit {best['labkit']:.2f} s "
        f"({result['labkit_texts_per_s']:.0f}/s), labkit cached {best['cached']:.3f} s"
    )
    print(
        f"labkit / raw throughput: {result['labkit_over_raw']:.3f} (target >= 0.95); "
        f"cached re-run {result['cached_speedup']:.0f}x faster (target >= 50x)"
    )
    out = study_dir(studies.for_benchmark(__file__).id) / "benchmark_embeddings_throughput.json"
    write_json(out, result)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
