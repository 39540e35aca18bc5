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
# # Compact fine-tuned vs zero-shot summarizers on meeting transcripts
#
# Fu et al. 2024, *Tiny Titans* (arXiv 2402.00841): fine-tuned compact models against zero-shot large ones on meeting summarization, with long / medium / short summary instructions, scored by ROUGE. This notebook runs, on QMSum's general and specific queries (or your own JSONL):
#
# * the offline analogue of the paper's question on real pretrained weights: **does fine-tuning a compact model beat using it zero-shot?** all-MiniLM-L6-v2 as a query-focused selector of transcript turns, zero-shot (query-turn similarity) and fine-tuned on QMSum train (relevant spans of specific queries, oracle sentences of general ones; its query tower trains, the sentence tower stays the base model, so both read the same sentence vectors). It is extractive and encoder-sized, not an abstractive LLM;
# * floors every system must clear (best constant training reference, random sentences, Lead-k, all at the instruction's length), the greedy ROUGE oracle (extraction's ceiling), centroid and TextRank over MiniLM sentence embeddings;
# * a compact fine-tuned generator: any HF seq2seq / causal LM (`finetune_model`, e.g. `google/flan-t5-large`), or offline labkit's own tiny decoder trained on real text and fine-tuned on QMSum train;
# * zero-shot large models: a local HF model (`zero_shot_model`) and any OpenAI-compatible endpoint (`LABKIT_CHAT_BASE_URL`, `LABKIT_CHAT_MODEL`, key in `LABKIT_CHAT_API_KEY`; `python -m labkit.summarize.serve` starts one on this machine), skipped with the reason when absent;
#
# and reports ROUGE-1/2/L/Lsum and a MiniLM meaning score with 95% intervals over meetings per query kind, the paired fine-tuned vs zero-shot difference, latency, tokens/s, cost per 1,000 summaries and energy, plus truncation vs map-reduce chunking on the longest meetings.
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
from labkit.summarize import PROFILES, evaluate, metrics, study, tables
from labkit.summarize.data import context_fit, token_lengths

STUDY = "meeting_summarization"
cfg, record = notebook.begin(
    STUDY,
    PROFILES,
    profile,
    seed,
    items_jsonl=items_jsonl,
    max_meetings=max_meetings,
    instructions=instructions,
    finetune_model=finetune_model,
    zero_shot_model=zero_shot_model,
    generate_meetings=generate_meetings,
    price_table=price_table,
    country=country,
    device=device,
    mixed_precision=mixed_precision,
)
items, train_items = study.load_items(cfg)
count_tokens = metrics.count_tokens_with(cfg["token_counter"])
print(f"{len(items)} evaluation items, {len(train_items)} fine-tuning items; profile {cfg['profile']}")

# %% [markdown]
# ## Transcripts against model contexts

# %%
lengths = token_lengths(items, count_tokens)
fit_table = context_fit(lengths, cfg["contexts"])
save_table(
    fit_table,
    record,
    "context_fit",
    f"Share of prompts (transcript + instruction) that fit each model's context ({cfg['token_counter']} tokens)",
)
save_figure(
    study.lengths_figure(lengths, cfg["contexts"]),
    record,
    "prompt_lengths",
    "Prompt tokens per evaluation item against model contexts (dashed).",
)
fit_table

# %% [markdown]
# ## Run every system
#
# Extractive systems and the MiniLM selectors read every evaluation item; generative ones the items of the first `generate_meetings` meetings (the `items` column says how many). Summaries are cached per system, prompt and transcript, so a re-run only computes what is new.

# %%
with CarbonSession(cfg["country"]) as carbon:
    extractive = study.extractive_systems(cfg["embedder"], train=train_items, seed=seed, warn=record.warn)
    selectors, selector_model = study.selector_systems(cfg, train_items, carbon=carbon, warn=record.warn)
    compact, tuned = study.compact_system(cfg, train_items, carbon=carbon, warn=record.warn)
    zero_shot, skipped = study.zero_shot_systems(cfg, warn=record.warn)
    few = study.generation_items(items, cfg["generate_meetings"])
    # a system that raises becomes a "failed: <cause>" row of the skipped table; the rest run
    runs = evaluate.run_all(
        extractive + selectors, items, cfg["instructions"], carbon, failed=skipped, warn=record.warn
    )
    runs += evaluate.run_all([compact, *zero_shot], few, cfg["instructions"], carbon, failed=skipped, warn=record.warn)
record.add_energy("training and summarizing", carbon.total())
record.results["compact_model"] = tuned.metrics
per_item = evaluate.item_scores(runs)
scores = evaluate.score(
    runs, count_tokens, cfg["price_table"], cfg["bootstrap"], seed, per_item=per_item, record=record
)
same_ref = "All three instruction types are scored against the same reference: each query's one QMSum answer."
save_table(
    scores,
    record,
    "scores",
    "Every system x instruction x query kind: ROUGE and "
    "MiniLM-cos with 95% intervals over meetings, guards, length, latency, tokens/s, "
    f"energy ({carbon.power_method}) and cost. " + same_ref,
)
save_table(
    pd.DataFrame(skipped or [{"system": "-", "reason": "none skipped"}]),
    record,
    "skipped",
    "Systems that were not run or failed, and why",
)
study.write_summaries(study_dir(STUDY), study.summary_rows(runs))
main = tables.main_table(scores, record=record)
flags = study.flag_note(scores)  # "" when no system is flagged
save_table(
    main,
    record,
    "main_table",
    "ROUGE-1/2/L/Lsum and MiniLM-cos per query kind, system "
    "and instruction type, mean [95% CI over meetings] (paper-style main table). " + same_ref + flags,
)
print(record.results["floor_verdict"]["says"])
main

# %%
rouge_fig = study.main_figure(scores)
save_figure(
    rouge_fig,
    record,
    "rouge",
    "ROUGE and MiniLM-cos by query kind, system and "
    "instruction type with 95% intervals over meetings. " + same_ref + flags,
    **study.png_size(rouge_fig),
)
pareto_inst = cfg["instructions"][min(1, len(cfg["instructions"]) - 1)]
save_figure(
    study.pareto_figure(scores, pareto_inst),
    record,
    "pareto",
    f"ROUGE-1 ({pareto_inst} summaries, all items) against latency, cost and "
    "energy per summary (an item's latency includes embedding its transcript); stars "
    "mark the Pareto front, hollow points (calibration baselines, degenerate systems, "
    f"systems not above the floor) never join it. Energy {carbon.power_method}, as "
    "measured while each system ran (vectors another system already computed are not "
    "billed again). "
    f"{device_caption()}" + study.flag_note(scores[scores["instruction"] == pareto_inst]),
)

# %% [markdown]
# ## Does fine-tuning the compact model beat using it zero-shot?
#
# The fine-tuned MiniLM selector minus the zero-shot one on the same items, per instruction type and query kind, in ROUGE-1 and in the MiniLM meaning score: a paired bootstrap that resamples meetings (several queries share one). A difference counts only where its interval excludes zero; an interval below zero would have said that fine-tuning hurt.

# %%
tuned_name, zs_name = selectors[1].name, selectors[0].name
headline = tables.paired(
    per_item, tuned_name, zs_name, cfg["instructions"], ("rouge1", "minilm_cos"), cfg["bootstrap"], seed
)
save_table(
    headline,
    record,
    "selector_vs_zero_shot",
    f"{tuned_name} minus {zs_name}: paired "
    "difference on the same items, 95% interval resampling meetings (clustered by "
    "meeting: the queries of one meeting share its transcript). " + same_ref,
)
record.results["selector_vs_zero_shot"] = headline.to_dict("records")
training = study.training_table(selector_model, tuned)
save_table(
    training,
    record,
    "training_cost",
    "What fine-tuning cost, per compact model: "
    f"seconds and energy ({carbon.power_method}), as measured by the run that trained it",
)
record.results["selector_training"] = training.to_dict("records")
save_figure(
    study.paired_figure(headline, f"{tuned_name} minus {zs_name}"),
    record,
    "selector_gain",
    f"{tuned_name} minus {zs_name} in ROUGE-1 and MiniLM-cos, paired "
    "on the same items, 95% intervals resampling meetings. " + same_ref,
)
headline

# %% [markdown]
# ## Each system against Lead-k
#
# A paired bootstrap over the same items (resampling meetings): the difference in ROUGE-1 and how often a resample reverses it.

# %%
inst = "medium" if "medium" in cfg["instructions"] else cfg["instructions"][0]
others = [
    r.system
    for r in runs
    if r.instruction == inst
    and r.system != "Lead-k"
    and r.kind in ("extractive", "zero-shot", "fine-tuned")
    and r.items == items
]
tests = pd.concat(
    [
        tables.paired(per_item, name, "Lead-k", [inst], by_queries=False, n_resamples=cfg["bootstrap"], seed=seed)
        for name in others
    ],
    ignore_index=True,
)
save_table(
    tests,
    record,
    "vs_lead",
    f"Paired bootstrap of ROUGE-1 against Lead-k ({inst} summaries, all items, resampling meetings)",
)
record.results["vs_lead"] = tests.to_dict("records")
tests

# %% [markdown]
# ## Truncation vs map-reduce chunking on the longest meetings

# %%
general = [it for it in items if it.kind == "general"] or items  # one item per meeting
longest = evaluate.longest(general, cfg["chunk_study_meetings"], count_tokens)
make = lambda strategy: study.compact_system(
    cfg, train_items, context_strategy=strategy, name=f"{compact.name} [{strategy}]"
)[0]
chunking = study.chunking_table(make, longest, inst, cfg["bootstrap"], seed, scores=scores)
save_table(
    chunking,
    record,
    "chunking",
    "The compact model on the longest meetings (their "
    "general query): truncated prefix vs map-reduce over the whole transcript",
)
chunk_flags = "; ".join(f"{row.strategy}: {row.flag}" for row in chunking.itertuples() if row.flag)
save_figure(
    study.chunking_figure(chunking),
    record,
    "chunking",
    "Truncation vs map-reduce chunking "
    "on the longest meetings (95% CIs)." + (f" {chunk_flags}." if chunk_flags else ""),
)
chunking

# %%
notebook.end(
    record,
    figures=["prompt_lengths", "rouge", "pareto", "selector_gain", "chunking"],
    tables=[
        "context_fit",
        "scores",
        "skipped",
        "main_table",
        "selector_vs_zero_shot",
        "training_cost",
        "vs_lead",
        "chunking",
    ],
)
