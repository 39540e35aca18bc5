"""Study 3's orchestration (``notebooks/meeting_summarization.ipynb``): systems, runs, outputs.

The notebook picks a profile; this module builds the systems the profile names, runs them
through :mod:`labkit.summarize.evaluate`, and turns the runs into the study's tables, figures
and the explorer's ``summaries.jsonl``:

* extractive baselines: Lead-k, centroid and TextRank over MiniLM sentence embeddings, and the
  greedy ROUGE oracle (an upper bound for extraction);
* calibration baselines (:mod:`labkit.summarize.baselines`): the best constant summary (one
  training reference per query kind and length) and random transcript sentences, with Lead-k
  the floors of :mod:`labkit.summarize.floors`;
* the MiniLM turn selector (:mod:`labkit.summarize.selector`), zero-shot and fine-tuned on
  QMSum train: the offline "fine-tuned compact vs zero-shot" comparison on real weights;
* compact fine-tuned generator: any HF seq2seq / causal LM name (``finetune_model``), or
  offline labkit's own tiny decoder (:mod:`labkit.lm`) fine-tuned on QMSum train;
* zero-shot large: a local HF model (``zero_shot_model``) and/or any OpenAI-compatible endpoint
  named by the environment (:mod:`labkit.summarize.endpoint`); absent ones are listed as
  skipped, with the reason.

Figures live in :mod:`labkit.summarize.plots` (re-exported here for the notebook).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import labkit.data as data
from labkit import io
from labkit.errors import ParameterError
from labkit.lm import TinyLMConfig, train_tiny_lm
from labkit.summarize import evaluate, guards, metrics, selector, selector_data
from labkit.summarize.base import Summarizer
from labkit.summarize.baselines import ConstantSummary, RandomSentences
from labkit.summarize.data import Item, load_jsonl, qmsum_items
from labkit.summarize.encoders import SentenceEmbedder, shared_embedder
from labkit.summarize.endpoint import ChatEndpoint, endpoint_configured
from labkit.summarize.extractive import Centroid, GreedyOracle, LeadK, TextRank
from labkit.summarize.finetune import FineTuneConfig, finetune
from labkit.summarize.generative import HFGenerator
from labkit.summarize.plots import (  # noqa: F401
    chunking_figure,
    flag_note,
    lengths_figure,
    main_figure,
    paired_figure,
    pareto_figure,
    png_size,
)

SUMMARIES_FILE = "summaries.jsonl"


def load_items(cfg: dict[str, Any]) -> tuple[list[Item], list[Item]]:
    """``(evaluation items, fine-tuning items)`` from a user's JSONL or QMSum.

    A user's file (``cfg["items_jsonl"]``) is split 80/20 in file order: the first part
    fine-tunes, the rest is evaluated. QMSum uses its published split: the test items are the
    profile's query kinds (``general`` and ``specific`` by default) of the first
    ``max_meetings`` meetings, the fine-tuning items every training query (the selector's
    training queries, with QMSum's relevant spans, come from :func:`training_queries`).
    """

    if cfg.get("items_jsonl"):
        items = load_jsonl(cfg["items_jsonl"])
        cut = max(1, int(0.8 * len(items))) if len(items) > 1 else 0
        train, test = items[:cut], items[cut:] or items
        test = test[: cfg["max_meetings"] or None]
    else:
        splits = data.load("qmsum")
        test = qmsum_items(splits[cfg["split"]], cfg["query_kinds"], cfg["max_meetings"])
        train = qmsum_items(splits["train"], ["general", "specific"], cfg["finetune_train_meetings"])
    return test, train


def training_queries(cfg: dict[str, Any], train: Sequence[Item]) -> list:
    """The selector's training queries: QMSum's training meetings with their relevant spans, or
    a user's fine-tuning items (:func:`load_items`' second part) when ``items_jsonl`` is set."""
    if cfg.get("items_jsonl"):
        return selector_data.queries_from_items(train)
    return selector_data.queries_from_meetings(data.load("qmsum")["train"], cfg["finetune_train_meetings"])


def generation_items(items: Sequence[Item], meetings: int) -> list[Item]:
    """The items of the first ``meetings`` meetings (0: all), every query kind: what the
    generative systems summarize (their cost is per item, the extractive ones' per meeting)."""
    if meetings <= 0:
        return list(items)
    keep = list(dict.fromkeys(it.source or it.item_id for it in items))[:meetings]
    return [it for it in items if (it.source or it.item_id) in set(keep)]


def selector_systems(
    cfg: dict[str, Any], train: Sequence[Item], *, carbon=None, warn=None, use_cache: bool = True
) -> tuple[list[Summarizer], Any]:
    """The MiniLM turn selector zero-shot and fine-tuned on the training queries
    (:func:`training_queries` of ``train``, ``cfg["selector"]`` sizes). Returns ``(systems,
    cached model)``; both read the sentence vectors of Centroid's and TextRank's embedder."""
    queries = training_queries(cfg, train)
    if not queries:
        raise ParameterError("selector_systems: the fine-tuning items hold no training query")
    conf = selector.SelectorConfig(base_model=cfg["embedder"], seed=int(cfg.get("seed", 0) or 0), **cfg["selector"])
    tuned = selector.finetune_selector(queries, conf, carbon=carbon, progress=False)

    def embedder(model: str) -> SentenceEmbedder:
        return shared_embedder(model) if use_cache else SentenceEmbedder(model, use_cache=False)

    sentences = embedder(cfg["embedder"])  # both selectors read the same sentence vectors
    systems = [
        selector.TurnSelector(cfg["embedder"], kind="zero-shot", embedder=sentences, warn=warn),
        selector.TurnSelector(
            cfg["embedder"],
            kind="fine-tuned",
            embedder=sentences,
            query_model=str(tuned.path),
            query_embedder=embedder(str(tuned.path)),
            warn=warn,
        ),
    ]
    return systems, tuned


def extractive_systems(
    embedder_name: str, *, train: Sequence[Item], seed: int = 0, warn=None, use_cache: bool = True
) -> list[Summarizer]:
    """Lead-k, centroid, TextRank (sharing one MiniLM embedder), the greedy oracle, and the two
    calibration baselines: random sentences and the best constant summary.

    Args:
        train: training items the constant summary is chosen on (:func:`load_items`' second
            part). With fewer than 2, the constant baseline is left out with a warning.
        seed: seed of the random-sentence baseline.
        use_cache: off for latency benchmarks: a private embedder without the on-disk cache.
    """
    embedder = shared_embedder(embedder_name) if use_cache else SentenceEmbedder(embedder_name, use_cache=False)
    systems: list[Summarizer] = [
        LeadK(warn=warn),
        Centroid(embedder=embedder, warn=warn),
        TextRank(embedder=embedder, warn=warn),
        GreedyOracle(warn=warn),
        RandomSentences(seed, warn=warn),
    ]
    train = list(train)
    if len(train) >= 2:
        systems.append(ConstantSummary(train, warn=warn))
    elif warn is not None:
        warn(
            "constant-summary baseline left out: it needs at least 2 training items "
            "(pass the fine-tuning items of load_items as train=...)"
        )
    return systems


def compact_system(
    cfg: dict[str, Any],
    train: Sequence[Item],
    *,
    carbon=None,
    warn=None,
    context_strategy: str = "truncate",
    name: str | None = None,
):
    """Fine-tune the compact model the profile names and wrap it as a summarizer.

    Returns ``(system, fine_tuned)``; the base is ``cfg["finetune_model"]`` or, when empty,
    labkit's tiny LM trained here on real text (``cfg["tiny_lm"]`` sizes). It fine-tunes on the
    general (whole-meeting) training items, or on all of them when there are none.
    """

    base = cfg["finetune_model"]
    label = name
    train = [it for it in train if it.kind == "general"] or list(train)  # whole-meeting summaries
    if not base:
        lm = train_tiny_lm(TinyLMConfig(**cfg["tiny_lm"]), progress=False, carbon=carbon)
        base = str(lm.path)
        label = label or f"tiny LM {lm.metrics['total_params'] / 1e6:.1f}M (fine-tuned)"
    tuned = finetune(
        train,
        FineTuneConfig(
            base_model=base,
            epochs=cfg["finetune_epochs"],
            max_target_tokens=cfg["finetune_max_target_tokens"],
            instructions=tuple(cfg["instructions"]),
        ),
        carbon=carbon,
        progress=False,
    )
    system = HFGenerator(
        str(tuned.path),
        name=label or f"{cfg['finetune_model']} (fine-tuned)",
        kind="fine-tuned",
        max_new_tokens=cfg["max_new_tokens"],
        context_strategy=context_strategy,
        batch_size=cfg["generate_batch"],
        warn=warn,
    )
    return system, tuned


def zero_shot_systems(cfg: dict[str, Any], warn=None) -> tuple[list[Summarizer], list[dict]]:
    """Large zero-shot systems that are reachable, and a row per one that is not (each also
    passed to ``warn`` as ``"skipped <system>: <reason>"``)."""
    systems, skipped = [], []
    if cfg.get("zero_shot_model"):
        systems.append(
            HFGenerator(
                cfg["zero_shot_model"],
                max_new_tokens=cfg["max_new_tokens"],
                context_strategy="chunk",
                batch_size=cfg["generate_batch"],
                warn=warn,
            )
        )
    else:
        skipped.append(
            {
                "system": "local zero-shot LLM",
                "reason": "no zero_shot_model given "
                "(e.g. -p zero_shot_model='\"meta-llama/Llama-2-7b-chat-hf\"' with the "
                "weights in the HF cache)",
            }
        )
    if endpoint_configured():
        systems.append(ChatEndpoint(max_new_tokens=cfg["max_new_tokens"], context_strategy="chunk", warn=warn))
    else:
        skipped.append(
            {"system": "OpenAI-compatible endpoint", "reason": "LABKIT_CHAT_BASE_URL and LABKIT_CHAT_MODEL are not set"}
        )
    for row in skipped:  # every skipped panel reaches the run record's warnings (and gallery)
        if warn is not None:
            warn(f"skipped {row['system']}: {row['reason']}")
    return systems, skipped


def summary_rows(runs: Sequence[evaluate.Run]) -> list[dict[str, Any]]:
    """One JSON-able row per (item, instruction, system): the explorer's ``summaries.jsonl``."""
    rows = []
    for run in runs:
        scores = metrics.rouge_per_item(run.predictions, [it.reference for it in run.items])
        for item, summary, stat, (_, s) in zip(run.items, run.predictions, run.stats, scores.iterrows()):
            rows.append(
                {
                    "meeting_id": item.source or item.item_id,
                    "item_id": item.item_id,
                    "query": item.query or "Summarize the whole meeting.",
                    "query_kind": item.kind,
                    "instruction": run.instruction,
                    "system": run.system,
                    "kind": run.kind,
                    "summary": summary,
                    "reference": item.reference,
                    "rouge1": float(s["rouge1"]),
                    "rouge2": float(s["rouge2"]),
                    "rougeL": float(s["rougeL"]),
                    "latency_s": float(stat.latency_s),
                }
            )
    return rows


def write_summaries(folder: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``summaries.jsonl`` atomically (one JSON object per line)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return io.write_text(Path(folder) / SUMMARIES_FILE, text)


def chunking_table(
    make_system: Callable[[str], Summarizer],
    items: Sequence[Item],
    instruction: str,
    n_resamples: int,
    seed: int = 0,
    scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The same model on the same (longest) meetings, reading a truncated prefix vs map-reduce
    over the whole transcript: ROUGE with CIs, latency, how many chunks it took, and the
    degenerate-output ``flag`` (:mod:`labkit.summarize.guards`), which also carries the verdict
    of the main table's ``scores`` (:func:`evaluate.score`) on all items."""
    known = evaluate.verdicts(scores)
    rows = []
    for strategy in ("truncate", "chunk"):
        system = make_system(strategy)
        predictions = system.summarize(items, instruction, progress=False)
        rouge = metrics.rouge_summary(predictions, [it.reference for it in items], n_resamples, seed)
        chunks = [n for _, n in system.chunked] or [1]
        kept = [share for _, share in system.truncated] or [1.0]
        guard = guards.assess(predictions, [it.transcript for it in items], [it.reference for it in items])
        reason = guard["degenerate_reason"]
        inherited = evaluate.verdict_for(system.name, known)
        if not reason and inherited:  # too few meetings here to see it; the full run did
            reason = f"on the evaluation items: {inherited}"
        flag = f"{guards.FLAG_MARK}: {reason}" if reason else ""
        if guard["degenerate"]:
            system._warn(f"{system.name} on the longest meetings {flag}")
        rows.append(
            {
                "system": system.name,
                "strategy": strategy,
                "meetings": len(items),
                "flag": flag,
                **{k: v for k, v in rouge.items() if k.startswith(("rouge1", "rouge2", "rougeL"))},
                "latency_s": float(np.mean([s.latency_s for s in system.last_stats])),
                "mean_chunks": float(np.mean(chunks)),
                "median_share_read": float(np.median(kept)),
            }
        )
    return pd.DataFrame(rows)


def training_table(selector_model, tuned) -> pd.DataFrame:
    """What each compact model's fine-tuning cost, from its model-cache metadata (measured when
    it was trained; a cache hit reports the run that trained it): parameters, examples, epochs,
    seconds and energy (codecarbon; estimated from CPU load x TDP without RAPL)."""
    rows = []
    for label, metrics_ in (
        ("MiniLM selector (fine-tuned)", selector_model.metrics),
        (f"{Path(str(tuned.config.base_model)).name} (fine-tuned generator)", tuned.metrics),
    ):
        examples = metrics_.get("triplets", metrics_.get("examples"))
        rows.append(
            {
                "model": label,
                "parameters": metrics_.get("parameters"),
                "examples": (sum(examples.values()) if isinstance(examples, dict) else examples),
                "epochs": metrics_.get("epochs", tuned.config.epochs),
                "train_seconds": metrics_.get("train_runtime_s"),
                "energy_wh": 1000 * float(metrics_.get("energy_kwh", float("nan"))),
                "per_epoch_energy_wh": ", ".join(
                    f"{1000 * e['energy_kwh']:.3f}" for e in metrics_.get("per_epoch", [])
                ),
            }
        )
    return pd.DataFrame(rows)
