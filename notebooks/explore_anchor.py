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
# # Explore: anchor-based KV cache
#
# Move the slider through prompts of 1, 2, ... demonstrations of real text: the prompt is shown with anchors highlighted, the tokens the anchor cache keeps in bold and the pruned ones in grey; the bars show the KV-cache size with and without pruning.
#
# This notebook only reads what the batch run wrote under `figures/anchor_attention/`; nothing is recomputed. Produce those results first with
#
# ```
# labkit run anchor_attention
# ```
#
# (or `make figures` for every study). Open it in JupyterLab (`make lab`) with a live kernel: the controls need one.

# %% tags=["parameters"]
results_dir = None  # a figures folder holding the study results; None means the default

# %%
from labkit.explore import anchor

anchor.explorer(results_dir)
