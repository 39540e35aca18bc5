"""Interactive explorers over what a batch run wrote (``notebooks/explore_*.ipynb``).

Each study has a module here with one public call, ``explorer(root=None) -> ipywidgets.Widget``:
ipywidgets controls plus plotly ``FigureWidget``s built only from the files under
``figures/<study>/`` (no recomputation, so they respond instantly). When those files are
missing, or were written by a labkit whose record format this one cannot read, the explorer
returns a message saying what to run instead of raising: an exploration notebook should never
end in a traceback because nobody ran the batch job yet.

The widget a reader moves first carries the CSS class ``labkit-main-control``; the real-browser
test (``tests/browser``) finds it by that class, moves it and checks the figure changed.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from labkit import studies
from labkit.errors import LabkitError
from labkit.paths import figures_dir
from labkit.records import RECORD_NAME, RECORD_VERSION

MAIN_CONTROL_CLASS = "labkit-main-control"

#: exploration notebook stem suffix -> the study whose batch results it explores (from the
#: study registry: each entry's ``explorer``)
STUDIES = studies.explorers()


class ResultsMissing(LabkitError):
    """The batch results an explorer needs are absent or from an incompatible labkit."""


def results_folder(study: str, files: Iterable[str], root: Path | None = None) -> Path:
    """Return ``<root>/<study>`` after checking its run record and the named result files.

    Raises:
        ResultsMissing: with the command to run, if the record or a file is missing, or the
            record was written in another record format.
    """
    root = Path(root) if root is not None else figures_dir()
    folder = root / study
    rerun = (
        f"run `labkit run {study}` (or `make figures`) first, or point LABKIT_FIGURES_DIR "
        "at a folder that has its results"
    )
    record_path = folder / RECORD_NAME
    if not record_path.is_file():
        raise ResultsMissing(f"no results of study {study!r} in {folder}: {rerun}")
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ResultsMissing(f"{record_path} is unreadable ({err}): {rerun}") from None
    version = record.get("record_version")
    if version != RECORD_VERSION:
        raise ResultsMissing(
            f"{record_path} was written by labkit {record.get('labkit_version', '?')} in record "
            f"format {version!r}; this labkit reads format {RECORD_VERSION}: re-run "
            f"`labkit run {study}` to refresh the results"
        )
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise ResultsMissing(f"{folder} lacks {', '.join(missing)} (results of an older or interrupted run?): {rerun}")
    return folder


def message(text: str, title: str = "Nothing to explore yet"):
    """A readable notice in place of the explorer."""
    import ipywidgets as widgets

    return widgets.HTML(
        f"<div style='border-left:4px solid #D55E00;padding:8px 12px;background:#fff6ef'>"
        f"<b>{html.escape(title)}</b><br>{html.escape(text)}</div>"
    )


def main_control(widget):
    """Mark ``widget`` as the control a reader (and the browser test) moves first."""
    widget.add_class(MAIN_CONTROL_CLASS)
    return widget


def open_explorer(study: str, files: Iterable[str], build: Callable[[Path], Any], root: Path | None = None):
    """``build(folder)`` when the results are there, else a message saying what to run."""
    try:
        folder = results_folder(study, files, root)
    except ResultsMissing as err:
        return message(str(err))
    return build(folder)
