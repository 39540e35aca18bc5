"""Execute a notebook on the smoke profile and store its text outputs for nbval to compare.

    .venv/bin/python tools/store_nbval_outputs.py notebooks/data_overview.ipynb

Only plain-text outputs (stdout, text/plain) are kept; images, HTML and widget state are
dropped so the committed notebook stays small and nbval compares what is deterministic. Mark
cells whose text legitimately varies with ``# NBVAL_IGNORE_OUTPUT``. Outputs go to a temporary
figures folder, never over ``figures/``.
"""
import os
import sys
import tempfile

import nbformat
from nbclient import NotebookClient

KEEP_MIME = ("text/plain",)


def main(path: str) -> None:
    os.environ.setdefault("LABKIT_PROFILE", "smoke")
    os.environ["LABKIT_BATCH"] = "1"
    os.environ["LABKIT_FIGURES_DIR"] = tempfile.mkdtemp(prefix="labkit-nbval-")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=900,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stdout":
                kept.append(out)
            elif out.output_type in ("execute_result", "display_data"):
                data = {k: v for k, v in out.get("data", {}).items() if k in KEEP_MIME}
                if data and out.output_type == "execute_result":
                    out["data"], out["metadata"] = data, {}
                    kept.append(out)
        cell["outputs"] = kept
    nbformat.write(nb, path)
    print(f"stored text outputs of {path}")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        main(arg)
