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
# # Explore: meeting summaries side by side
#
# Pick a meeting (and query), an instruction type and the systems to compare: their summaries appear side by side with the reference and per-meeting ROUGE.
#
# This notebook only reads what the batch run wrote under `figures/meeting_summarization/`; nothing is recomputed. Produce those results first with
#
# ```
# labkit run meeting_summarization
# ```
#
# (or `make figures` for every study). Open it in JupyterLab (`make lab`) with a live kernel: the controls need one.

# %% tags=["parameters"]
results_dir = None  # a figures folder holding the study results; None means the default

# %%
from labkit.explore import summaries

summaries.explorer(results_dir)
