"""No output of a run carries a path of the machine that ran it (issue 12, item 6).

Outputs get committed, mailed and compared across machines; a home folder, temp folder,
checkout, cache or data-mirror path in them leaks who ran what where and makes two identical
runs differ. One ``labkit run`` of the throwaway study from ``tests/test_studies.py`` (plus a
real dataset read from the mirror when there is one, and a figure) writes into a temporary
figures folder; then every text file under it is searched for those folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.run import portable, reference
from tests.test_studies import THROWAWAY_CELLS, write_throwaway_study

EXTRA_CELLS = [
    "import plotly.express as px\nfrom labkit.figures import save_figure\n"
    'save_figure(px.line(x=[1, 2, 3], y=[3, 1, 2]), record, "line", "A line.")',
]
DATA_CELL = 'import labkit.data\nprint(len(labkit.data.load("chinchilla")))'


def _mirror_has(key: str) -> bool:
    return any((Path(m) / key).is_dir() for m in os.environ.get("LABKIT_DATA_MIRROR", "").split(os.pathsep) if m)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> Path:
    """The figures folder of one ``labkit run throwaway --profile smoke``."""
    tmp = tmp_path_factory.mktemp("portable")
    cells = list(THROWAWAY_CELLS)
    cells[-1:-1] = EXTRA_CELLS + ([DATA_CELL] if _mirror_has("chinchilla") else [])
    folder = write_throwaway_study(tmp, cells, figures=["line"])
    figs = tmp / "figs"
    env = {**os.environ, "LABKIT_STUDY_PATH": str(folder), "LABKIT_FIGURES_DIR": str(figs)}
    done = subprocess.run(
        [sys.executable, "-m", "labkit.run.cli", "run", "throwaway", "--profile", "smoke"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return figs


def text_files(root: Path) -> list[Path]:
    """Every file under ``root`` that decodes as UTF-8 text (PNGs and other binaries skipped)."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if b"\0" in data[:4096]:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append(path)
    return out


def leaks(root: Path, needles: list[str]) -> list[str]:
    """``<file>: <path> in "...context..."`` for every machine path found under ``root``."""
    found = []
    for path in text_files(root):
        text = path.read_text(encoding="utf-8")
        for needle in portable.path_leaks(text, needles):
            at = text.index(needle)
            context = text[max(0, at - 50) : at + len(needle) + 30].replace("\n", "\\n")
            found.append(f"{path.relative_to(root)}: {needle} in ...{context}...")
    return found


def test_the_needles_cover_home_temp_checkout_and_the_run_folder(run_folder):
    needles = portable.machine_paths(run_folder)
    for folder in (os.path.expanduser("~"), "/tmp", str(Path(__file__).resolve().parents[1])):
        assert folder.rstrip("/") in needles or os.path.realpath(folder) in needles
    assert str(run_folder) in needles or os.path.realpath(run_folder) in needles
    assert (run_folder / "throwaway" / "run_record.json").is_file()
    assert len(text_files(run_folder)) >= 6  # record, notebook, csv, md, html, gallery


def test_no_output_of_a_run_holds_a_machine_path(run_folder):
    found = leaks(run_folder, portable.machine_paths(run_folder))
    assert not found, "machine paths in the outputs of one run:\n" + "\n".join(found)


def test_the_reference_record_of_that_run_is_portable(run_folder, tmp_path):
    out = reference.build(run_folder, tmp_path / "results", allow_partial=True)
    record = json.loads((out / "throwaway" / "record.json").read_text())
    assert record["profile"] == "smoke" and sorted(o["name"] for o in record["outputs"]) == [
        "line",
        "numbers",
    ]
    assert (out / "throwaway" / "numbers.md").read_text().startswith("**The first n integers.**")
    assert not leaks(out, portable.machine_paths(run_folder))


def test_the_grep_names_file_and_path_of_a_planted_leak(tmp_path):
    (tmp_path / "study").mkdir()
    home = os.path.expanduser("~")
    (tmp_path / "study" / "run_record.json").write_text(json.dumps({"data": f"{home}/.cache/x"}))
    (tmp_path / "study" / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n\0" + home.encode())
    (tmp_path / "study" / "ok.md").write_text("Sulfameth/tmp ds: a drug name, not a folder")
    found = leaks(tmp_path, portable.machine_paths(tmp_path))
    assert len(found) == 1 and found[0].startswith(f"study/run_record.json: {home} in ")
