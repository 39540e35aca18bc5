"""What a ``labkit run`` will do, decided before anything heavy is imported or started.

Everything a person can get wrong is checked here, in well under a second: study names,
``-p`` values (against the notebook's parameters cell and the study's typed schema), seeds.
Why this module imports neither papermill nor Dask nor torch: papermill alone costs seconds
of imports (nbformat's validator), and a typo in ``-p bootstrap=abc`` should be answered at
once, not after a cluster has started.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import studies
from labkit.config import active_profile
from labkit.errors import ParameterError
from labkit.params import check as check_schema
from labkit.studies import Study

JSON_TYPES = (str, int, float, bool, type(None), list, dict)


@dataclass
class Task:
    """One notebook run: a study, its checked parameters and (with ``--seeds``) its seed."""

    entry: Study
    params: dict[str, Any]
    seed: int | None = None
    cache_key: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> tuple[str, int | None]:
        return self.entry.id, self.seed

    @property
    def label(self) -> str:
        return self.entry.id + ("" if self.seed is None else f" seed {self.seed}")

    @property
    def run_params(self) -> dict[str, Any]:
        """The parameters papermill injects (the seed included)."""
        return dict(self.params) if self.seed is None else {**self.params, "seed": self.seed}


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
    raise ParameterError(
        f"no notebook {name!r}: not a file, and not a registered study's "
        f"notebook (registered studies: {', '.join(studies.ids())})"
    )


def discover(names: list[str] | None = None) -> list[Study]:
    """Studies to run: the named ids or notebook paths, or every registered study.

    Names resolve through :mod:`labkit.studies` (built-in entries, ``register``-ed ones and
    ``study.json`` folders in ``$LABKIT_STUDY_PATH``); a path to an ``.ipynb`` also works.
    """
    found = [_resolve(name) for name in names] if names else studies.all_studies()
    for entry in found:
        if re.fullmatch(r"seed-\d+", entry.id) or entry.id.startswith("."):
            raise ParameterError(
                f"study {entry.id!r}: that name is reserved for the run's own folders under the figures "
                "root (.staging/seed-<n>/ stages seed n; dot-folders hold staging and locks); rename its notebook"
            )
        if not entry.notebook.is_file():
            raise ParameterError(
                f"study {entry.id!r}: its notebook {entry.notebook} is missing "
                "(built-in studies run from a labkit checkout, not a wheel)"
            )
    return found


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["k=v", ...]`` -> dict; values are JSON if they parse, else plain strings; a value
    that looks like JSON (``[``, ``{``, ``"``, a number) but does not parse is an error.

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
        out[key] = parse_value(key, raw)
    return out


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> ``[0, 1, 2]``; None/empty -> None (one run with the notebook's own seed).

    >>> parse_seeds("0, 1,2")
    [0, 1, 2]
    """
    if text is None or not str(text).strip():
        return None
    seeds: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part.isdigit():
            raise ParameterError(f"--seeds: expected comma-separated integers >= 0 such as 0,1,2, got {text!r}")
        if int(part) in seeds:
            raise ParameterError(f"--seeds: seed {part} is listed twice in {text!r}")
        seeds.append(int(part))
    return seeds


def _cells(notebook: Path) -> list[dict[str, Any]]:
    try:
        return json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ParameterError(f"{notebook}: not a readable notebook ({type(exc).__name__}: {exc})") from None


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def notebook_parameters(notebook: Path) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (what papermill would
    inspect, read with :mod:`ast` instead: no papermill import)."""
    for cell in _cells(notebook):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            try:
                tree = ast.parse(_source(cell))
            except SyntaxError as exc:
                raise ParameterError(
                    f"{notebook.name}: its parameters cell does not parse (line {exc.lineno}: {exc.msg})"
                ) from None
            names: list[str] = []
            for node in tree.body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign)
                    else []
                )
                names += [t.id for t in targets if isinstance(t, ast.Name) and t.id not in names]
            return names
    raise ParameterError(f"{notebook.name} has no cell tagged 'parameters'")


def check_parameters(notebook: Path, parameters: dict[str, Any]) -> None:
    """Unknown names and non-JSON values are errors (papermill would only log/stringify)."""
    declared = notebook_parameters(notebook)
    for key, value in parameters.items():
        if key not in declared:
            raise ParameterError(f"{notebook.name} has no parameter {key!r} (its parameters: {', '.join(declared)})")
        if not isinstance(value, JSON_TYPES):
            raise ParameterError(f"parameter {key!r} must be a JSON type, got {type(value).__name__}")


def plan(
    names: list[str] | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
) -> list[Task]:
    """The tasks of one run, every name and value checked (no kernel, no cluster yet)."""
    entries = discover(names)
    profile = active_profile(profile)
    params = {"profile": profile, **(overrides or {})}
    if seeds and "seed" in params:
        raise ParameterError("give either --seeds or -p seed=..., not both")
    tasks: list[Task] = []
    for entry in entries:  # every value checked against the study's schema before any kernel
        check_parameters(entry.notebook, {**params, "seed": 0} if seeds else params)
        checked = check_schema(entry.id, params)
        tasks += [Task(entry, checked, seed) for seed in (seeds or [None])]
    return tasks


_NUMBERISH = re.compile(r"^[+-]?[0-9.][0-9._,eE+-]*$")
_PYTHON_WORDS = {"None": "null", "True": "true", "False": "false"}


def parse_value(key: str, raw: str) -> Any:
    """A ``-p key=value`` value: JSON when it parses; a plain string when it does not look like
    JSON; a :class:`ParameterError` naming ``key`` when it looks like JSON but is broken.

    >>> parse_value("epochs", "3"), parse_value("name", "minilm"), parse_value("m", '["a"]')
    (3, 'minilm', ['a'])
    >>> parse_value("sweep_sizes", "[not json")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    labkit.errors.ParameterError: sweep_sizes: value '[not json' looks like JSON but does not ...
    """
    text = raw.strip()

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        return json.loads(text, parse_constant=no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        if text in _PYTHON_WORDS:
            raise ParameterError(
                f"{key}: value {raw!r} is Python, not JSON; write {key}={_PYTHON_WORDS[text]}"
            ) from None
        constant = not isinstance(exc, json.JSONDecodeError)  # NaN / Infinity
        if text[:1] in '[{"' or _NUMBERISH.match(text) or constant:
            why = str(exc)
            raise ParameterError(f"{key}: value {raw!r} looks like JSON but does not parse: {why}") from None
        return raw
