"""Every notebook is a jupytext pair (.ipynb + percent-format .py) and the two sides agree.

Reviewers read the .py in diffs while papermill, nbval and JupyterLab run the .ipynb, so a
pair that drifted apart would review one program and run another. `make notebooks` (or
JupyterLab with jupytext) re-syncs them; this test fails until that has been done. It also
checks that notebooks are committed without outputs, so that a diff never carries numbers
that were not produced by the committed code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PAIRED = sorted(NOTEBOOKS.glob("*.ipynb"))
KERNEL_NAME = "python3"


def _cells(nb) -> list[tuple[str, str, list[str]]]:
    """What a reader and a kernel see of each cell: its type, source and tags."""
    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in nb.cells]


def pair_differences(ipynb: Path) -> list[str]:
    """Ways in which ``ipynb`` and its paired ``.py`` disagree (empty when in sync)."""
    script = ipynb.with_suffix(".py")
    if not script.is_file():
        return [f"{ipynb.name} has no paired {script.name}; run `make notebooks`"]
    left = _cells(nbformat.read(ipynb, as_version=4))
    right = _cells(jupytext.read(script))
    problems = []
    if len(left) != len(right):
        problems.append(f"{ipynb.name} has {len(left)} cells, {script.name} has {len(right)}")
    for i, (a, b) in enumerate(zip(left, right)):
        for what, x, y in zip(("type", "source", "tags"), a, b):
            if x != y:
                problems.append(
                    f"cell {i} {what} differs between {ipynb.name} and {script.name}:"
                    f"\n  ipynb: {x!r:.200}\n  py:    {y!r:.200}"
                )
    return problems


def output_problems(ipynb: Path) -> list[str]:
    """Outputs or execution counts left in a committed notebook."""
    nb = nbformat.read(ipynb, as_version=4)
    return [
        f"{ipynb.name} cell {i} has outputs or an execution count; clear them before committing"
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]


def test_there_are_notebooks_and_no_orphan_scripts():
    assert PAIRED, f"no notebooks found in {NOTEBOOKS}"
    orphans = [p.name for p in NOTEBOOKS.glob("*.py") if not p.with_suffix(".ipynb").is_file()]
    assert not orphans, f"paired scripts without a notebook: {orphans}; run `make notebooks`"


@pytest.mark.parametrize("ipynb", PAIRED, ids=lambda p: p.stem)
def test_pair_is_in_sync(ipynb: Path):
    problems = pair_differences(ipynb)
    assert not problems, "\n".join(problems) + "\nrun `make notebooks` to sync the pair"


@pytest.mark.parametrize("ipynb", PAIRED, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(ipynb: Path):
    problems = output_problems(ipynb)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("ipynb", PAIRED, ids=lambda p: p.stem)
def test_notebook_is_paired_with_one_kernel_and_a_parameters_cell(ipynb: Path):
    nb = nbformat.read(ipynb, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == KERNEL_NAME, ipynb.name
    assert "py:percent" in nb.metadata.get("jupytext", {}).get("formats", ""), ipynb.name
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{ipynb.name}: papermill needs exactly one cell tagged 'parameters'"


def _copy_pair(tmp_path: Path, name: str = "scaling_laws") -> Path:
    for suffix in (".ipynb", ".py"):
        shutil.copy2(NOTEBOOKS / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return tmp_path / f"{name}.ipynb"


def test_drift_in_one_cell_of_the_script_is_detected(tmp_path):
    ipynb = _copy_pair(tmp_path)
    assert pair_differences(ipynb) == []
    script = ipynb.with_suffix(".py")
    text = script.read_text(encoding="utf-8")
    edited = text.replace("seed = 0\n", "seed = 1\n", 1)
    assert edited != text, "the test's edit must change the parameters cell"
    script.write_text(edited, encoding="utf-8")
    problems = pair_differences(ipynb)
    assert len(problems) == 1 and "cell 1 source" in problems[0], problems


def test_lost_tag_and_stored_outputs_are_detected(tmp_path):
    ipynb = _copy_pair(tmp_path)
    nb = nbformat.read(ipynb, as_version=4)
    nb.cells[1].metadata.pop("tags")
    nb.cells[2].execution_count = 3
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="1.82\n")]
    nbformat.write(nb, ipynb)
    assert any("cell 1 tags" in p for p in pair_differences(ipynb))
    assert len(output_problems(ipynb)) == 1
