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
# # Explore: medical embeddings
#
# Pick a model and move the threshold: the confusion matrix on the held-out doctors, the similarity distributions and the pairs nearest the threshold (the hard calls, with their questions) update. The threshold starts at the value chosen on the training doctors.
#
# This notebook only reads what the batch run wrote under `figures/embeddings_medical/`; nothing is recomputed. Produce those results first with
#
# ```
# labkit run embeddings_medical
# ```
#
# (or `make figures` for every study). Open it in JupyterLab (`make lab`) with a live kernel: the controls need one.

# %% tags=["parameters"]
results_dir = None  # a figures folder holding the study results; None means the default

# %%
from labkit.explore import embeddings

embeddings.explorer(results_dir)
