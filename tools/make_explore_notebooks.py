"""Writes notebooks/explore_*.ipynb, one exploration notebook per study.

They are thin on purpose: the widgets live in ``labkit.explore.<name>`` (unit-tested), the
notebook says what it shows, what to run first, and displays the explorer.
"""
from pathlib import Path

import nbformat as nbf

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

EXPLORERS = {
    "embeddings": ("Explore: medical embeddings", "embeddings_medical",
                   "Pick a model and move the threshold: the confusion matrix on the held-out "
                   "doctors, the similarity distributions and the pairs nearest the threshold "
                   "(the hard calls, with their questions) update. The threshold starts at the "
                   "value chosen on the training doctors."),
    "anchor": ("Explore: anchor-based KV cache", "anchor_attention",
               "Move the slider through prompts of 1, 2, ... demonstrations of real text: the "
               "prompt is shown with anchors highlighted, the tokens the anchor cache keeps in "
               "bold and the pruned ones in grey; the bars show the KV-cache size with and "
               "without pruning."),
    "summaries": ("Explore: meeting summaries side by side", "meeting_summarization",
                  "Pick a meeting (and query), an instruction type and the systems to compare: "
                  "their summaries appear side by side with the reference and per-meeting ROUGE."),
    "scaling": ("Explore: Kausik's bounds against the data exponent beta", "scaling_laws",
                "Drag beta: the band of unique sequences U(D) between D^(1-2 beta) and "
                "D^(1-beta), the exponent gamma of N ~ D^gamma and the extra data that doubles "
                "the skills move with it. After a batch run the bootstrap distribution of the "
                "fitted beta (Chinchilla's points) shows which betas the data support. The "
                "bounds themselves are closed-form, so this one works before any run."),
}


def notebook(name: str, title: str, study: str, how: str) -> nbf.NotebookNode:
    md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
    nb = nbf.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        md(f"# {title}\n\n{how}\n\nThis notebook only reads what the batch run wrote under "
           f"`figures/{study}/`; nothing is recomputed. Produce those results first with\n\n"
           f"```\nlabkit run {study}\n```\n\n(or `make figures` for every study). Open it in "
           "JupyterLab (`make lab`) with a live kernel: the controls need one."),
        code("results_dir = None  # a figures folder holding the study results; None means the default",
             metadata={"tags": ["parameters"]}),
        code(f"from labkit.explore import {name}\n\n"
             f"{name}.explorer(results_dir)"),
    ]
    return nb


def main() -> None:
    for name, (title, study, how) in EXPLORERS.items():
        path = NOTEBOOKS / f"explore_{name}.ipynb"
        nbf.write(notebook(name, title, study, how), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
