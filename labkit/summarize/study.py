"""Study 3's orchestration (``notebooks/meeting_summarization.ipynb``): systems, runs, outputs.

The notebook picks a profile; this module builds the systems the profile names, runs them
through :mod:`labkit.summarize.evaluate`, and turns the runs into the study's tables, figures
and the explorer's ``summaries.jsonl``:

* extractive baselines: Lead-k, centroid and TextRank over MiniLM sentence embeddings, and the
  greedy ROUGE oracle (an upper bound for extraction);
* compact fine-tuned: any HF seq2seq / causal LM name (``finetune_model``), or offline
  labkit's own tiny decoder (:mod:`labkit.lm`) fine-tuned on QMSum train;
* zero-shot large: a local HF model (``zero_shot_model``) and/or any OpenAI-compatible endpoint
  named by the environment (:mod:`labkit.summarize.endpoint`); absent ones are listed as
  skipped, with the reason.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from labkit import io
from labkit.figures import PALETTE
from labkit.summarize import evaluate, metrics
from labkit.summarize.base import Summarizer
from labkit.summarize.data import Item, qmsum_items
from labkit.summarize.endpoint import ChatEndpoint, endpoint_configured
from labkit.summarize.extractive import Centroid, GreedyOracle, LeadK, SentenceEmbedder, TextRank

SUMMARIES_FILE = "summaries.jsonl"


def load_items(cfg: dict[str, Any]) -> tuple[list[Item], list[Item]]:
    """``(evaluation items, fine-tuning items)`` from a user's JSONL or QMSum.

    A user's file (``cfg["items_jsonl"]``) is split 80/20 in file order: the first part
    fine-tunes, the rest is evaluated. QMSum uses its published split.
    """
    from labkit.summarize.data import load_jsonl

    if cfg.get("items_jsonl"):
        items = load_jsonl(cfg["items_jsonl"])
        cut = max(1, int(0.8 * len(items))) if len(items) > 1 else 0
        train, test = items[:cut], items[cut:] or items
        return test[:cfg["max_meetings"] or None], train
    import labkit.data as data

    splits = data.load("qmsum")
    test = qmsum_items(splits[cfg["split"]], cfg["query_kinds"], cfg["max_meetings"])
    train = qmsum_items(splits["train"], ["general"], cfg["finetune_train_meetings"])
    return test, train


def extractive_systems(embedder_name: str, warn=None) -> list[Summarizer]:
    """Lead-k, centroid, TextRank (sharing one MiniLM embedder) and the greedy oracle."""
    embedder = SentenceEmbedder(embedder_name)
    return [LeadK(warn=warn), Centroid(embedder=embedder, warn=warn),
            TextRank(embedder=embedder, warn=warn), GreedyOracle(warn=warn)]


def compact_system(cfg: dict[str, Any], train: Sequence[Item], *, carbon=None, warn=None,
                   context_strategy: str = "truncate", name: str | None = None):
    """Fine-tune the compact model the profile names and wrap it as a summarizer.

    Returns ``(system, fine_tuned)``; the base is ``cfg["finetune_model"]`` or, when empty,
    labkit's tiny LM trained here on real text (``cfg["tiny_lm"]`` sizes).
    """
    from labkit.summarize.finetune import FineTuneConfig, finetune
    from labkit.summarize.generative import HFGenerator

    base = cfg["finetune_model"]
    label = name
    if not base:
        from labkit.lm import TinyLMConfig, train_tiny_lm
        lm = train_tiny_lm(TinyLMConfig(**cfg["tiny_lm"]), progress=False, carbon=carbon)
        base = str(lm.path)
        label = label or f"tiny LM {lm.metrics['total_params'] / 1e6:.1f}M (fine-tuned)"
    tuned = finetune(train, FineTuneConfig(base_model=base, epochs=cfg["finetune_epochs"],
                                           max_target_tokens=cfg["finetune_max_target_tokens"],
                                           instructions=tuple(cfg["instructions"])),
                     carbon=carbon, progress=False)
    system = HFGenerator(str(tuned.path), name=label or f"{cfg['finetune_model']} (fine-tuned)",
                         kind="fine-tuned", max_new_tokens=cfg["max_new_tokens"],
                         context_strategy=context_strategy, batch_size=cfg["generate_batch"],
                         warn=warn)
    return system, tuned


def zero_shot_systems(cfg: dict[str, Any], warn=None) -> tuple[list[Summarizer], list[dict]]:
    """Large zero-shot systems that are reachable, and a row per one that is not."""
    systems, skipped = [], []
    if cfg.get("zero_shot_model"):
        from labkit.summarize.generative import HFGenerator
        systems.append(HFGenerator(cfg["zero_shot_model"], max_new_tokens=cfg["max_new_tokens"],
                                   context_strategy="chunk", batch_size=cfg["generate_batch"],
                                   warn=warn))
    else:
        skipped.append({"system": "local zero-shot LLM", "reason": "no zero_shot_model given "
                        "(e.g. -p zero_shot_model='\"meta-llama/Llama-2-7b-chat-hf\"' with the "
                        "weights in the HF cache)"})
    if endpoint_configured():
        systems.append(ChatEndpoint(max_new_tokens=cfg["max_new_tokens"], context_strategy="chunk",
                                    warn=warn))
    else:
        skipped.append({"system": "OpenAI-compatible endpoint", "reason": "LABKIT_CHAT_BASE_URL "
                        "and LABKIT_CHAT_MODEL are not set"})
    return systems, skipped


def summary_rows(runs: Sequence[evaluate.Run], items: Sequence[Item]) -> list[dict[str, Any]]:
    """One JSON-able row per (item, instruction, system): the explorer's ``summaries.jsonl``."""
    references = [it.reference for it in items]
    rows = []
    for run in runs:
        scores = metrics.rouge_per_item(run.predictions, references)
        for item, summary, stat, (_, s) in zip(items, run.predictions, run.stats, scores.iterrows()):
            rows.append({"meeting_id": item.source or item.item_id, "item_id": item.item_id,
                         "query": item.query or "Summarize the whole meeting.",
                         "instruction": run.instruction, "system": run.system, "kind": run.kind,
                         "summary": summary, "reference": item.reference,
                         "rouge1": float(s["rouge1"]), "rouge2": float(s["rouge2"]),
                         "rougeL": float(s["rougeL"]), "latency_s": float(stat.latency_s)})
    return rows


def write_summaries(folder: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write ``summaries.jsonl`` atomically (one JSON object per line)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return io.write_text(Path(folder) / SUMMARIES_FILE, text)


def chunking_table(make_system: Callable[[str], Summarizer], items: Sequence[Item],
                   instruction: str, n_resamples: int, seed: int = 0) -> pd.DataFrame:
    """The same model on the same (longest) meetings, reading a truncated prefix vs map-reduce
    over the whole transcript: ROUGE with CIs, latency and how many chunks it took."""
    rows = []
    for strategy in ("truncate", "chunk"):
        system = make_system(strategy)
        predictions = system.summarize(items, instruction, progress=False)
        rouge = metrics.rouge_summary(predictions, [it.reference for it in items], n_resamples, seed)
        chunks = [n for _, n in system.chunked] or [1]
        kept = [share for _, share in system.truncated] or [1.0]
        rows.append({"system": system.name, "strategy": strategy, "meetings": len(items),
                     **{k: v for k, v in rouge.items() if k.startswith(("rouge1", "rouge2", "rougeL"))},
                     "latency_s": float(np.mean([s.latency_s for s in system.last_stats])),
                     "mean_chunks": float(np.mean(chunks)), "median_share_read": float(np.median(kept))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures

def pareto_figure(scores: pd.DataFrame, instruction: str = "medium") -> go.Figure:
    """ROUGE-1 against latency, cost and energy per summary, Pareto front marked."""
    frame = evaluate.with_pareto(scores[scores["instruction"] == instruction])
    costs = [("latency_s", "seconds per transcript"), ("usd_per_1000", "USD per 1,000 summaries"),
             ("energy_wh_per_summary", "Wh per summary")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[c[1] for c in costs])
    kinds = {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(sorted(frame["kind"].unique()))}
    for col, (cost, label) in enumerate(costs, start=1):
        for _, row in frame.iterrows():
            on_front = bool(row[f"pareto_{cost}"])
            fig.add_trace(go.Scatter(
                x=[row[cost]], y=[row["rouge1"]], mode="markers+text", text=[row["system"]],
                textposition="top center", textfont=dict(size=9), name=row["system"],
                showlegend=False,
                error_y=dict(type="data", symmetric=False, array=[row["rouge1_high"] - row["rouge1"]],
                             arrayminus=[row["rouge1"] - row["rouge1_low"]]),
                marker=dict(size=12 if on_front else 8, color=kinds[row["kind"]],
                            symbol="star" if on_front else "circle")), row=1, col=col)
        fig.update_xaxes(type="log", title=label, row=1, col=col)
    fig.update_yaxes(title="ROUGE-1 (95% CI)", row=1, col=1)
    fig.update_layout(title=f"Quality against cost ({instruction} summaries); stars: Pareto front")
    return fig


def main_figure(scores: pd.DataFrame) -> go.Figure:
    """ROUGE-1/2/L per system and instruction type, with bootstrap CIs."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=["ROUGE-1", "ROUGE-2", "ROUGE-L"])
    insts = list(dict.fromkeys(scores["instruction"]))
    for col, metric in enumerate(("rouge1", "rouge2", "rougeL"), start=1):
        for i, inst in enumerate(insts):
            sub = scores[scores["instruction"] == inst]
            fig.add_trace(go.Bar(x=sub["system"], y=sub[metric], name=inst, legendgroup=inst,
                                 showlegend=col == 1, marker_color=PALETTE[i % len(PALETTE)],
                                 error_y=dict(type="data", symmetric=False,
                                              array=sub[f"{metric}_high"] - sub[metric],
                                              arrayminus=sub[metric] - sub[f"{metric}_low"])),
                          row=1, col=col)
    fig.update_layout(barmode="group", title="ROUGE by system and instruction type (95% CIs)")
    return fig


def chunking_figure(table: pd.DataFrame) -> go.Figure:
    """Truncation vs map-reduce chunking on the longest meetings."""
    fig = go.Figure()
    for i, metric in enumerate(("rouge1", "rouge2", "rougeL")):
        fig.add_trace(go.Bar(x=table["strategy"], y=table[metric], name=metric,
                             marker_color=PALETTE[i],
                             error_y=dict(type="data", symmetric=False,
                                          array=table[f"{metric}_high"] - table[metric],
                                          arrayminus=table[metric] - table[f"{metric}_low"])))
    fig.update_layout(barmode="group", yaxis_title="ROUGE (95% CI)",
                      title=f"{table['system'].iloc[0]}: truncated prefix vs map-reduce chunks")
    return fig


def lengths_figure(lengths: pd.DataFrame, contexts: dict[str, int]) -> go.Figure:
    """Prompt tokens per meeting against each model's context."""
    fig = go.Figure(go.Histogram(x=lengths["prompt_tokens"], nbinsx=30, marker_color=PALETTE[0],
                                 name="prompts"))
    for i, (model, context) in enumerate(contexts.items()):
        fig.add_vline(x=context, line=dict(color=PALETTE[(i + 1) % len(PALETTE)], dash="dash"),
                      annotation_text=model, annotation_position="top")
    fig.update_xaxes(type="log", title="prompt tokens (transcript + instruction)")
    fig.update_yaxes(title="items")
    fig.update_layout(title="Transcript prompts against model contexts")
    return fig
