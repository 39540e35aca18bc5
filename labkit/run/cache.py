"""The run cache: skip a notebook whose inputs are unchanged and whose outputs are complete.

Like DVC's or ploomber's stage cache, keyed by content, not by time stamps. The key of one
notebook run hashes

- the notebook's cells (sources and cell types; outputs and metadata excluded),
- its resolved parameters (profile, ``-p`` values after the schema's normalisation, the seed),
- the source of every labkit module it can execute: the modules its cells import, their
  imports, transitively (function-local imports included), plus its study package in full,
- the content of every file or folder a parameter names (a user's pairs CSV, transcripts),
- the versions of Python, torch and transformers, and the environment settings that change
  what a notebook computes (device, country, which API keys are *present*, never their values).

The data a notebook reads are known only after it ran: the run record lists each dataset's
file hashes, so a cached run is also checked against the datasets as they are now. A run is
reused only if its record carries the same key, it finished ``ok`` (a partial run, where a
provider failed, is retried), and every file it wrote is still there, byte for byte (the key
keeps their sha256).
Hand-written because the units here are papermill runs of notebooks whose dependencies are
Python imports; DVC and ploomber would need every dependency declared by hand.
"""

from __future__ import annotations

import ast
import json
import os
import platform
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from labkit import io
from labkit.errors import LabkitError
from labkit.run.plan import Task, _cells, _source

LABKIT = Path(__file__).resolve().parents[1]
KEY_VERSION = 1
KEY_NAME = "run_key"  # the key's entry in the run record
RECORD_NAME = "run_record.json"
#: environment variables whose value changes what a notebook computes
ENV_VALUES = ("LABKIT_DEVICE", "LABKIT_COUNTRY", "OPENAI_BASE_URL", "HF_HUB_OFFLINE")
#: environment variables whose presence (never value) changes it: an API provider runs or not
ENV_PRESENT = ("OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")
VERSIONED = ("torch", "transformers")


# ------------------------------------------------------------------------ code dependencies
def _module_file(name: str) -> Path | None:
    """The file of a labkit module name (package -> its __init__), or None."""
    parts = name.split(".")
    if parts[0] != "labkit":
        return None
    base = LABKIT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """labkit module names imported anywhere in ``tree`` (``from x import y`` gives both x and
    x.y: y may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {n for n in found if n == "labkit" or n.startswith("labkit.")}


@cache
def _module_imports(path: Path) -> frozenset[str]:
    rel = path.relative_to(LABKIT.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    module = ".".join(parts[:-1] if is_package else parts)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return frozenset()
    return frozenset(_imports(tree, module, is_package))


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def code_files(notebook: Path, package: str | None) -> list[Path]:
    """Every labkit source file a run of ``notebook`` can execute (see the module docstring)."""
    roots: set[str] = set()
    for cell in _cells(notebook):
        if cell.get("cell_type") != "code":
            continue
        try:
            roots |= _imports(ast.parse(_source(cell)), "__notebook__", False)
        except SyntaxError:  # IPython magics: fall back to the import lines
            for line in _source(cell).splitlines():
                if line.lstrip().startswith(("import labkit", "from labkit")):
                    try:
                        roots |= _imports(ast.parse(line.strip()), "__notebook__", False)
                    except SyntaxError:
                        pass
    files: set[Path] = set()
    if package and package.startswith("labkit."):
        folder = LABKIT.joinpath(*package.split(".")[1:])
        files |= set(folder.rglob("*.py")) if folder.is_dir() else set()
        roots.add(package)
    todo = [n for r in roots for n in _with_parents(r)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        files.add(path)
        todo += [n for imported in _module_imports(path) for n in _with_parents(imported)]
    return sorted(files)


# ------------------------------------------------------------------------------- the key
def _notebook_digest(notebook: Path) -> str:
    cells = [[c.get("cell_type", ""), _source(c)] for c in _cells(notebook)]
    return io.sha256_text(json.dumps(cells))


def _path_digest(path: Path) -> str:
    if path.is_file():
        return io.sha256_file(path)
    listing = [f"{p.relative_to(path).as_posix()} {io.sha256_file(p)}" for p in sorted(path.rglob("*")) if p.is_file()]
    return io.sha256_text(*listing)


def _file_parameters(params: dict[str, Any]) -> dict[str, str]:
    """sha256 of each parameter value that names an existing file or folder."""
    out = {}
    for name, value in sorted(params.items()):
        values = value if isinstance(value, list) else [value]
        for i, item in enumerate(values):
            if isinstance(item, str) and ("/" in item or os.sep in item) and Path(item).exists():
                out[name if len(values) == 1 else f"{name}[{i}]"] = _path_digest(Path(item))
    return out


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def key_for(task: Task) -> dict[str, Any]:
    """``{"digest": ..., "parts": {...}}``: the run key of one task (module docstring)."""
    files = code_files(task.entry.notebook, task.entry.package)
    code = io.sha256_text(*[f"{p.relative_to(LABKIT.parent).as_posix()} {io.sha256_file(p)}" for p in files])
    parts = {
        "key_version": KEY_VERSION,
        "notebook": _notebook_digest(task.entry.notebook),
        "parameters": json.loads(json.dumps(task.run_params, sort_keys=True, default=str)),
        "code": code,
        "code_files": len(files),
        "files": _file_parameters(task.run_params),
        "versions": {
            "python": platform.python_version(),
            **{name: _version(name) for name in VERSIONED},
        },
        "environment": {
            **{k: os.environ.get(k) for k in ENV_VALUES},
            **{k: k in os.environ for k in ENV_PRESENT},
        },
    }
    return {"digest": io.sha256_text(json.dumps(parts, sort_keys=True)), "parts": parts}


# -------------------------------------------------------------------------- reuse check
@dataclass(frozen=True)
class Verdict:
    """Whether a previous run can stand in for this one, and if not, why (one line)."""

    reusable: bool
    why: str


def _data_unchanged(record: dict[str, Any]) -> str | None:
    """None when every dataset the record read still has the same file hashes, else why not."""
    from labkit.data import registry  # pandas and the parsers: only once a cache hit is likely

    for key, entry in (record.get("data") or {}).items():
        if entry.get("origin") not in ("mirror", "cache", "download"):
            continue  # a user path is a parameter (hashed in the key); hub data: not checked
        try:
            now = registry.resolve(key, download=False).sha256
        except LabkitError as exc:
            return f"dataset {key} changed or is gone ({str(exc).splitlines()[0][:80]})"
        if now != entry.get("sha256"):
            return f"dataset {key} changed"
    return None


def _written(folder: Path) -> dict[str, str]:
    """sha256 of every file a run left in its folder (not the record itself, not seeds/)."""
    return {
        p.relative_to(folder).as_posix(): io.sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != RECORD_NAME and p.relative_to(folder).parts[0] != "seeds"
    }


def _outputs_changed(record: dict[str, Any], folder: Path) -> str | None:
    """None when every file the run wrote is still there, byte for byte, else which is not."""
    for rel, digest in ((record.get(KEY_NAME) or {}).get("outputs") or {}).items():
        path = folder / rel
        if not path.is_file():
            return f"output {rel} is missing"
        if io.sha256_file(path) != digest:
            return f"output {rel} was changed"
    return None


def check(task: Task, folder: Path) -> Verdict:
    """Can the run already in ``folder`` (``<figures>/<study>`` or a seed's folder) be reused?"""
    try:
        record = json.loads((folder / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Verdict(False, "no previous run")
    old = (record.get(KEY_NAME) or {}).get("digest")
    if old != task.cache_key.get("digest"):
        return Verdict(False, "inputs changed" if old else "previous run has no key")
    if any(str(w).startswith("failed:") for w in record.get("warnings", [])):
        return Verdict(False, "previous run was partial")
    if not (folder / f"{task.entry.id}.ipynb").is_file():
        return Verdict(False, "executed notebook is missing")
    why = _outputs_changed(record, folder) or _data_unchanged(record)
    return Verdict(why is None, why or "unchanged")


def stamp(folder: Path, key: dict[str, Any]) -> None:
    """Write the run key, and the hash of every file the run wrote, into a finished run's
    record (in its staging folder, before it is promoted)."""
    path = folder / RECORD_NAME
    record = json.loads(path.read_text(encoding="utf-8"))
    record[KEY_NAME] = {**key, "outputs": _written(folder)}
    io.write_json(path, record)
