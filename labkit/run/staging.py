"""Staging folders and portable executed notebooks for ``labkit run``.

A notebook writes into ``<figures>/.staging/<study>/`` (its kernel's ``LABKIT_FIGURES_DIR`` is
``<figures>/.staging``); only a notebook that finishes replaces ``<figures>/<study>/`` with it,
in one atomic swap where the platform allows, keeping the old ``seeds/`` sub-folder. A failed
or interrupted run leaves the previous outputs as they were, with the executed notebook beside
them as ``<study>.failed.ipynb``. Executed notebooks carry no absolute path in papermill's
metadata (``input_path``, ``output_path``, ``cwd``, ``parameters``), so outputs can be shared.

Several runs share ``.staging`` (and ``.staging/seed-<n>/``): a run touches a study's staging
folder only under that study's lock (:mod:`labkit.run.locks`), and the shared folders are made
and removed only under one short layout lock (:func:`prepare`, :func:`tidy`). Without it, a run
that had just finished removed the still-empty staging folder of the next run of its study
(which took the study's lock a moment before), and that run failed at once with "output folder
.staging/<study> doesn't exist".
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labkit import io, records, studies
from labkit.paths import project_root, study_path
from labkit.records import RECORD_NAME
from labkit.run.locks import LOCKS

STAGING = ".staging"
LAYOUT_LOCK = ".staging.lock"  # in <figures>/.locks/; a study id never starts with a dot


def locations(out_root: Path, study: str, seed: int | None) -> tuple[Path, Path, Path]:
    """(figures root the kernel sees, its study folder there = the staging folder, final folder).

    The kernel writes to ``<its root>/<study>/`` (labkit.paths.study_dir), so pointing its
    ``LABKIT_FIGURES_DIR`` at a staging root is all a notebook needs to know about staging.
    """
    root = out_root / STAGING if seed is None else out_root / STAGING / f"seed-{seed}"
    final = out_root / study if seed is None else out_root / study / "seeds" / f"seed-{seed}"
    return root, root / study, final


@contextlib.contextmanager
def layout_lock(out_root: Path) -> Iterator[None]:
    """Held (briefly) while a run makes a staging folder or a file in a shared staging folder,
    or removes the shared folders: so :func:`tidy` never removes a parent another run is
    about to create something in (an OS file lock: several processes, often several runs)."""
    from filelock import FileLock  # light, but only runs that write need it

    folder = Path(out_root) / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / LAYOUT_LOCK), thread_local=False):
        yield


def prepare(out_root: Path, study: str, seed: int | None) -> tuple[Path, Path, Path]:
    """A fresh, empty staging folder for one task (a killed run's leftovers removed); returns
    :func:`locations`. The caller holds the study's lock; the layout lock keeps another run's
    :func:`tidy` from removing ``.staging`` between its creation and the study folder's. Once
    the study folder exists its parent is not empty, and no other run removes the study
    folder itself (empty until papermill first saves into it)."""
    root, stage, final = locations(out_root, study, seed)
    with layout_lock(out_root):
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir(parents=True)
    return root, stage, final


def log_path(root: Path, study: str) -> Path:
    return root / f".{study}.log"


def display_path(value: str | os.PathLike, out_root: Path | None = None) -> str:
    """An absolute path as a portable string: ``<figures>/...``, relative to the project root,
    ``$LABKIT_STUDY_PATH/...``, ``~/...``, or the bare name; other strings unchanged."""
    text = os.fspath(value)
    path = Path(text)
    if not path.is_absolute():
        return text
    bases = [(out_root, "<figures>/")] if out_root else []
    bases.append((project_root(studies.CHECKOUT) or studies.CHECKOUT, ""))
    bases += [(folder.resolve(), "$LABKIT_STUDY_PATH/") for folder in study_path()]
    bases.append((Path.home(), "~/"))
    for base, label in bases:
        for candidate in {path, path.resolve()}:
            with contextlib.suppress(ValueError):
                rel = candidate.relative_to(base).as_posix()
                return label + rel if rel != "." else (label.rstrip("/") or ".")
    return path.name


def _portable(value: Any, out_root: Path) -> Any:
    if isinstance(value, str):
        return display_path(value, out_root) if value.startswith(("/", "~")) else value
    if isinstance(value, list):
        return [_portable(v, out_root) for v in value]
    if isinstance(value, dict):
        return {k: _portable(v, out_root) for k, v in value.items()}
    return value


def _prefixes(out_root: Path, stage: Path, final: Path) -> list[tuple[str, str]]:
    """(absolute prefix, portable text) pairs, longest first, for paths inside cell outputs."""
    pairs = {}
    for base, label in [
        (stage, display_path(final, out_root)),
        (out_root, "<figures>"),
        (project_root(studies.CHECKOUT) or studies.CHECKOUT, "<project>"),
        *[(folder, "$LABKIT_STUDY_PATH") for folder in study_path()],
        (Path.home(), "~"),
    ]:
        for variant in {str(base), str(Path(base).resolve())}:
            if len(variant) > 1:
                pairs.setdefault(variant, label)
    from labkit.records import path_placeholders  # mirrors, cache, temp dir: as records say

    for root, label in path_placeholders():
        pairs.setdefault(root, label)
    return sorted(pairs.items(), key=lambda kv: -len(kv[0]))


def _scrub(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for prefix, label in pairs:
            value = value.replace(prefix, label)
        return value
    if isinstance(value, list):
        return [_scrub(v, pairs) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, pairs) for k, v in value.items()}
    return value


def write_portable(executed: Path, dest: Path, out_root: Path, final: Path) -> Path:
    """Write ``executed`` to ``dest`` without absolute paths: papermill's metadata (input and
    output path, cwd, parameters), the injected parameters cell and the cell outputs say
    ``<figures>/...``, paths relative to the project, ``$LABKIT_STUDY_PATH/...`` or ``~/...``.

    ``final`` is the study folder the notebook will end up in (``dest`` may be in staging).
    """
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "cwd"):
        if meta.get(key):
            meta[key] = display_path(meta[key], out_root)
    meta["output_path"] = display_path(final / dest.name, out_root)
    params = meta.get("parameters") or {}
    portable = _portable(params, out_root)
    pairs = _prefixes(out_root, executed.parent, final)
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []):
            for key, value in params.items():
                if value != portable[key]:
                    cell.source = cell.source.replace(repr(value), repr(portable[key]))
                    cell.source = cell.source.replace(json.dumps(value), json.dumps(portable[key]))
        if cell.get("outputs"):
            cell.outputs = [nbformat.from_dict(_scrub(dict(o), pairs)) for o in cell.outputs]
    meta["parameters"] = portable
    io.write_text(dest, nbformat.writes(nb))
    executed.unlink()
    return dest


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False if the
    platform or filesystem cannot (the caller then uses two renames). No library wraps this."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def promote(stage: Path, final: Path, root: Path) -> None:
    """Make the staging folder the study folder (keeping the old ``seeds/``), then drop the old."""
    from labkit.figures import PLOTLY_JS  # plotly: kept off the pre-run checks (< 1 s)

    js, shared = root / PLOTLY_JS, final.parent / PLOTLY_JS  # the HTMLs load ../plotly.min.js
    final.parent.mkdir(parents=True, exist_ok=True)  # first: a seed's final.parent is new
    if js.is_file():
        if not shared.is_file() or shared.stat().st_size != js.stat().st_size:
            os.replace(js, shared)
        else:  # already there (another study promoted first): a leftover keeps .staging from tidy()
            js.unlink(missing_ok=True)
    if (final / "seeds").is_dir() and not (stage / "seeds").exists():
        os.replace(final / "seeds", stage / "seeds")
    if not final.exists():
        os.replace(stage, final)
        return
    if not _exchange(stage, final):
        old = stage.with_name(f"{stage.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(stage, final)
        stage = old
    shutil.rmtree(stage, ignore_errors=True)


def abandon(out_root: Path, study: str, seed: int | None = None) -> Path | None:
    """After a failure or interruption: keep the executed notebook beside the previous outputs
    as ``<study>.failed.ipynb``, remove the staging folder; return the failed notebook's path."""
    out_root = Path(out_root).resolve()
    root, stage, final = locations(out_root, study, seed)
    partial, failed = stage / f".{study}.executing.ipynb", final / f"{study}.failed.ipynb"
    kept = None
    if partial.is_file():
        final.mkdir(parents=True, exist_ok=True)
        try:
            kept = write_portable(partial, failed, out_root, final)
        except Exception:  # a notebook cut off mid-write: keep it as it is
            os.replace(partial, failed)
            kept = failed
    shutil.rmtree(stage, ignore_errors=True)
    log_path(root, study).unlink(missing_ok=True)
    return kept


def tidy(out_root: Path) -> None:
    """Remove the shared staging folders once empty: ``.staging/seed-<n>/``, then ``.staging``.

    Never a study's own staging folder, even an empty one: another run may hold that study's
    lock and have just made it (:func:`prepare`); a study's folder is removed by
    :func:`promote` or :func:`abandon`, under its lock. This run's locks may already be
    released here (a study's lock is let go as soon as its last notebook is done).
    """
    top = Path(out_root) / STAGING
    if not top.is_dir():  # nothing to tidy (and no lock folder made for nothing)
        return
    with layout_lock(out_root):
        if not top.is_dir():  # another run tidied it meanwhile
            return
        seeds = [p for p in top.iterdir() if p.is_dir() and re.fullmatch(r"seed-\d+", p.name)]
        for folder in [*seeds, top]:
            with contextlib.suppress(OSError):  # not empty: another run is using it
                folder.rmdir()


def read_record(folder: Path) -> dict[str, Any]:

    with contextlib.suppress(OSError, ValueError):
        return json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    return {}


def result_path(out_root: Path, study: str, seed: int | None) -> Path:
    """Where a task also leaves its result: a worker that dies after the notebook finished but
    before the client fetched the result would otherwise lose it (Dask keeps it in memory)."""
    root, _, _ = locations(Path(out_root), study, seed)
    return root / f".{study}.result.json"


def write_result(out_root: Path, study: str, seed: int | None, result: dict[str, Any]) -> Path:
    """Leave a task's result at :func:`result_path`. Under the layout lock: after
    :func:`promote` the staging root may be empty, and another run's :func:`tidy` could remove
    it between the atomic write's ``mkdir`` and its temporary file."""
    with layout_lock(out_root):
        return io.write_json(result_path(out_root, study, seed), result)


def pop_result(out_root: Path, study: str, seed: int | None) -> dict[str, Any] | None:
    """The result a task left on disk (then removed), or None."""
    path = result_path(out_root, study, seed)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    finally:
        path.unlink(missing_ok=True)


def last_words(out_root: Path, study: str, seed: int | None) -> tuple[str, Path | None]:
    """For a task whose worker died: the cell it was running and the kernel's last output
    (from the run's log), as text to append to the error; then :func:`abandon` it."""
    root, stage, _ = locations(out_root, study, seed)
    words = ""
    with contextlib.suppress(OSError):
        lines = log_path(root, study).read_text(encoding="utf-8", errors="replace").splitlines()
        words = "\n    ".join(lines[-15:])
    running = running_cell(stage / f".{study}.executing.ipynb")
    text = (
        (f"\n  it was running {running}" if running else "")
        + "\n  last output of the kernel:\n    "
        + (words if words.strip() else "(none)")
    )
    return text, abandon(out_root, study, seed)


def device_text(record: dict[str, Any]) -> str:
    """The run record's device as one short line (:func:`labkit.records.device_line`)."""

    if not record.get("device"):
        return ""
    try:
        return str(records.device_line(record))
    except Exception:  # a record written by another labkit version
        return str(record["device"])


def running_cell(path: Path, last_started: bool = False) -> str:
    """``cell 7 of 20 ('first line')``: the cell papermill marked running in a partial
    notebook; with ``last_started``, else the cell that started last (after a kernel died,
    papermill marks every cell it reached as completed)."""
    import nbformat

    with contextlib.suppress(Exception):
        nb = nbformat.read(path, as_version=4)
        marks = [(cell.metadata.get("papermill", {}), i) for i, cell in enumerate(nb.cells)]
        hits = [i for meta, i in marks if meta.get("status") == "running"]
        if not hits and last_started:
            started = [(meta["start_time"], i) for meta, i in marks if meta.get("start_time")]
            hits = [max(started)[1]] if started else []
        if hits:
            cell = nb.cells[hits[0]]
            first = (cell.source.strip().splitlines() or [""])[0][:80]
            return f"cell {hits[0] + 1} of {len(nb.cells)} ({first!r})"
    return ""
