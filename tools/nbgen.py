"""Shared by the tools/make_*.py notebook generators: cell constructors and one writer.

Notebooks are generated from code so their source is reviewable in diffs; they are written
without outputs and with the labkit kernel, which is what nbval and papermill expect.
"""
from pathlib import Path

import nbformat as nbf

md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
KERNEL = {"kernelspec": {"display_name": "Python 3 (labkit)", "language": "python", "name": "python3"},
          "language_info": {"name": "python"}}


def write_notebook(name: str, cells: list) -> Path:
    """Write ``notebooks/<name>.ipynb`` from ``cells``."""
    nb = nbf.v4.new_notebook()
    nb["cells"] = cells
    nb["metadata"] = KERNEL
    path = Path(__file__).resolve().parents[1] / "notebooks" / f"{name}.ipynb"
    nbf.write(nb, str(path))
    return path
