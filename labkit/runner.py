"""Batch-run study notebooks with papermill: profiles, overrides, parallel jobs, a summary.

Each notebook runs in its own worker process (and its own kernel), writes its outputs under
``figures/<study>/`` and its executed copy to ``figures/<study>/<study>.ipynb`` (written to a
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

from labkit.config import active_profile
from labkit.errors import ParameterError
from labkit.paths import figures_dir, project_root

JSON_TYPES = (str, int, float, bool, type(None), list, dict)


@dataclass
class NotebookResult:
    """What happened to one notebook (one row of the summary table)."""

    notebook: str
    status: str  # "ok" | "failed"
    wall_s: float
    outputs: int = 0
    output_notebook: str = ""
    failed_cell: int | None = None
    error: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def notebooks_dir() -> Path:
    root = project_root()
    if root is None:
        raise ParameterError("not inside a labkit checkout: run from the project folder "
                             "(the one holding notebooks/ and pyproject.toml)")
    return root / "notebooks"


def discover(names: list[str] | None = None) -> list[Path]:
    """Notebooks to run: the given names/paths, or every study notebook (not ``explore_*``)."""
    folder = notebooks_dir()
    if not names:
        return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("explore_"))
    found = []
    for name in names:
        path = Path(name)
        if not path.suffix:
            path = folder / f"{name}.ipynb"
        elif not path.is_file() and (folder / path.name).is_file():
            path = folder / path.name
        if not path.is_file():
            available = ", ".join(p.stem for p in sorted(folder.glob("*.ipynb")))
            raise ParameterError(f"no notebook {name!r} (available: {available})")
        found.append(path.resolve())
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
            timeout: int | None = None) -> NotebookResult:
    """Execute one notebook (in this process's papermill, its own kernel). Never raises."""
    import papermill as pm

    nb = Path(notebook)
    study = nb.stem
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
    return NotebookResult(nb.name, status, round(time.perf_counter() - t0, 1), outputs,
                          str(final if status == "ok" else out_dir / f"{study}.failed.ipynb"),
                          cell, error, parameters)


def run(names: list[str] | None = None, profile: str | None = None,
        overrides: dict[str, Any] | None = None, jobs: int = 1, out_root: Path | None = None,
        timeout: int | None = None) -> list[NotebookResult]:
    """Run notebooks; each in its own worker process when ``jobs > 1`` or several notebooks."""
    from tqdm.auto import tqdm

    notebooks = discover(names)
    profile = active_profile(profile)
    params = {"profile": profile, **(overrides or {})}
    for nb in notebooks:
        check_parameters(nb, params)
    out_root = Path(out_root) if out_root else figures_dir()
    results: list[NotebookResult] = []
    bar = tqdm(total=len(notebooks), desc=f"labkit run ({profile})", unit="notebook")
    with ProcessPoolExecutor(max_workers=max(1, min(jobs, len(notebooks)))) as pool:
        futures = {pool.submit(run_one, str(nb), params, str(out_root), False, timeout): nb
                   for nb in notebooks}
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            bar.set_postfix_str(f"{result.notebook}: {result.status} ({result.wall_s:.0f}s)")
            bar.update()
    bar.close()
    order = {nb.name: i for i, nb in enumerate(notebooks)}
    return sorted(results, key=lambda r: order[r.notebook])


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
