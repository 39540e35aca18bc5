"""Writes notebooks/embeddings_medical.ipynb (kept as code so the notebook's source is reviewable)."""
import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# Medical question pairs: embeddings, Siamese networks and carbon per epoch\n\n"
       "Bingi & Yin 2023 (arXiv 2401.00582) compared OpenAI, Google PaLM and BERT embeddings on "
       "medical question pairs by similarity scores, added a Siamese network on top, and measured "
       "carbon per training epoch; no code was published. This notebook does it on Curai's Medical "
       "Question Pairs (3,048 pairs by 11 doctors) or your own pair CSV:\n\n"
       "* zero-shot cosine similarity of each provider: sentence-transformers (all-MiniLM-L6-v2), "
       "a BERT-style encoder with mean and [CLS] pooling, TF-IDF + LSA, and the OpenAI and Google "
       "APIs when their keys are set (skipped otherwise, with the reason);\n"
       "* a Siamese head (shared MLP projector, contrastive loss, early stopping) on every "
       "provider's frozen embeddings, and a full Siamese fine-tune of MiniLM "
       "(sentence-transformers, OnlineContrastiveLoss);\n"
       "* thresholds chosen on the training doctors, accuracy / F1 / ROC-AUC on held-out doctors "
       "(never split by row) with bootstrap 95% CIs, and paired bootstrap tests between systems;\n"
       "* energy and CO2 per training epoch and per 1,000 embeddings (codecarbon, offline).\n\n"
       "Change the parameters below, or run `labkit run embeddings_medical -p key=value`."),
    code("profile = None  # \"smoke\" | \"default\" | \"paper\"; None means $LABKIT_PROFILE or \"default\"\n"
         "seed = 0\n"
         "models = None  # embedder specs, e.g. [\"st:all-MiniLM-L6-v2\", \"openai:text-embedding-3-large@1024\"]; None: profile\n"
         "pairs_csv = None  # your own pairs: question_1, question_2, label (0/1), optional dr_id; None: MQP\n"
         "max_pairs = None  # 0: all pairs; None: profile\n"
         "test_doctors = None  # doctors held out for testing; None: profile (3)\n"
         "finetune_base = None  # sentence-transformers model to fine-tune; None: all-MiniLM-L6-v2\n"
         "finetune_epochs = None  # None: profile\n"
         "country = \"USA\"  # for codecarbon's carbon intensity",
         metadata={"tags": ["parameters"]}),
    code("import pandas as pd\n\n"
         "from labkit import notebook\n"
         "from labkit.carbon import CarbonSession\n"
         "from labkit.embeddings import PROFILES, study\n"
         "from labkit.figures import save_figure, save_table\n"
         "from labkit.io import sha256_file\n\n"
         "STUDY = \"embeddings_medical\"\n"
         "cfg, record = notebook.begin(STUDY, PROFILES, profile, seed, models=models, pairs_csv=pairs_csv,\n"
         "                             max_pairs=max_pairs, test_doctors=test_doctors, finetune_base=finetune_base,\n"
         "                             finetune_epochs=finetune_epochs, country=country)\n"
         "if cfg[\"pairs_csv\"]:\n"
         "    record.results[\"pairs_csv_sha256\"] = sha256_file(cfg[\"pairs_csv\"])\n"
         "pairs = study.load_pairs(cfg, seed)\n"
         "split = pairs.groupby(\"split\").agg(pairs=(\"label\", \"size\"), similar=(\"label\", \"sum\"),\n"
         "                                     doctors=(\"dr_id\", lambda d: sorted(d.unique())))\n"
         "record.results[\"split\"] = {k: [int(x) for x in v] for k, v in split[\"doctors\"].items()}\n"
         "save_table(split.reset_index(), STUDY, \"split\", \"Doctor-wise split: pairs, similar pairs and doctors per split\")\n"
         "split"),
    md("## Zero-shot similarity, Siamese heads and a fine-tuned encoder\n\nEmbeddings are cached "
       "on disk by provider, model, dimensions and text, so nothing is computed or paid for twice; "
       "energy per 1,000 embeddings is measured on a fresh, uncached run."),
    code("with CarbonSession(cfg[\"country\"]) as carbon:\n"
         "    systems = study.embed_pairs(pairs, cfg[\"models\"], carbon=carbon,\n"
         "                                energy_texts=cfg[\"inference_energy_texts\"])\n"
         "    study.add_heads(systems, pairs, cfg[\"head\"], carbon=carbon, seed=seed)\n"
         "    tuned = study.add_finetuned(systems, pairs, cfg[\"finetune_base\"], cfg[\"finetune_epochs\"],\n"
         "                                carbon=carbon, seed=seed)\n"
         "record.add_energy(\"embedding and training\", carbon.total())\n"
         "power = carbon.power_method\n"
         "for s in systems.skipped:\n"
         "    record.warn(f\"{s['spec']} skipped: {s['reason']}\")\n"
         "results = study.results_table(systems, pairs, cfg[\"bootstrap\"], seed)\n"
         "save_table(results, STUDY, \"results\", \"Held-out doctors: accuracy, F1 and ROC-AUC with 95% bootstrap \"\n"
         "           \"CIs (threshold chosen on the training doctors), and training energy per system\")\n"
         "save_table(study.pair_scores(pairs, systems), STUDY, \"pair_scores\", \"Score of every pair under every system\")\n"
         "save_table(study.thresholds(results), STUDY, \"thresholds\", \"Threshold and held-out accuracy per system\")\n"
         "record.results[\"heldout_accuracy\"] = results.dropna(subset=[\"accuracy\"]).set_index(\"system\")[\"accuracy\"].to_dict()\n"
         "record.results[\"finetune\"] = tuned\n"
         "results[[\"system\", \"kind\", \"accuracy\", \"accuracy_low\", \"accuracy_high\", \"f1\", \"roc_auc\", \"training_energy_kwh\"]]"),
    md("## Are the differences real?\n\nPaired bootstrap over the same held-out pairs, each system "
       "against zero-shot MiniLM."),
    code("reference = next(iter(systems.scores))\n"
         "paired = study.paired_table(systems, pairs, results, reference, cfg[\"bootstrap\"], seed)\n"
         "save_table(paired, STUDY, \"paired_tests\", f\"Paired bootstrap against {reference}: difference in \"\n"
         "           \"held-out accuracy and ROC-AUC, 95% CI and two-sided p-value\")\n"
         "paired"),
    md("## Energy and carbon"),
    code("epochs = pd.DataFrame(systems.epochs)\n"
         "inference = pd.DataFrame(systems.inference)\n"
         "save_table(epochs, STUDY, \"epochs\", f\"Every training epoch: seconds, energy (kWh) and CO2 (g); {power}\")\n"
         "save_table(inference, STUDY, \"inference_energy\", f\"Energy per 1,000 embeddings of each local model; {power}\")\n"
         "save_figure(study.distribution_figure(pairs, systems), STUDY, \"distributions\",\n"
         "            \"Held-out similarity scores by label for every system (violins; doctor-wise split).\")\n"
         "save_figure(study.pareto_figure(results, inference, power), STUDY, \"accuracy_energy\",\n"
         "            f\"Held-out accuracy against energy (training + embedding 1,000 texts), Pareto front dashed. \"\n"
         "            f\"Power {power}.\")\n"
         "save_figure(study.epoch_figure(epochs, power), STUDY, \"epoch_energy\",\n"
         "            f\"Energy of every training epoch per system; power {power}. API embeddings cost \"\n"
         "            \"energy on the provider's machines, which codecarbon cannot see.\")\n"
         "inference"),
    code("notebook.end(record, figures=[\"distributions\", \"accuracy_energy\", \"epoch_energy\"],\n"
         "             tables=[\"split\", \"results\", \"pair_scores\", \"thresholds\", \"paired_tests\", \"epochs\",\n"
         "                     \"inference_energy\"]);"),
]
nb["cells"] = cells
nb["metadata"] = {"kernelspec": {"display_name": "Python 3 (labkit)", "language": "python", "name": "python3"},
                  "language_info": {"name": "python"}}
nbf.write(nb, "notebooks/embeddings_medical.ipynb")
