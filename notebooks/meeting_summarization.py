# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Compact fine-tuned vs zero-shot large summarizers on meeting transcripts
#
# Fu et al. 2024, *Tiny Titans* (arXiv 2402.00841): fine-tuned compact models against zero-shot large ones on meeting summarization, with long / medium / short summary instructions, scored by ROUGE. This notebook runs, on QMSum (or your own JSONL):
#
# * extractive baselines: Lead-k, centroid and TextRank over MiniLM sentence embeddings, and the greedy ROUGE oracle (the ceiling for extraction);
# * a compact fine-tuned model: any HF seq2seq / causal LM (`finetune_model`, e.g. `google/flan-t5-large`), or offline labkit's own tiny decoder trained on real text and fine-tuned on QMSum train;
# * zero-shot large models: a local HF model (`zero_shot_model`) and any OpenAI-compatible endpoint (`LABKIT_CHAT_BASE_URL`, `LABKIT_CHAT_MODEL`, key in `LABKIT_CHAT_API_KEY`), skipped with the reason when absent;
#
# and reports ROUGE-1/2/L/Lsum with bootstrap 95% CIs, latency, tokens/s, cost per 1,000 summaries and energy, plus truncation vs map-reduce chunking on the longest meetings.
#
# Change the parameters below, or run `labkit run meeting_summarization -p key=value`.

# %% tags=["parameters"]
profile = None  # "smoke" | "default" | "paper"; None means $LABKIT_PROFILE or "default"
seed = 0
items_jsonl = None  # your data: JSON lines with transcript, summary, optional query; None: QMSum
max_meetings = None  # evaluation meetings (0: the whole split); None: profile
instructions = None  # subset of ["long", "medium", "short"]; None: profile
finetune_model = None  # HF name/folder of the compact model; "": labkit's tiny LM; None: profile
zero_shot_model = None  # local HF model for the zero-shot row; None: skipped
generate_meetings = None  # meetings the generative systems summarize (0: all); None: profile
price_table = None  # {system or "default": {usd_per_hour | usd_per_1m_input | usd_per_1m_output}}
country = "USA"  # for codecarbon's carbon intensity
device = None  # "cpu", "cuda", "cuda:N", "mps"; None: $LABKIT_DEVICE, else CUDA if present, else CPU
mixed_precision = None  # False: float32 everywhere; None: bf16 where the device supports it

# %%
import pandas as pd

from labkit import notebook
from labkit.carbon import CarbonSession
from labkit.figures import device_caption, save_figure, save_table
from labkit.paths import study_dir
from labkit.summarize import PROFILES, evaluate, metrics, study
from labkit.summarize.data import context_fit, token_lengths

STUDY = "meeting_summarization"
cfg, record = notebook.begin(STUDY, PROFILES, profile, seed, items_jsonl=items_jsonl,
                             max_meetings=max_meetings, instructions=instructions,
                             finetune_model=finetune_model, zero_shot_model=zero_shot_model,
                             generate_meetings=generate_meetings, price_table=price_table,
                             country=country, device=device, mixed_precision=mixed_precision)
items, train_items = study.load_items(cfg)
count_tokens = metrics.count_tokens_with(cfg["token_counter"])
print(f"{len(items)} evaluation items, {len(train_items)} fine-tuning items; profile {cfg['profile']}")

# %% [markdown]
# ## Transcripts against model contexts

# %%
lengths = token_lengths(items, count_tokens)
fit_table = context_fit(lengths, cfg["contexts"])
save_table(fit_table, STUDY, "context_fit", "Share of prompts (transcript + instruction) that fit "
           f"each model's context ({cfg['token_counter']} tokens)")
save_figure(study.lengths_figure(lengths, cfg["contexts"]), STUDY, "prompt_lengths",
            "Prompt tokens per evaluation item against model contexts (dashed).")
fit_table

# %% [markdown]
# ## Run every system
#
# Extractive systems read every evaluation item; generative ones the first `generate_meetings` items (the `items` column says how many). Summaries are cached per system, prompt and transcript, so a re-run only computes what is new.

# %%
with CarbonSession(cfg["country"]) as carbon:
    extractive = study.extractive_systems(cfg["embedder"], warn=record.warn)
    compact, tuned = study.compact_system(cfg, train_items, carbon=carbon, warn=record.warn)
    zero_shot, skipped = study.zero_shot_systems(cfg, warn=record.warn)
    few = items[:cfg["generate_meetings"] or None]
    # a system that raises becomes a "failed: <cause>" row of the skipped table; the rest run
    runs_all = evaluate.run_all(extractive, items, cfg["instructions"], carbon,
                                failed=skipped, warn=record.warn)
    runs_few = evaluate.run_all([compact, *zero_shot], few, cfg["instructions"], carbon,
                                failed=skipped, warn=record.warn)
record.add_energy("training and summarizing", carbon.total())
record.results["compact_model"] = tuned.metrics
scores = pd.concat([evaluate.score(runs_all, items, count_tokens, cfg["price_table"], cfg["bootstrap"], seed),
                    evaluate.score(runs_few, few, count_tokens, cfg["price_table"], cfg["bootstrap"], seed)],
                   ignore_index=True)
save_table(scores, STUDY, "scores", "Every system x instruction: ROUGE with 95% bootstrap CIs, "
           "length, latency, tokens/s, energy and cost")
save_table(pd.DataFrame(skipped or [{"system": "-", "reason": "none skipped"}]), STUDY, "skipped",
           "Systems that were not run or failed, and why")
study.write_summaries(study_dir(STUDY), study.summary_rows(runs_all, items) + study.summary_rows(runs_few, few))
main = evaluate.main_table(scores)
flags = study.flag_note(scores)  # "" when no system is flagged degenerate
save_table(main, STUDY, "main_table", "ROUGE-1/2/L/Lsum per system and instruction type, "
           "mean [95% CI] (paper-style main table)." + flags)
main

# %%
save_figure(study.main_figure(scores), STUDY, "rouge", "ROUGE by system and instruction type with "
            "95% bootstrap CIs." + flags)
pareto_inst = cfg["instructions"][min(1, len(cfg['instructions']) - 1)]
save_figure(study.pareto_figure(scores, pareto_inst), STUDY,
            "pareto", "ROUGE-1 against latency, cost and energy per summary; stars mark the Pareto "
            f"front, hollow points (calibration baselines, degenerate systems) never join it. Energy "
            f"{carbon.power_method}. {device_caption()}"
            + study.flag_note(scores[scores["instruction"] == pareto_inst]))

# %% [markdown]
# ## Does the embedding-based extractive summarizer beat Lead-k?
#
# A paired bootstrap over the same meetings: the difference in ROUGE-1 and how often a resample reverses it.

# %%
inst = "medium" if "medium" in cfg["instructions"] else cfg["instructions"][0]
tests = pd.DataFrame([evaluate.compare(runs_all, items, name, "Lead-k", inst, "rouge1", cfg["bootstrap"], seed)
                      for name in ("Centroid (MiniLM)", "TextRank (MiniLM)", "Oracle (greedy)")])
save_table(tests, STUDY, "vs_lead", f"Paired bootstrap of ROUGE-1 against Lead-k ({inst} summaries)")
record.results["vs_lead"] = tests.to_dict("records")
tests

# %% [markdown]
# ## Truncation vs map-reduce chunking on the longest meetings

# %%
longest = evaluate.longest(items, cfg["chunk_study_meetings"], count_tokens)
make = lambda strategy: study.compact_system(cfg, train_items, context_strategy=strategy,
                                              name=f"{compact.name} [{strategy}]")[0]
chunking = study.chunking_table(make, longest, inst, cfg["bootstrap"], seed)
save_table(chunking, STUDY, "chunking", "The compact model on the longest meetings: truncated "
           "prefix vs map-reduce over the whole transcript")
chunk_flags = "; ".join(f"{row.strategy}: {row.flag}" for row in chunking.itertuples() if row.flag)
save_figure(study.chunking_figure(chunking), STUDY, "chunking", "Truncation vs map-reduce chunking "
            "on the longest meetings (95% CIs)." + (f" {chunk_flags}." if chunk_flags else ""))
chunking

# %%
notebook.end(record, figures=["prompt_lengths", "rouge", "pareto", "chunking"],
             tables=["context_fit", "scores", "skipped", "main_table", "vs_lead", "chunking"]);
