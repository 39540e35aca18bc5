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
# # Medical question pairs: embeddings, Siamese networks and carbon per epoch
#
# Bingi & Yin 2023 (arXiv 2401.00582) compared OpenAI, Google PaLM and BERT embeddings on medical question pairs by similarity scores, added a Siamese network on top, and measured carbon per training epoch; no code was published. This notebook does it on Curai's Medical Question Pairs (3,048 pairs by 11 doctors) or your own pair CSV:
#
# * zero-shot cosine similarity of each provider: sentence-transformers (all-MiniLM-L6-v2), a BERT-style encoder with mean and [CLS] pooling, TF-IDF + LSA, and the OpenAI and Google APIs when their keys are set (skipped otherwise, with the reason);
# * a Siamese head (shared MLP projector, contrastive loss, early stopping on the validation doctor) on every provider's frozen embeddings, and a full Siamese fine-tune of MiniLM (sentence-transformers, OnlineContrastiveLoss);
# * thresholds chosen on the training doctors only, accuracy / F1 / ROC-AUC on held-out doctors (never split by row) with 95% bootstrap intervals resampled by question group (each `question_1` is in two pairs), paired tests against zero-shot MiniLM and of every trained system against its own base;
# * seconds, then energy and CO2, per training epoch and per 1,000 embeddings (codecarbon, offline; named an estimate where no power counter is readable).
#
# The seed also rotates which doctors are held out: `labkit run embeddings_medical --seeds 0,1,2` gives the spread over held-out doctors. Change the parameters below, or run `labkit run embeddings_medical -p key=value`.

# %% tags=["parameters"]
profile = None  # "smoke" | "default" | "paper"; None means $LABKIT_PROFILE or "default"
seed = 0  # also chooses which doctors are held out
models = None  # embedder specs, e.g. ["st:all-MiniLM-L6-v2", "openai:text-embedding-3-large@1024"]; None: profile
pairs_csv = None  # your own pairs: question_1, question_2, label (0/1), optional dr_id; None: MQP
max_pairs = None  # 0: all pairs; None: profile
test_doctors = None  # doctors held out for testing; None: profile (3)
finetune_base = None  # sentence-transformers model to fine-tune; None: all-MiniLM-L6-v2
finetune_epochs = None  # None: profile
country = "USA"  # for codecarbon's carbon intensity
device = None  # "cpu", "cuda", "cuda:N", "mps"; None: $LABKIT_DEVICE, else CUDA if present, else CPU
mixed_precision = None  # False: float32 everywhere; None: bf16 where the device supports it

# %%
import pandas as pd

from labkit import notebook
from labkit.carbon import CarbonSession
from labkit.embeddings import PROFILES, figures, study, tables
from labkit.figures import save_figure, save_table
from labkit.io import sha256_file

STUDY = "embeddings_medical"
cfg, record = notebook.begin(
    STUDY,
    PROFILES,
    profile,
    seed,
    models=models,
    pairs_csv=pairs_csv,
    max_pairs=max_pairs,
    test_doctors=test_doctors,
    finetune_base=finetune_base,
    finetune_epochs=finetune_epochs,
    country=country,
    device=device,
    mixed_precision=mixed_precision,
)
if cfg["pairs_csv"]:
    record.results["pairs_csv_sha256"] = sha256_file(cfg["pairs_csv"])
pairs = study.load_pairs(cfg, seed)
split = study.split_table(pairs)
record.results["split"] = {k: [int(x) for x in v] for k, v in split.set_index("split")["doctors"].items()}
save_table(
    split,
    record,
    "split",
    "Doctor-wise split: pairs, question groups, similar pairs and "
    "doctors per split (the seed chooses the held-out doctors)",
)
split

# %% [markdown]
# ## Zero-shot similarity
#
# Embeddings are cached on disk by provider, model, dimensions and text, so nothing is computed or paid for twice; energy per 1,000 embeddings is measured on a fresh, uncached run. One codecarbon session spans this cell and the next two.

# %%
carbon = CarbonSession(cfg["country"]).open()
systems = study.embed_pairs(pairs, cfg["models"], carbon=carbon, energy_texts=cfg["inference_energy_texts"])
for message in systems.warnings():  # skipped (no key, no client) and failed providers
    record.warn(message)
sorted(systems.scores)

# %% [markdown]
# ## A Siamese head on every provider's frozen vectors
#
# Trained on the training doctors' pairs, early-stopped on the validation doctor's AUC.

# %%
study.add_heads(systems, pairs, cfg["head"], carbon=carbon, seed=seed)
pd.DataFrame(systems.epochs).groupby("system")["epoch"].max()

# %% [markdown]
# ## Full Siamese fine-tune of the encoder
#
# sentence-transformers' trainer with OnlineContrastiveLoss on the training doctors' pairs, cached by base weights, config and pairs.

# %%
tuned = study.add_finetuned(systems, pairs, cfg["finetune_base"], cfg["finetune_epochs"], carbon=carbon, seed=seed)
carbon.close()
record.add_energy("embedding and training", carbon.total())
power = carbon.power_method
record.results["finetune"] = tuned
tuned

# %% [markdown]
# ## Held-out doctors
#
# Threshold chosen on the training doctors only; 95% intervals resample question groups (both pairs of a `question_1` together).

# %%
results = tables.results_table(systems, pairs, cfg["bootstrap"], seed, power_method=power)
save_table(
    results,
    record,
    "results",
    "Held-out doctors: accuracy, F1 and ROC-AUC with 95% bootstrap "
    "intervals resampled by question group (threshold chosen on the training doctors only), "
    f"then training seconds and training energy per system. {carbon.caption}",
)
save_table(tables.pair_scores(pairs, systems), record, "pair_scores", "Score of every pair under every system")
save_table(
    tables.thresholds(results), record, "thresholds", "Threshold (training doctors) and held-out accuracy per system"
)
tables.record_headlines(record, results)
results[["system", "kind", "accuracy", "accuracy_low", "accuracy_high", "f1", "roc_auc", "training_seconds"]]

# %% [markdown]
# ## What the resampling unit does
#
# The same accuracy, its interval resampled by single pairs (as before), by question group (every other table) and by doctor (3 test doctors: 10 distinct resamples, no real interval; the seed rotation is the doctor-level spread).

# %%
units = tables.interval_units_table(systems, pairs, cfg["bootstrap"], seed)
save_table(
    units,
    record,
    "interval_units",
    "Held-out accuracy's 95% bootstrap interval when the "
    "resampling unit is the pair, the question group (used in every other table) or the "
    "doctor (3 test doctors: only 10 distinct resamples)",
)
units.pivot(index="system", columns="unit", values="width")

# %% [markdown]
# ## Are the differences real?
#
# Paired bootstrap over the same held-out pairs (resampled by question group), each system against zero-shot MiniLM, then every trained system against its own base.

# %%
reference = next(iter(systems.scores))
paired = tables.paired_table(systems, pairs, results, reference, cfg["bootstrap"], seed)
save_table(
    paired,
    record,
    "paired_tests",
    f"Paired bootstrap against {reference}: verdict at 95% "
    "(better / worse / no clear difference), difference in held-out accuracy and ROC-AUC, "
    "95% interval and two-sided p-value, resampled by question group",
)
versus_base = tables.versus_base_table(systems, pairs, results, cfg["bootstrap"], seed)
save_table(
    versus_base,
    record,
    "versus_base",
    "Every trained system against its own base on the "
    "same held-out pairs (Siamese head vs the frozen vectors it was trained on, fine-tune vs "
    "the zero-shot encoder): verdict at 95%, difference in accuracy and ROC-AUC, interval "
    "and two-sided p-value, resampled by question group",
)
record.results["versus_base_accuracy"] = versus_base.set_index("system")["accuracy_diff"].to_dict()
versus_base

# %% [markdown]
# ## Seconds, energy and carbon
#
# Seconds come first: where codecarbon has no power counter, its energy is an estimate from CPU load x TDP, seconds x a modelled power (the `mean_power_w` column shows it).

# %%
epochs = tables.epochs_table(systems, power)
inference = pd.DataFrame(systems.inference)
save_table(
    epochs,
    record,
    "epochs",
    "Every training epoch: seconds first, then loss, validation AUC, "
    f"energy (kWh), CO2 (g) and the mean power the energy implies. {carbon.caption}",
)
save_table(
    inference,
    record,
    "inference_energy",
    f"Seconds, energy and CO2 per 1,000 embeddings of each local model (fresh, uncached). {carbon.caption}",
)
save_figure(
    figures.distribution_figure(pairs, systems),
    record,
    "distributions",
    "Held-out similarity scores by label for every system (violins; doctor-wise split).",
)
save_figure(
    figures.pareto_figure(results, inference, power),
    record,
    "accuracy_energy",
    "Held-out accuracy (95% interval by question group) against energy (training + "
    f"embedding 1,000 texts), Pareto front dashed. {carbon.caption}",
)
save_figure(
    figures.epoch_figure(epochs, power),
    record,
    "epoch_energy",
    f"Seconds (top) and energy (bottom) of every training epoch per system. {carbon.caption} "
    "API embeddings cost energy on the provider's machines, which codecarbon cannot see.",
    height=figures.EPOCH_FIGURE_HEIGHT,
)
inference

# %%
notebook.end(
    record,
    figures=["distributions", "accuracy_energy", "epoch_energy"],
    tables=[
        "split",
        "results",
        "pair_scores",
        "thresholds",
        "interval_units",
        "paired_tests",
        "versus_base",
        "epochs",
        "inference_energy",
    ],
)
