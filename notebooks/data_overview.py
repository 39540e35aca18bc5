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
# # Data overview
#
# What each dataset labkit ships a registry entry for holds: counts, length distributions, label balance, and QMSum transcript lengths in tokens against typical model context windows. Data are read from the registry (explicit path → cache → `$LABKIT_DATA_MIRROR` → download with sha256 check); the run record lists each file's hash.
#
# Change the parameters below, or run `labkit run data_overview -p key=value`.

# %% tags=["parameters"]
profile = None  # "smoke" | "default" | "paper"; None -> $LABKIT_PROFILE or "default"
seed = 0
qmsum_splits = None  # e.g. ["test"]; None -> profile
max_meetings = None  # 0 means all meetings; None -> profile
tokenizer = None  # any model name with a tokenizer; None -> profile (all-MiniLM-L6-v2)
contexts = None  # context sizes (tokens) to compare transcript lengths with
device = None  # "cpu", "cuda", "cuda:N", "mps"; None: $LABKIT_DEVICE, else CUDA if present, else CPU
mixed_precision = None  # False: float32 everywhere; None: bf16 where the device supports it

# %%
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

import labkit.data as data
from labkit import notebook, overview
from labkit.figures import save_figure, save_table

STUDY = "data_overview"
cfg, record = notebook.begin(
    STUDY,
    overview.PROFILES,
    profile,
    seed,
    qmsum_splits=qmsum_splits,
    max_meetings=max_meetings,
    tokenizer=tokenizer,
    contexts=contexts,
    device=device,
    mixed_precision=mixed_precision,
)
print({k: cfg[k] for k in ("profile", "qmsum_splits", "max_meetings", "tokenizer")})

# %% [markdown]
# ## The registry

# %%
pairs = data.load("mqp")
shakespeare = data.load("tinyshakespeare")
chinchilla = data.load("chinchilla")
qmsum = data.load("qmsum")
registry = pd.DataFrame(
    [
        {
            "key": key,
            "records": n,
            "unit": unit,
            "origin": data.USED[key].origin,
            "licence": data.get(key).licence,
            "files": len(data.USED[key].sha256),
        }
        for key, n, unit in [
            ("mqp", len(pairs), "pairs"),
            ("tinyshakespeare", len(shakespeare), "characters"),
            ("chinchilla", len(chinchilla), "runs"),
            ("qmsum", sum(len(v) for v in qmsum.values()), "meetings"),
        ]
    ]
)
save_table(registry, record, "datasets", "Datasets in the registry, as resolved for this run")
registry

# %% [markdown]
# ## Medical Question Pairs (MQP)
#
# Eleven doctors each rewrote questions into a similar and a different (but lexically close) question. Studies split by doctor, never by row.

# %%
by_doctor = overview.mqp_by_doctor(pairs)
save_table(by_doctor, record, "mqp_by_doctor", "MQP pairs per doctor and label")
fig = go.Figure(
    [
        go.Bar(x=by_doctor.dr_id, y=by_doctor[f"label_{lab}"], name=name)
        for lab, name in [(1, "similar (1)"), (0, "different (0)")]
    ]
)
fig.update_layout(
    barmode="stack", title="MQP: pairs per doctor and label", xaxis_title="doctor (dr_id)", yaxis_title="pairs"
)
save_figure(
    fig,
    record,
    "mqp_label_balance",
    "MQP label balance per doctor: every doctor wrote as many similar as different pairs.",
)
# %%
lengths = overview.mqp_lengths(pairs)
fig = px.histogram(
    lengths,
    x="words",
    color="label",
    facet_col="side",
    barmode="overlay",
    nbins=40,
    opacity=0.7,
    title="MQP: question length in words",
)
fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))  # "question_1", not "side=question_1"
medians = lengths.groupby(["side", "label"])["words"].median()
save_figure(
    fig,
    record,
    "mqp_lengths",
    "Length of MQP questions in words, by side and label (median "
    + ", ".join(f"{s} {lab}: {m:.0f}" for (s, lab), m in medians.items())
    + ").",
)
lengths.groupby(["side", "label"])["words"].describe().round(1)

# %% [markdown]
# ## Tiny Shakespeare and Chinchilla's points

# %%
text_stats = pd.DataFrame([overview.text_summary(shakespeare)])
save_table(text_stats, record, "tinyshakespeare", "Tiny Shakespeare corpus size")
fig = px.scatter(
    chinchilla,
    x="N",
    y="D",
    color="loss",
    log_x=True,
    log_y=True,
    color_continuous_scale="Viridis",
    title="Chinchilla Fig. 4 points: parameters vs tokens",
)
fig.update_layout(xaxis_title="parameters N", yaxis_title="training tokens D = C / (6N)")
save_figure(
    fig,
    record,
    "chinchilla_points",
    "The 245 (N, D, loss) points read off Chinchilla's Figure 4 by Epoch AI; colour = final loss.",
)
text_stats

# %% [markdown]
# ## QMSum transcripts vs model context
#
# Tiny Titans' FLAN-T5 had a 2,048-token context; QMSum transcripts are several times longer, which is why chunking matters in the summarization study.

# %%
count_tokens = overview.token_counter(cfg["tokenizer"])
splits = {s: qmsum[s] for s in cfg["qmsum_splits"]}
meetings = overview.qmsum_lengths(splits, count_tokens, cfg["max_meetings"])
coverage = overview.context_coverage(meetings, cfg["contexts"])
save_table(meetings, record, "qmsum_meetings", f"QMSum meetings: turns, words, {cfg['tokenizer']} tokens, queries")
save_table(coverage, record, "qmsum_context_coverage", "Share of QMSum transcripts that fit each context size")
fig = overview.qmsum_lengths_figure(meetings, cfg["contexts"], cfg["tokenizer"])
row = coverage.set_index("context_tokens").iloc[min(1, len(coverage) - 1)]
save_figure(
    fig,
    record,
    "qmsum_lengths",
    f"QMSum transcript lengths (tokens) with context sizes marked: "
    f"{row.fit_share:.0%} of {len(meetings)} meetings fit in {row.name:,} tokens; the median "
    f"transcript is {row.median_length_over_context:.1f}x that window.",
)
coverage.round(3)

# %%
record.results.update(
    {
        "mqp_pairs": len(pairs),
        "mqp_doctors": int(pairs.dr_id.nunique()),
        "qmsum_meetings": int(len(meetings)),
        "qmsum_median_tokens": float(meetings.tokens.median()),
    }
)
notebook.end(
    record,
    figures=["mqp_label_balance", "mqp_lengths", "chinchilla_points", "qmsum_lengths"],
    tables=["datasets", "mqp_by_doctor", "tinyshakespeare", "qmsum_meetings", "qmsum_context_coverage"],
)
