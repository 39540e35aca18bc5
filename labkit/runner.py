"""Batch-run study notebooks with papermill: profiles, overrides, parallel jobs, a summary.

Which notebooks exist comes from the study registry (:mod:`labkit.studies`). Each notebook runs
in its own worker process (and its own kernel), writes its outputs under ``figures/<study>/`` and its executed copy to ``figures/<study>/<study>.ipynb`` (written to a
temporary name first, so a crash never leaves a half-written "final" notebook). Parameters
must be JSON types, and unknown parameter names are an error (papermill only logs them).
"""
from __future__ import annotations

import json
import os
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import studies
from labkit.config import active_profile
from labkit.errors import ParameterError
from labkit.paths import figures_dir
from labkit.studies import Study

JSON_TYPES = (str, int, float, bool, type(None), list, dict)


@dataclass
class NotebookResult:
    """What happened to one notebook (one row of the summary table)."""

    notebook: str
    study: str
    status: str  # "ok" | "failed"
    wall_s: float
    outputs: int = 0
    output_notebook: str = ""
    failed_cell: int | None = None
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def notebooks_dir() -> Path:
    """``notebooks/`` of the checkout this labkit belongs to (where built-in studies live)."""
    return studies.CHECKOUT / "notebooks"


def _ad_hoc(path: Path) -> Study:
    """An unregistered notebook named by path: its stem is the study id and output folder."""
    return Study(path.stem, path.stem, None, path, source="path")


def _resolve(name: str) -> Study:
    path = Path(name)
    if path.suffix != ".ipynb":
        return studies.get(name)
    if path.is_file():
        return studies.for_notebook(path) or _ad_hoc(path.resolve())
    registered = [s for s in studies.all_studies() if s.notebook.name == path.name]
    if len(registered) == 1:
        return registered[0]
    raise ParameterError(f"no notebook {name!r}: not a file, and not a registered study's "
                         f"notebook (registered studies: {', '.join(studies.ids())})")


def discover(names: list[str] | None = None) -> list[Study]:
    """Studies to run: the named ids or notebook paths, or every registered study.

    Names resolve through :mod:`labkit.studies` (built-in entries, ``register``-ed ones and
    ``study.json`` folders in ``$LABKIT_STUDY_PATH``); a path to an ``.ipynb`` also works.
    """
    found = [_resolve(name) for name in names] if names else studies.all_studies()
    for entry in found:
        if not entry.notebook.is_file():
            raise ParameterError(f"study {entry.id!r}: its notebook {entry.notebook} is missing "
                                 "(built-in studies run from a labkit checkout, not a wheel)")
    return found


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; values are JSON if they parse, else plain strings.

    >>> parse_assignments(["epochs=3", "models=[\\"a\\", \\"b\\"]", "name=minilm"])
    {'epochs': 3, 'models': ['a', 'b'], 'name': 'minilm'}
    """
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParameterError(f"parameter {pair!r} must look like key=value")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key.isidentifier():
            raise ParameterError(f"parameter name {key!r} is not a valid Python identifier")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def check_parameters(notebook: Path, parameters: dict[str, Any]) -> None:
    """Unknown names and non-JSON values are errors (papermill would only log/stringify)."""
    import papermill as pm

    declared = pm.inspect_notebook(str(notebook))
    if not declared:
        raise ParameterError(f"{notebook.name} has no cell tagged 'parameters'")
    for key, value in parameters.items():
        if key not in declared:
            raise ParameterError(f"{notebook.name} has no parameter {key!r} "
                                 f"(its parameters: {', '.join(declared)})")
        if not isinstance(value, JSON_TYPES):
            raise ParameterError(f"parameter {key!r} must be a JSON type, got {type(value).__name__}")


def _failing_cell(exc: Exception) -> tuple[int | None, str]:
    count = getattr(exc, "exec_count", None)
    name, value = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if name:
        return count, f"{name}: {value}"
    return None, f"{type(exc).__name__}: {exc}"


def run_one(notebook: str, parameters: dict[str, Any], out_root: str, progress: bool = False,
            timeout: int | None = None, study: str | None = None) -> NotebookResult:
    """Execute one notebook (in this process's papermill, its own kernel). Never raises.

    Outputs go to ``<out_root>/<study>/`` (default study: the notebook's stem); the kernel
    starts in the notebook's own folder, so an external study's relative paths work.
    """
    import papermill as pm

    nb = Path(notebook)
    study = study or nb.stem
    out_dir = Path(out_root) / study
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{study}.ipynb"
    partial = out_dir / f".{study}.executing.ipynb"
    t0 = time.perf_counter()
    os.environ["LABKIT_FIGURES_DIR"] = str(Path(out_root).resolve())
    os.environ["LABKIT_BATCH"] = "1"
    try:
        pm.execute_notebook(str(nb), str(partial), parameters=parameters, kernel_name="python3",
                            progress_bar=progress, cwd=str(nb.parent), execution_timeout=timeout)
        os.replace(partial, final)
        status, cell, error = "ok", None, ""
    except Exception as exc:  # a failing notebook is a result, not a crash of the runner
        cell, error = _failing_cell(exc)
        status = "failed"
        if partial.exists():
            os.replace(partial, out_dir / f"{study}.failed.ipynb")
        if not getattr(exc, "ename", None):
            error += "\n" + traceback.format_exc(limit=3)
    outputs = sum(1 for p in out_dir.iterdir() if p.suffix in (".png", ".html", ".csv", ".md"))
    return NotebookResult(nb.name, study, status, round(time.perf_counter() - t0, 1), outputs,
                          str(final if status == "ok" else out_dir / f"{study}.failed.ipynb"),
                          cell, error, parameters)


def run(names: list[str] | None = None, profile: str | None = None,
        overrides: dict[str, Any] | None = None, jobs: int = 1, out_root: Path | None = None,
        timeout: int | None = None) -> list[NotebookResult]:
    """Run studies' notebooks; each in its own worker process (and kernel)."""
    from tqdm.auto import tqdm

    entries = discover(names)
    profile = active_profile(profile)
    params = {"profile": profile, **(overrides or {})}
    for entry in entries:
        check_parameters(entry.notebook, params)
    out_root = Path(out_root) if out_root else figures_dir()
    results: list[NotebookResult] = []
    bar = tqdm(total=len(entries), desc=f"labkit run ({profile})", unit="notebook")
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(entries)))) as pool:
        futures = {pool.submit(run_one, str(e.notebook), params, str(out_root), False, timeout,
                               e.id): e for e in entries}
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            bar.set_postfix_str(f"{result.notebook}: {result.status} ({result.wall_s:.0f}s)")
            bar.update()
    bar.close()
    order = {e.id: i for i, e in enumerate(entries)}
    return sorted(results, key=lambda r: order[r.study])


def summary_table(results: list[NotebookResult]) -> str:
    """The end-of-run table: notebook, status, wall time, outputs; then each failure."""
    from tabulate import tabulate

    rows = [(r.notebook, r.status, f"{r.wall_s:.1f}", r.outputs, r.output_notebook)
            for r in results]
    text = tabulate(rows, headers=["notebook", "status", "wall s", "outputs", "executed notebook"])
    for r in results:
        if r.status != "ok":
            where = (f"cell In [{r.failed_cell}] of the executed notebook" if r.failed_cell is not None
                     else "unknown cell")
            text += f"\n\nFAILED {r.notebook} at {where}:\n  {r.error.strip()}"
    return text
