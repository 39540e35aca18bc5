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
# # Explore: Kausik's bounds against the data exponent beta
#
# Drag beta: the band of unique sequences U(D) between D^(1-2 beta) and D^(1-beta), the exponent gamma of N ~ D^gamma and the extra data that doubles the skills move with it. After a batch run the bootstrap distribution of the fitted beta (Chinchilla's points) shows which betas the data support. The bounds themselves are closed-form, so this one works before any run.
#
# This notebook only reads what the batch run wrote under `figures/scaling_laws/`; nothing is recomputed. Produce those results first with
#
# ```
# labkit run scaling_laws
# ```
#
# (or `make figures` for every study). Open it in JupyterLab (`make lab`) with a live kernel: the controls need one.

# %% tags=["parameters"]
results_dir = None  # a figures folder holding the study results; None means the default

# %%
from labkit.explore import scaling

scaling.explorer(results_dir)
