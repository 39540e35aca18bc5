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
# # Scaling laws, unique-sequence bounds and a tiny-model sweep
#
# Kausik 2024, *Scaling Efficient LLMs* (arXiv 2402.14746 v1), building on Hoffmann et al. 2022 (Chinchilla). From a fitted law L(N, D) = E + A/N^α + B/D^β and PAC estimates of the excess loss (realizable U/D, agnostic √(U/D)), the number U of unique sequences in D tokens lies between D^(1−2β) and D^(1−β); an efficient model needs N ~ U, so N ~ D^γ with γ ∈ [1−2β, 1−β], and doubling the skills needs 2^(1/γ) times more data.
#
# This notebook
#
# 1. fits Chinchilla's approach 3 exactly as published (Huber δ = 1e-3 on log loss, summed, L-BFGS-B from the 4,500-point grid) to the 245 points read off Chinchilla's Figure 4, dropping the 5 highest-loss points as Epoch's replication did, with bootstrap intervals, Kaplan's joint form beside it, and the compute-optimal allocation;
# 2. leads with Kausik's numbers at labkit's refit β (with the intervals its bootstrap distribution implies), beside the paper's β = 0.28, and warns when the paper's headline γ = 0.58 lies outside the refit's interval;
# 3. trains its own sweep of tiny decoders (labkit.lm) on real text — small models on long budgets (up to thousands of tokens per parameter), large ones on short — fits the same law with the same identification checks, and counts unique n-grams of that text against the bounds.
#
# Not tested here: the paper's claims about sparsity and about emergent skills (it derives them from the same bounds; nothing in this notebook measures either).
#
# Bring your own runs with `points_csv` (columns N, D, loss), or run `labkit run scaling_laws -p key=value`.

# %% tags=["parameters"]
profile = None  # "smoke" | "default" | "paper"; None means $LABKIT_PROFILE or "default"
seed = 0
points_csv = None  # your own runs: a CSV with columns N, D, loss; None: Chinchilla's points
drop_highest = None  # drop this many highest-loss points first (Epoch: 5); None: profile
fit_starts = None  # 0: the published 4,500-start grid; n: Hoffmann's constants + n grid points
bootstrap = None  # bootstrap resamples of the fit; None: profile
n_jobs = None  # processes for the bootstrap
sweep_sizes = None  # list of {hidden_size, num_layers, num_heads[, budgets]}; None: profile
sweep_budgets = None  # token budgets D for sizes without their own budgets; None: profile
sweep_base = None  # other TinyLMConfig fields (vocab_size, context_length, corpus, ...)
country = "USA"  # for codecarbon's carbon intensity
device = None  # "cpu", "cuda", "cuda:N", "mps"; None: $LABKIT_DEVICE, else CUDA if present, else CPU
mixed_precision = None  # False: float32 everywhere; None: bf16 where the device supports it

# %%
import numpy as np
import pandas as pd

import labkit.data as data
from labkit import notebook
from labkit.carbon import CarbonSession
from labkit.figures import save_figure, save_table
from labkit.io import sha256_file
from labkit.scaling import PROFILES, design, study, sweep
from labkit.scaling.fit import CHINCHILLA_COMPUTE, compute_optimal, drop_highest_loss, load_points

STUDY = "scaling_laws"
cfg, record = notebook.begin(
    STUDY,
    PROFILES,
    profile,
    seed,
    points_csv=points_csv,
    drop_highest=drop_highest,
    fit_starts=fit_starts,
    bootstrap=bootstrap,
    n_jobs=n_jobs,
    sweep_sizes=sweep_sizes,
    sweep_budgets=sweep_budgets,
    sweep_base=sweep_base,
    country=country,
    device=device,
    mixed_precision=mixed_precision,
)
if cfg["points_csv"]:
    points = load_points(cfg["points_csv"])
    record.results["points_csv_sha256"] = sha256_file(cfg["points_csv"])
else:
    points = load_points(data.load("chinchilla")[["N", "D", "loss"]], name="chinchilla")
points = drop_highest_loss(points, cfg["drop_highest"])
print(f"{len(points)} points; profile {cfg['profile']}")

# %% [markdown]
# ## 1. The fit, with bootstrap intervals
#
# The interval of each parameter comes from refitting on resampled points (each refit starts from the full-data optimum and a few grid points, with tolerances tight enough that it lands where the full grid does).

# %%
rep = study.replication(points, starts=cfg["fit_starts"], n_bootstrap=cfg["bootstrap"], seed=seed, n_jobs=cfg["n_jobs"])
params = study.parameter_table(rep)
save_table(
    params,
    record,
    "fit_params",
    "Chinchilla-form fit: estimates, 95% bootstrap intervals and Hoffmann et al.'s published constants",
)
save_table(rep.samples, record, "bootstrap_params", "Every bootstrap refit (one row per resample)")
goodness = study.goodness_table({"chinchilla form": rep.fit, "kaplan joint form": rep.kaplan}, record)
save_table(goodness, record, "goodness", "Goodness of fit of the Chinchilla and Kaplan forms")
record.results["fit"] = {**rep.fit.params, "rmse_log": rep.fit.goodness()["rmse_log"]}
params

# %%
save_figure(
    study.law_figure(rep.fit, points, "Chinchilla's points and the fitted law"),
    record,
    "law",
    "Loss against training tokens for Chinchilla's runs (binned by model size) and the "
    "fitted law L = E + A/N^α + B/D^β along each size.",
)
save_figure(
    study.contour_figure(rep.fit, points, np.array([1e18, 1e20, 1e22, CHINCHILLA_COMPUTE])),
    record,
    "contours",
    "Iso-loss contours of the fitted law, iso-FLOP lines C = 6ND (dotted) and the compute-optimal frontier (red).",
)
save_figure(
    study.residual_figure(rep.fit, points),
    record,
    "residuals",
    "Residuals of the fit in log loss against compute; colour is model size.",
)
save_figure(
    study.bootstrap_figure(rep.samples, rep.fit.params),
    record,
    "bootstrap",
    "Bootstrap distributions of each parameter: the fit (red) and Hoffmann et al.'s constants (orange, dashed).",
)

# %% [markdown]
# ## 2. Compute-optimal allocation

# %%
compute = np.array([1e21, 1e22, 1e23, CHINCHILLA_COMPUTE, 1e24, 1e25])
optimal = pd.concat(
    [
        compute_optimal(rep.fit.params, compute).assign(law="our fit"),
        compute_optimal(study.HOFFMANN_PARAMS, compute).assign(law="Hoffmann et al."),
    ]
)
save_table(
    optimal,
    record,
    "compute_optimal",
    "Compute-optimal N and D (C = 6ND) under our fit "
    "and under the published constants; 5.76e23 FLOP is Chinchilla's budget",
)
record.results["tokens_per_param_at_chinchilla_compute"] = float(
    optimal[(optimal.law == "our fit") & (optimal.C == CHINCHILLA_COMPUTE)].tokens_per_param.iloc[0]
)
optimal

# %% [markdown]
# ## 3. Kausik's bounds
#
# The headline is Kausik's arithmetic at labkit's own refit β of Chinchilla's points (section 1), with the 95% intervals its bootstrap distribution implies; the paper's values at Hoffmann's β = 0.28 (γ ∈ [0.44, 0.72], midpoint 0.58; 2.6x to 4.8x the data to double the skills) are beside them. `paper_inside_ci` says whether the paper's number survives the refit; when γ = 0.58 does not, the run record carries a warning.

# %%
beta_fit = rep.fit.params["beta"]
beta_ci = tuple(rep.ci.set_index("parameter").loc["beta", ["low", "high"]])
kt = study.kausik_table(rep.samples, beta_fit, record=record)
save_table(
    kt,
    record,
    "kausik",
    f"Kausik at labkit's refit β = {beta_fit:.3f} (95% intervals from "
    "its bootstrap distribution), headline rows first, beside the paper's β = 0.28",
)
save_figure(
    study.kausik_figure(kt),
    record,
    "kausik_refit",
    "Kausik's exponent γ of N ~ D^γ and the data factor that doubles the skills at labkit's "
    "refit β (red, 95% bootstrap interval) beside the paper's β = 0.28 (blue); the pale bars "
    "are each γ range 1 − 2β .. 1 − β.",
)
save_figure(
    study.beta_figure(np.linspace(0.05, 0.45, 81), beta_fit, beta_ci),
    record,
    "gamma_vs_beta",
    "How Kausik's conclusions move with β: the exponent γ of N ~ D^γ and the data factor that doubles the skills.",
)
kt

# %% [markdown]
# ## 4. Our own sweep
#
# One tiny Llama-architecture decoder per (size, budget), each ending in its own learning-rate cool-down: the budgets of one size are branches of one warmup-stable-decay run (Hägele et al. 2024; `schedule: cosine` in `sweep_base` trains every point from scratch instead), so the sweep costs the longest budget of each size plus the others' 20% cool-downs (`branched_from_step` in the table), trained on real text and scored on every token of the held-out documents; N counts non-embedding parameters. The design gives every term of the law a say: the smallest models train on up to thousands of tokens per parameter (just over one epoch of the training stream), where the loss bends towards the floor E; the largest on one or two, where the data term dominates (`tokens_per_param` and `epochs` in the table). The fit has the same identification checks as Chinchilla's, including a bound on how wide an identified parameter's interval may be; the constrained form with E fixed at 0 is fitted beside it, and when the five-parameter fit leaves a parameter unidentified the run record says so with the numbers and points at the constrained one. The notebook's `seed` seeds the trainings too, so `--seeds` measures training noise. Models are cached, so a re-run only trains new grid points.

# %%
with CarbonSession(cfg["country"]) as carbon:
    runs = sweep.run_sweep(cfg["sweep_sizes"], cfg["sweep_budgets"], {"seed": seed, **cfg["sweep_base"]}, carbon=carbon)
record.add_energy("sweep training", carbon.total())
save_table(runs, record, "sweep_runs", "Our sweep: one row per trained model (held-out loss in nats/token)")
ours, ours_ci, e0, mine = None, None, None, None
try:
    mine = study.replication(
        runs[["N", "D", "loss"]],
        starts=cfg["sweep_fit_starts"],
        n_bootstrap=cfg["sweep_bootstrap"],
        seed=seed,
        n_jobs=cfg["n_jobs"],
        with_kaplan=False,
    )
    ours, ours_ci = mine.fit, mine.ci
    save_table(
        study.parameter_table(mine, published=None),
        record,
        "sweep_fit_params",
        "Our sweep's Chinchilla-form fit: estimates, 95% bootstrap intervals (runs "
        "resampled) and whether each parameter is identified",
    )
    e0 = study.replication(
        runs[["N", "D", "loss"]],
        starts=cfg["sweep_fit_starts"],
        n_bootstrap=cfg["sweep_bootstrap"],
        seed=seed,
        n_jobs=cfg["n_jobs"],
        with_kaplan=False,
        form="chinchilla_e0",
    )
    save_table(
        study.parameter_table(e0, published=None),
        record,
        "sweep_fit_e0",
        "Our sweep's constrained fit L = A/N^α + B/D^β (E fixed at 0): what to read when "
        "the five-parameter fit leaves E unidentified",
    )
except Exception as err:  # too few runs or a fit that does not converge: say so, keep going
    record.warn(f"the sweep's law was not fitted: {err}")
exponents = study.exponent_table(ours, ours_ci, rep.fit, record)
save_table(exponents, record, "exponents", "Exponents of our sweep against Chinchilla's")
save_figure(
    study.sweep_figure(ours, runs),
    record,
    "sweep",
    "Held-out loss of our tiny decoders against training tokens, with the fitted law. "
    f"Training energy {carbon.total()['energy_kwh']:.2g} kWh ({carbon.power_method}).",
)
if ours is not None:
    study.sweep_results(ours, ours_ci, record)
if e0 is not None:
    study.sweep_results(e0.fit, e0.ci, record)
    study.e_not_identified(ours, ours_ci, e0.fit, runs, record)
exponents

# %% [markdown]
# ### Which sweep would identify the law?
#
# When the fit leaves parameters unidentified, is the corpus the limit, the design, or the compute? Before anyone spends the compute, `labkit.scaling.design` simulates candidate designs the way a power analysis sizes a trial: this sweep, its budgets run to 4x (up to about 4.5 epochs), two larger sizes added (the `paper` profile's), and both. Each is simulated under three plausible laws (the fit, and the bootstrap refits at E's 5th and 95th percentile): the law's loss at the design's (N, D) plus noise of the fit's residual RMSE, refitted as the bootstrap does and judged by the same identification rule. The first rows (this sweep) check the simulation against the real bootstrap above; the cost is an estimate from this run's own training speed. Repeated epochs count as fresh tokens here, so designs past one epoch are optimistic.

# %%
designs = None
if ours is not None and mine is not None:
    sizes = design.with_budgets(cfg["sweep_sizes"], cfg["sweep_budgets"])
    designs = design.design_table(
        ours,
        mine.samples,
        runs,
        sizes,
        vocab_size=design.vocab_of(runs),
        corpus_tokens=sweep.corpus_token_counts(cfg["sweep_base"])["train_stream_tokens"],
        n_sims=cfg["sweep_design_sims"],
        seed=seed,
        n_jobs=cfg["n_jobs"],
    )
    save_table(
        designs,
        record,
        "sweep_design",
        f"Simulated fits of candidate sweep designs ({cfg['sweep_design_sims']} per row): each "
        "parameter's simulated 95% range as a factor (high / low) and how many of the five the "
        "study's rule identifies; repeated epochs counted as fresh tokens; cost estimated from "
        "this run's training speed",
    )
    record.results["sweep_design"] = design.design_results(designs)
    record.warn(
        design.design_verdict(
            designs,
            identified_by_bootstrap=record.results.get("sweep_identified"),
            measured_min=float(runs["wall_s"].sum()) / 60,
        )
    )
else:
    record.warn("the sweep's designs were not simulated: the sweep's law was not fitted")
designs

# %% [markdown]
# ## 5. Unique sequences in real text against the bounds

# %%
ids = sweep.corpus_token_ids(cfg["sweep_base"])
record.results["sweep_corpus"] = {
    **sweep.corpus_token_counts(cfg["sweep_base"]),
    "max_epochs": float(runs["epochs"].max()),
}
counts = sweep.unique_ngrams(ids, cfg["ngram_orders"], sweep.token_budget_grid(len(ids), cfg["ngram_points"]))
save_table(
    counts, record, "unique_ngrams", "Unique token n-grams among the first D tokens of the sweep's training text"
)
save_figure(
    study.unique_sequences_figure(counts, beta_fit, beta_ci),
    record,
    "unique_sequences",
    "Kausik's band D^(1−2β)..D^(1−β) at our fitted β (shaded: over its 95% interval) "
    "beside unique n-grams of the sweep's training text.",
)
counts.pivot(index="D", columns="n", values="unique")

# %%
study.headlines_first(record)
notebook.end(
    record,
    figures=["law", "contours", "residuals", "bootstrap", "kausik_refit", "gamma_vs_beta", "sweep", "unique_sequences"],
    tables=[
        "fit_params",
        "bootstrap_params",
        "goodness",
        "compute_optimal",
        "kausik",
        "sweep_runs",
        "sweep_fit_params",
        "sweep_fit_e0",
        "sweep_design",
        "exponents",
        "unique_ngrams",
    ],
)
