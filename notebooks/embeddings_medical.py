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
# * a Siamese head (shared MLP projector, contrastive loss, early stopping) on every provider's frozen embeddings, and a full Siamese fine-tune of MiniLM (sentence-transformers, OnlineContrastiveLoss);
# * thresholds chosen on the training doctors, accuracy / F1 / ROC-AUC on held-out doctors (never split by row) with bootstrap 95% CIs, and paired bootstrap tests between systems;
# * energy and CO2 per training epoch and per 1,000 embeddings (codecarbon, offline).
#
# Change the parameters below, or run `labkit run embeddings_medical -p key=value`.

# %% tags=["parameters"]
profile = None  # "smoke" | "default" | "paper"; None means $LABKIT_PROFILE or "default"
seed = 0
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
from labkit.embeddings import PROFILES, study
from labkit.figures import save_figure, save_table
from labkit.io import sha256_file

STUDY = "embeddings_medical"
cfg, record = notebook.begin(STUDY, PROFILES, profile, seed, models=models, pairs_csv=pairs_csv,
                             max_pairs=max_pairs, test_doctors=test_doctors, finetune_base=finetune_base,
                             finetune_epochs=finetune_epochs, country=country, device=device,
                             mixed_precision=mixed_precision)
if cfg["pairs_csv"]:
    record.results["pairs_csv_sha256"] = sha256_file(cfg["pairs_csv"])
pairs = study.load_pairs(cfg, seed)
split = pairs.groupby("split").agg(pairs=("label", "size"), similar=("label", "sum"),
                                     doctors=("dr_id", lambda d: sorted(d.unique())))
record.results["split"] = {k: [int(x) for x in v] for k, v in split["doctors"].items()}
save_table(split.reset_index(), STUDY, "split", "Doctor-wise split: pairs, similar pairs and doctors per split")
split

# %% [markdown]
# ## Zero-shot similarity, Siamese heads and a fine-tuned encoder
#
# Embeddings are cached on disk by provider, model, dimensions and text, so nothing is computed or paid for twice; energy per 1,000 embeddings is measured on a fresh, uncached run.

# %%
with CarbonSession(cfg["country"]) as carbon:
    systems = study.embed_pairs(pairs, cfg["models"], carbon=carbon,
                                energy_texts=cfg["inference_energy_texts"])
    study.add_heads(systems, pairs, cfg["head"], carbon=carbon, seed=seed)
    tuned = study.add_finetuned(systems, pairs, cfg["finetune_base"], cfg["finetune_epochs"],
                                carbon=carbon, seed=seed)
record.add_energy("embedding and training", carbon.total())
power = carbon.power_method
for message in systems.warnings():  # skipped (no key, no client) and failed providers
    record.warn(message)
results = study.results_table(systems, pairs, cfg["bootstrap"], seed)
save_table(results, STUDY, "results", "Held-out doctors: accuracy, F1 and ROC-AUC with 95% bootstrap "
           "CIs (threshold chosen on the training doctors), and training energy per system")
save_table(study.pair_scores(pairs, systems), STUDY, "pair_scores", "Score of every pair under every system")
save_table(study.thresholds(results), STUDY, "thresholds", "Threshold and held-out accuracy per system")
record.results["heldout_accuracy"] = results.dropna(subset=["accuracy"]).set_index("system")["accuracy"].to_dict()
record.results["finetune"] = tuned
results[["system", "kind", "accuracy", "accuracy_low", "accuracy_high", "f1", "roc_auc", "training_energy_kwh"]]

# %% [markdown]
# ## Are the differences real?
#
# Paired bootstrap over the same held-out pairs, each system against zero-shot MiniLM.

# %%
reference = next(iter(systems.scores))
paired = study.paired_table(systems, pairs, results, reference, cfg["bootstrap"], seed)
save_table(paired, STUDY, "paired_tests", f"Paired bootstrap against {reference}: difference in "
           "held-out accuracy and ROC-AUC, 95% CI and two-sided p-value")
paired

# %% [markdown]
# ## Energy and carbon

# %%
epochs = pd.DataFrame(systems.epochs)
inference = pd.DataFrame(systems.inference)
save_table(epochs, STUDY, "epochs", f"Every training epoch: seconds, energy (kWh) and CO2 (g); {power}")
save_table(inference, STUDY, "inference_energy", f"Energy per 1,000 embeddings of each local model; {power}")
save_figure(study.distribution_figure(pairs, systems), STUDY, "distributions",
            "Held-out similarity scores by label for every system (violins; doctor-wise split).")
save_figure(study.pareto_figure(results, inference, power), STUDY, "accuracy_energy",
            f"Held-out accuracy against energy (training + embedding 1,000 texts), Pareto front dashed. "
            f"Power {power}.")
save_figure(study.epoch_figure(epochs, power), STUDY, "epoch_energy",
            f"Energy of every training epoch per system; power {power}. API embeddings cost "
            "energy on the provider's machines, which codecarbon cannot see.")
inference

# %%
notebook.end(record, figures=["distributions", "accuracy_energy", "epoch_energy"],
             tables=["split", "results", "pair_scores", "thresholds", "paired_tests", "epochs",
                     "inference_energy"]);
