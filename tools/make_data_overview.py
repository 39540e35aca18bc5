"""Writes notebooks/data_overview.ipynb (kept as code so the notebook's source is reviewable)."""
from nbgen import code, md, write_notebook

cells = [
    md("# Data overview\n\nWhat each dataset labkit ships a registry entry for holds: counts, "
       "length distributions, label balance, and QMSum transcript lengths in tokens against "
       "typical model context windows. Data are read from the registry (explicit path → cache → "
       "`$LABKIT_DATA_MIRROR` → download with sha256 check); the run record lists each file's hash.\n\n"
       "Change the parameters below, or run `labkit run data_overview -p key=value`."),
    code("profile = None  # \"smoke\" | \"default\" | \"paper\"; None -> $LABKIT_PROFILE or \"default\"\n"
         "seed = 0\n"
         "qmsum_splits = None  # e.g. [\"test\"]; None -> profile\n"
         "max_meetings = None  # 0 means all meetings; None -> profile\n"
         "tokenizer = None  # any model name with a tokenizer; None -> profile (all-MiniLM-L6-v2)\n"
         "contexts = None  # context sizes (tokens) to compare transcript lengths with",
         metadata={"tags": ["parameters"]}),
    code("import pandas as pd\n"
         "import plotly.express as px\n"
         "import plotly.graph_objects as go\n\n"
         "import labkit.data as data\n"
         "from labkit import notebook\n"
         "from labkit.data import overview\n"
         "from labkit.figures import save_figure, save_table\n\n"
         "STUDY = \"data_overview\"\n"
         "cfg, record = notebook.begin(STUDY, overview.PROFILES, profile, seed, qmsum_splits=qmsum_splits,\n"
         "                             max_meetings=max_meetings, tokenizer=tokenizer, contexts=contexts)\n"
         "print({k: cfg[k] for k in ('profile', 'qmsum_splits', 'max_meetings', 'tokenizer')})"),
    md("## The registry"),
    code("pairs = data.load(\"mqp\")\n"
         "shakespeare = data.load(\"tinyshakespeare\")\n"
         "chinchilla = data.load(\"chinchilla\")\n"
         "qmsum = data.load(\"qmsum\")\n"
         "registry = pd.DataFrame([\n"
         "    {\"key\": key, \"records\": n, \"unit\": unit, \"origin\": data.USED[key].origin,\n"
         "     \"licence\": data.get(key).licence, \"files\": len(data.USED[key].sha256)}\n"
         "    for key, n, unit in [(\"mqp\", len(pairs), \"pairs\"), (\"tinyshakespeare\", len(shakespeare), \"characters\"),\n"
         "                         (\"chinchilla\", len(chinchilla), \"runs\"),\n"
         "                         (\"qmsum\", sum(len(v) for v in qmsum.values()), \"meetings\")]])\n"
         "save_table(registry, STUDY, \"datasets\", \"Datasets in the registry, as resolved for this run\")\n"
         "registry"),
    md("## Medical Question Pairs (MQP)\n\nEleven doctors each rewrote questions into a similar "
       "and a different (but lexically close) question. Studies split by doctor, never by row."),
    code("by_doctor = overview.mqp_by_doctor(pairs)\n"
         "save_table(by_doctor, STUDY, \"mqp_by_doctor\", \"MQP pairs per doctor and label\")\n"
         "fig = go.Figure([go.Bar(x=by_doctor.dr_id, y=by_doctor[f\"label_{l}\"], name=name)\n"
         "                 for l, name in [(1, \"similar (1)\"), (0, \"different (0)\")]])\n"
         "fig.update_layout(barmode=\"stack\", title=\"MQP: pairs per doctor and label\",\n"
         "                  xaxis_title=\"doctor (dr_id)\", yaxis_title=\"pairs\")\n"
         "save_figure(fig, STUDY, \"mqp_label_balance\", \"MQP label balance per doctor: every doctor wrote \"\n"
         "            \"as many similar as different pairs.\");"),
    code("lengths = overview.mqp_lengths(pairs)\n"
         "fig = px.histogram(lengths, x=\"words\", color=\"label\", facet_col=\"side\", barmode=\"overlay\",\n"
         "                   nbins=40, opacity=0.7, title=\"MQP: question length in words\")\n"
         "medians = lengths.groupby([\"side\", \"label\"])[\"words\"].median()\n"
         "save_figure(fig, STUDY, \"mqp_lengths\", \"Length of MQP questions in words, by side and label (median \"\n"
         "            + \", \".join(f\"{s} {l}: {m:.0f}\" for (s, l), m in medians.items()) + \").\")\n"
         "lengths.groupby([\"side\", \"label\"])[\"words\"].describe().round(1)"),
    md("## Tiny Shakespeare and Chinchilla's points"),
    code("text_stats = pd.DataFrame([overview.text_summary(shakespeare)])\n"
         "save_table(text_stats, STUDY, \"tinyshakespeare\", \"Tiny Shakespeare corpus size\")\n"
         "fig = px.scatter(chinchilla, x=\"N\", y=\"D\", color=\"loss\", log_x=True, log_y=True,\n"
         "                 color_continuous_scale=\"Viridis\", title=\"Chinchilla Fig. 4 points: parameters vs tokens\")\n"
         "fig.update_layout(xaxis_title=\"parameters N\", yaxis_title=\"training tokens D = C / (6N)\")\n"
         "save_figure(fig, STUDY, \"chinchilla_points\", \"The 245 (N, D, loss) points read off Chinchilla's \"\n"
         "            \"Figure 4 by Epoch AI; colour = final loss.\")\n"
         "text_stats"),
    md("## QMSum transcripts vs model context\n\nTiny Titans' FLAN-T5 had a 2,048-token context; "
       "QMSum transcripts are several times longer, which is why chunking matters in the "
       "summarization study."),
    code("count_tokens = overview.token_counter(cfg[\"tokenizer\"])\n"
         "splits = {s: qmsum[s] for s in cfg[\"qmsum_splits\"]}\n"
         "meetings = overview.qmsum_lengths(splits, count_tokens, cfg[\"max_meetings\"])\n"
         "coverage = overview.context_coverage(meetings, cfg[\"contexts\"])\n"
         "save_table(meetings, STUDY, \"qmsum_meetings\", f\"QMSum meetings: turns, words, {cfg['tokenizer']} tokens, queries\")\n"
         "save_table(coverage, STUDY, \"qmsum_context_coverage\", \"Share of QMSum transcripts that fit each context size\")\n"
         "fig = px.histogram(meetings, x=\"tokens\", color=\"split\", nbins=30, barmode=\"overlay\", opacity=0.75,\n"
         "                   title=\"QMSum transcript length in tokens vs model context\")\n"
         "for context in cfg[\"contexts\"]:\n"
         "    fig.add_vline(x=context, line_dash=\"dot\", line_color=\"#555\",\n"
         "                  annotation_text=f\"{context:,}\", annotation_position=\"top\")\n"
         "fig.update_layout(xaxis_title=f\"tokens ({cfg['tokenizer']} tokenizer)\", yaxis_title=\"meetings\")\n"
         "row = coverage.set_index(\"context_tokens\").iloc[min(1, len(coverage) - 1)]\n"
         "save_figure(fig, STUDY, \"qmsum_lengths\", f\"QMSum transcript lengths (tokens) with context sizes marked: \"\n"
         "            f\"{row.fit_share:.0%} of {len(meetings)} meetings fit in {row.name:,} tokens; the median \"\n"
         "            f\"transcript is {row.median_length_over_context:.1f}x that window.\")\n"
         "coverage.round(3)"),
    code("record.results.update({\n"
         "    \"mqp_pairs\": len(pairs), \"mqp_doctors\": int(pairs.dr_id.nunique()),\n"
         "    \"qmsum_meetings\": int(len(meetings)), \"qmsum_median_tokens\": float(meetings.tokens.median()),\n"
         "})\n"
         "notebook.end(record, figures=[\"mqp_label_balance\", \"mqp_lengths\", \"chinchilla_points\", \"qmsum_lengths\"],\n"
         "             tables=[\"datasets\", \"mqp_by_doctor\", \"tinyshakespeare\", \"qmsum_meetings\", \"qmsum_context_coverage\"]);"),
]
write_notebook("data_overview", cells)
