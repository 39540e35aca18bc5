"""Writes notebooks/meeting_summarization.ipynb (kept as code so the notebook's source is reviewable)."""
import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
cells = [
    md("# Compact fine-tuned vs zero-shot large summarizers on meeting transcripts\n\n"
       "Fu et al. 2024, *Tiny Titans* (arXiv 2402.00841): fine-tuned compact models against "
       "zero-shot large ones on meeting summarization, with long / medium / short summary "
       "instructions, scored by ROUGE. This notebook runs, on QMSum (or your own JSONL):\n\n"
       "* extractive baselines: Lead-k, centroid and TextRank over MiniLM sentence embeddings, "
       "and the greedy ROUGE oracle (the ceiling for extraction);\n"
       "* a compact fine-tuned model: any HF seq2seq / causal LM (`finetune_model`, e.g. "
       "`google/flan-t5-large`), or offline labkit's own tiny decoder trained on real text and "
       "fine-tuned on QMSum train;\n"
       "* zero-shot large models: a local HF model (`zero_shot_model`) and any OpenAI-compatible "
       "endpoint (`LABKIT_CHAT_BASE_URL`, `LABKIT_CHAT_MODEL`, key in `LABKIT_CHAT_API_KEY`), "
       "skipped with the reason when absent;\n\n"
       "and reports ROUGE-1/2/L/Lsum with bootstrap 95% CIs, latency, tokens/s, cost per 1,000 "
       "summaries and energy, plus truncation vs map-reduce chunking on the longest meetings.\n\n"
       "Change the parameters below, or run `labkit run meeting_summarization -p key=value`."),
    code("profile = None  # \"smoke\" | \"default\" | \"paper\"; None means $LABKIT_PROFILE or \"default\"\n"
         "seed = 0\n"
         "items_jsonl = None  # your data: JSON lines with transcript, summary, optional query; None: QMSum\n"
         "max_meetings = None  # evaluation meetings (0: the whole split); None: profile\n"
         "instructions = None  # subset of [\"long\", \"medium\", \"short\"]; None: profile\n"
         "finetune_model = None  # HF name/folder of the compact model; \"\": labkit's tiny LM; None: profile\n"
         "zero_shot_model = None  # local HF model for the zero-shot row; None: skipped\n"
         "generate_meetings = None  # meetings the generative systems summarize (0: all); None: profile\n"
         "price_table = None  # {system or \"default\": {usd_per_hour | usd_per_1m_input | usd_per_1m_output}}\n"
         "country = \"USA\"  # for codecarbon's carbon intensity",
         metadata={"tags": ["parameters"]}),
    code("import pandas as pd\n\n"
         "from labkit import notebook\n"
         "from labkit.carbon import CarbonSession\n"
         "from labkit.figures import save_figure, save_table\n"
         "from labkit.paths import study_dir\n"
         "from labkit.summarize import PROFILES, evaluate, metrics, study\n"
         "from labkit.summarize.data import context_fit, token_lengths\n\n"
         "STUDY = \"meeting_summarization\"\n"
         "cfg, record = notebook.begin(STUDY, PROFILES, profile, seed, items_jsonl=items_jsonl,\n"
         "                             max_meetings=max_meetings, instructions=instructions,\n"
         "                             finetune_model=finetune_model, zero_shot_model=zero_shot_model,\n"
         "                             generate_meetings=generate_meetings, price_table=price_table,\n"
         "                             country=country)\n"
         "items, train_items = study.load_items(cfg)\n"
         "count_tokens = metrics.count_tokens_with(cfg[\"token_counter\"])\n"
         "print(f\"{len(items)} evaluation items, {len(train_items)} fine-tuning items; profile {cfg['profile']}\")"),
    md("## Transcripts against model contexts"),
    code("lengths = token_lengths(items, count_tokens)\n"
         "fit_table = context_fit(lengths, cfg[\"contexts\"])\n"
         "save_table(fit_table, STUDY, \"context_fit\", \"Share of prompts (transcript + instruction) that fit \"\n"
         "           f\"each model's context ({cfg['token_counter']} tokens)\")\n"
         "save_figure(study.lengths_figure(lengths, cfg[\"contexts\"]), STUDY, \"prompt_lengths\",\n"
         "            \"Prompt tokens per evaluation item against model contexts (dashed).\")\n"
         "fit_table"),
    md("## Run every system\n\nExtractive systems read every evaluation item; generative ones "
       "the first `generate_meetings` items (the `items` column says how many). Summaries are "
       "cached per system, prompt and transcript, so a re-run only computes what is new."),
    code("with CarbonSession(cfg[\"country\"]) as carbon:\n"
         "    extractive = study.extractive_systems(cfg[\"embedder\"], warn=record.warn)\n"
         "    compact, tuned = study.compact_system(cfg, train_items, carbon=carbon, warn=record.warn)\n"
         "    zero_shot, skipped = study.zero_shot_systems(cfg, warn=record.warn)\n"
         "    few = items[:cfg[\"generate_meetings\"] or None]\n"
         "    runs_all = evaluate.run_all(extractive, items, cfg[\"instructions\"], carbon)\n"
         "    runs_few = evaluate.run_all([compact, *zero_shot], few, cfg[\"instructions\"], carbon)\n"
         "record.add_energy(\"training and summarizing\", carbon.total())\n"
         "record.results[\"compact_model\"] = tuned.metrics\n"
         "scores = pd.concat([evaluate.score(runs_all, items, count_tokens, cfg[\"price_table\"], cfg[\"bootstrap\"], seed),\n"
         "                    evaluate.score(runs_few, few, count_tokens, cfg[\"price_table\"], cfg[\"bootstrap\"], seed)],\n"
         "                   ignore_index=True)\n"
         "save_table(scores, STUDY, \"scores\", \"Every system x instruction: ROUGE with 95% bootstrap CIs, \"\n"
         "           \"length, latency, tokens/s, energy and cost\")\n"
         "save_table(pd.DataFrame(skipped or [{\"system\": \"-\", \"reason\": \"none skipped\"}]), STUDY, \"skipped\",\n"
         "           \"Systems that were not run, and why\")\n"
         "study.write_summaries(study_dir(STUDY), study.summary_rows(runs_all, items) + study.summary_rows(runs_few, few))\n"
         "main = evaluate.main_table(scores)\n"
         "save_table(main, STUDY, \"main_table\", \"ROUGE-1/2/L/Lsum per system and instruction type, \"\n"
         "           \"mean [95% CI] (paper-style main table)\")\n"
         "main"),
    code("save_figure(study.main_figure(scores), STUDY, \"rouge\", \"ROUGE by system and instruction type with \"\n"
         "            \"95% bootstrap CIs.\")\n"
         "save_figure(study.pareto_figure(scores, cfg[\"instructions\"][min(1, len(cfg['instructions']) - 1)]), STUDY,\n"
         "            \"pareto\", \"ROUGE-1 against latency, cost and energy per summary; stars mark the Pareto \"\n"
         "            f\"front. Energy {carbon.power_method}.\")"),
    md("## Does the embedding-based extractive summarizer beat Lead-k?\n\nA paired bootstrap "
       "over the same meetings: the difference in ROUGE-1 and how often a resample reverses it."),
    code("inst = \"medium\" if \"medium\" in cfg[\"instructions\"] else cfg[\"instructions\"][0]\n"
         "tests = pd.DataFrame([evaluate.compare(runs_all, items, name, \"Lead-k\", inst, \"rouge1\", cfg[\"bootstrap\"], seed)\n"
         "                      for name in (\"Centroid (MiniLM)\", \"TextRank (MiniLM)\", \"Oracle (greedy)\")])\n"
         "save_table(tests, STUDY, \"vs_lead\", f\"Paired bootstrap of ROUGE-1 against Lead-k ({inst} summaries)\")\n"
         "record.results[\"vs_lead\"] = tests.to_dict(\"records\")\n"
         "tests"),
    md("## Truncation vs map-reduce chunking on the longest meetings"),
    code("longest = evaluate.longest(items, cfg[\"chunk_study_meetings\"], count_tokens)\n"
         "make = lambda strategy: study.compact_system(cfg, train_items, context_strategy=strategy,\n"
         "                                              name=f\"{compact.name} [{strategy}]\")[0]\n"
         "chunking = study.chunking_table(make, longest, inst, cfg[\"bootstrap\"], seed)\n"
         "save_table(chunking, STUDY, \"chunking\", \"The compact model on the longest meetings: truncated \"\n"
         "           \"prefix vs map-reduce over the whole transcript\")\n"
         "save_figure(study.chunking_figure(chunking), STUDY, \"chunking\", \"Truncation vs map-reduce chunking \"\n"
         "            \"on the longest meetings (95% CIs).\")\n"
         "chunking"),
    code("notebook.end(record, figures=[\"prompt_lengths\", \"rouge\", \"pareto\", \"chunking\"],\n"
         "             tables=[\"context_fit\", \"scores\", \"skipped\", \"main_table\", \"vs_lead\", \"chunking\"]);"),
]
nb["cells"] = cells
nb["metadata"] = {"kernelspec": {"display_name": "Python 3 (labkit)", "language": "python", "name": "python3"},
                  "language_info": {"name": "python"}}
nbf.write(nb, "notebooks/meeting_summarization.ipynb")
