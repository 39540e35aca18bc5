"""The one registry of studies: what each study is called, and where its parts live.

The runner, CLI, gallery, explorers, benchmarks and docs read ids from here: :func:`all_studies`
(built-in, then :func:`register`-ed, then ``$LABKIT_STUDY_PATH`` studies) and :func:`get`.

An external study is a folder holding a ``study.json`` (or a folder of such folders) listed in
``LABKIT_STUDY_PATH`` (``os.pathsep``-separated)::

    {"id": "throwaway", "title": "A tiny study", "notebook": "throwaway.ipynb",
     "figures": [], "tables": ["numbers"]}

``notebook`` is relative to the folder and its stem must equal ``id`` (the id is also the
output folder ``figures/<id>/``). Optional: ``figures``, ``tables`` (default: read from the
notebook's ``labkit.notebook.end(...)`` call), ``package``, ``paper``, ``explorer`` (stem of an
exploration notebook beside the study notebook) and ``benchmark`` (script path, relative).
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import ParameterError
from labkit.paths import study_path

#: the checkout this labkit was imported from: built-in notebooks and benchmarks live there
CHECKOUT = Path(__file__).resolve().parents[1]
STUDY_PATH_ENV = "LABKIT_STUDY_PATH"
STUDY_FILE = "study.json"
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Study:
    """One study: its id (= notebook stem = ``figures/<id>/``) and where its parts live.

    ``figures`` and ``tables`` are the outputs the notebook's ``labkit.notebook.end`` call
    always promises; ``optional_tables`` are the ones it adds when a data set is available.
    ``source`` says where the entry came from: "built-in", "registered" or a study.json path.
    """

    id: str
    title: str
    package: str | None
    notebook: Path
    explorer: str | None = None
    benchmark: Path | None = None
    figures: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    optional_tables: tuple[str, ...] = ()
    paper: str | None = None
    source: str = field(default="registered", compare=False)

    @property
    def explorer_notebook(self) -> Path | None:
        """The exploration notebook (``explore_*.ipynb``) beside the study notebook, if any."""
        return self.notebook.parent / f"{self.explorer}.ipynb" if self.explorer else None

    @property
    def explorer_module(self) -> str | None:
        """``labkit.explore.<name>`` for ``explore_<name>`` (built-in explorers only)."""
        if not self.explorer or self.source != "built-in":
            return None
        return "labkit.explore." + self.explorer.removeprefix("explore_")


def _literal_strings(node: ast.AST | None, assigned: dict[str, ast.AST]) -> tuple[str, ...]:
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    try:
        value = ast.literal_eval(node) if node is not None else ()
    except ValueError:
        return ()
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def promised_outputs(notebook: Path) -> dict[str, tuple[str, ...]]:
    """Figures and tables promised by a notebook's ``notebook.end(...)`` call.

    Reads the code cells without running them: a list literal in the call, or a name bound
    to one earlier (``tables = [...]``); ``tables.append("x")`` adds ``x`` to the optional
    tables. Returns ``{"figures": ..., "tables": ..., "optional_tables": ...}``.
    """
    try:  # plain JSON, not nbformat: the registry is built on every `labkit` command
        cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ParameterError(f"cannot read notebook {notebook}: {err}") from None
    assigned: dict[str, ast.AST] = {}
    appended: dict[str, list[str]] = {}
    found = None
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        text = cell.get("source", "")
        text = "".join(text) if isinstance(text, list) else str(text)
        source = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("%", "!")))
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                assigned[node.targets[0].id] = node.value
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                if (
                    node.func.attr == "append"
                    and isinstance(owner, ast.Name)
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    appended.setdefault(owner.id, []).append(node.args[0].value)
                elif node.func.attr == "end" and ast.unparse(owner).endswith("notebook"):
                    found = node
    if found is None:
        raise ParameterError(f"{notebook} has no labkit.notebook.end(...) call")
    kwargs = {k.arg: k.value for k in found.keywords}
    tables_node = kwargs.get("tables")
    optional = appended.get(tables_node.id, []) if isinstance(tables_node, ast.Name) else []
    return {
        "figures": _literal_strings(kwargs.get("figures"), assigned),
        "tables": _literal_strings(tables_node, assigned),
        "optional_tables": tuple(optional),
    }


def _builtin(
    id: str, title: str, package: str, explorer: str | None, benchmark: str | None, paper: str | None
) -> Study:
    """A shipped study. Its figures and tables are read from its notebook's
    ``notebook.end(...)`` call (:func:`promised_outputs`), so the names are written once, in
    the notebook beside the ``save_*`` calls that ``end`` checks them against, not again here."""
    notebook = CHECKOUT / "notebooks" / f"{id}.ipynb"
    promised = promised_outputs(notebook) if notebook.is_file() else {}  # an install without notebooks
    return Study(
        id,
        title,
        package,
        notebook,
        explorer,
        CHECKOUT / "benchmarks" / benchmark if benchmark else None,
        promised.get("figures", ()),
        promised.get("tables", ()),
        promised.get("optional_tables", ()),
        paper,
        "built-in",
    )


#: the studies shipped with labkit, in the order the gallery and ``labkit run`` use
BUILTIN: tuple[Study, ...] = (
    _builtin("data_overview", "What the datasets hold", "labkit.overview", None, None, None),
    _builtin(
        "embeddings_medical",
        "Medical embeddings, Siamese networks, carbon per epoch",
        "labkit.embeddings",
        "explore_embeddings",
        "embeddings_throughput.py",
        "Bingi & Yin 2023, arXiv 2401.00582",
    ),
    _builtin(
        "anchor_attention",
        "Anchor-based attention (AnSAN) and anchor-cache inference",
        "labkit.anchor",
        "explore_anchor",
        "anchor_inference.py",
        "Pang et al. 2024 (AnLLM), arXiv 2402.07616",
    ),
    _builtin(
        "meeting_summarization",
        "Compact fine-tuned vs zero-shot large summarizers",
        "labkit.summarize",
        "explore_summaries",
        "summarize_latency.py",
        "Fu et al. 2024 (Tiny Titans), arXiv 2402.00841",
    ),
    _builtin(
        "scaling_laws",
        "Scaling-law fits and unique-sequence bounds",
        "labkit.scaling",
        "explore_scaling",
        "scaling_fit.py",
        "Kausik 2024, arXiv 2402.14746",
    ),
)

_registered: dict[str, Study] = {}


def register(entry: Study) -> Study:
    """Add a study for this process (a plugin or a test); an id already taken is an error."""
    if not isinstance(entry, Study):
        raise ParameterError(f"register() takes a labkit.studies.Study, got {type(entry).__name__}")
    taken = {s.id: s for s in (*BUILTIN, *_registered.values())}
    if entry.id in taken and taken[entry.id] != entry:
        raise ParameterError(
            f"study id {entry.id!r} is already registered ({taken[entry.id].source}: {taken[entry.id].notebook})"
        )
    _registered[entry.id] = entry
    return entry


def unregister(study_id: str) -> None:
    """Remove a study added with :func:`register` (built-in studies stay)."""
    _registered.pop(study_id, None)


def all_studies() -> list[Study]:
    """Built-in studies, then registered ones, then those under ``$LABKIT_STUDY_PATH``."""
    studies = [*BUILTIN, *(s for s in _registered.values() if s not in BUILTIN)]
    seen = {s.id: s for s in studies}
    for entry in external_studies():
        if entry.id in seen:
            raise ParameterError(
                f"{entry.source}: field 'id': {entry.id!r} is already the id of "
                f"the {seen[entry.id].source} study at {seen[entry.id].notebook}"
            )
        seen[entry.id] = entry
        studies.append(entry)
    return studies


def ids() -> list[str]:
    return [s.id for s in all_studies()]


def get(study_id: str) -> Study:
    """The registered study ``study_id``; an unknown id says which ids are close and all ids."""
    studies = all_studies()
    for entry in studies:
        if entry.id == study_id:
            return entry
    known = [s.id for s in studies]
    close = difflib.get_close_matches(str(study_id), known, n=3, cutoff=0.5)
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    raise ParameterError(
        f"unknown study {study_id!r}{hint}; registered studies: "
        f"{', '.join(known)} (add one with a study.json in ${STUDY_PATH_ENV})"
    )


def for_notebook(path: Path) -> Study | None:
    """The registered study whose notebook is ``path``, or None."""
    path = Path(path).resolve()
    return next((s for s in all_studies() if s.notebook.resolve() == path), None)


def for_benchmark(script: str | Path) -> Study:
    """The study a benchmark script belongs to (its entry names the script)."""
    script = Path(script).resolve()
    for entry in all_studies():
        if entry.benchmark is not None and entry.benchmark.resolve() == script:
            return entry
    raise ParameterError(
        f"no registered study names {script} as its benchmark: add benchmark=... to its entry in labkit/studies.py"
    )


def for_explorer(module: str) -> Study:
    """The study an explorer module (``labkit.explore.<name>``) explores."""
    for entry in BUILTIN:
        if entry.explorer_module == module:
            return entry
    raise ParameterError(
        f"no built-in study names the explorer {module!r}: set explorer= in its entry in labkit/studies.py"
    )


def explorers() -> dict[str, str]:
    """Exploration notebook suffix -> study id (``{"embeddings": "embeddings_medical", ...}``)."""
    return {s.explorer.removeprefix("explore_"): s.id for s in BUILTIN if s.explorer}


def display_path(path: Path | None) -> str:
    """A path relative to the checkout when it lies inside it (for tables and docs)."""
    if path is None:
        return "—"
    try:
        return str(Path(path).resolve().relative_to(CHECKOUT))
    except ValueError:
        return str(path)


def markdown_table() -> str:
    """The studies as a Markdown table (the one in docs/CONVENTIONS.md is this, pasted)."""
    lines = [
        "| study id (= notebook stem = `figures/<id>/`) | package | notebook | explorer | benchmark |",
        "|---|---|---|---|---|",
    ]
    for s in BUILTIN:
        explorer = f"`{display_path(s.explorer_notebook)}`" if s.explorer else "—"
        bench = f"`{display_path(s.benchmark)}`" if s.benchmark else "—"
        lines.append(f"| `{s.id}` | `{s.package}` | `{display_path(s.notebook)}` | {explorer} | {bench} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------- promised outputs
# ------------------------------------------------------------------------ external studies
_FIELDS = {"id", "title", "notebook", "figures", "tables", "package", "paper", "explorer", "benchmark"}


def _names(data: dict[str, Any], key: str, where: Path) -> tuple[str, ...] | None:
    if key not in data:
        return None
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ParameterError(f"{where}: field {key!r} must be a list of output names (strings), got {value!r}")
    return tuple(value)


def _text(data: dict[str, Any], key: str, where: Path, required: bool) -> str | None:
    if key not in data:
        if required:
            raise ParameterError(f"{where}: missing field {key!r} (needs id, title, notebook)")
        return None
    if not isinstance(data[key], str) or not data[key].strip():
        raise ParameterError(f"{where}: field {key!r} must be a non-empty string, got {data[key]!r}")
    return data[key]


def load_study_file(path: Path) -> Study:
    """Read and validate one ``study.json``; every error names the file and the field."""
    path = Path(path).resolve()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ParameterError(f"cannot read {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ParameterError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}") from None
    if not isinstance(data, dict):
        raise ParameterError(f"{path} must hold a JSON object with id, title and notebook")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ParameterError(f"{path}: unknown field {unknown[0]!r} (allowed: {', '.join(sorted(_FIELDS))})")
    study_id = _text(data, "id", path, True)
    if not _ID.match(study_id):
        raise ParameterError(
            f"{path}: field 'id' {study_id!r} must start with a letter and hold "
            "only letters, digits, '_' and '-' (it names figures/<id>/)"
        )
    title = _text(data, "title", path, True)
    notebook = path.parent / _text(data, "notebook", path, True)
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        raise ParameterError(
            f"{path}: field 'notebook' must name an .ipynb file relative to "
            f"{path.parent}; {notebook} does not exist or is not a notebook"
        )
    if notebook.stem != study_id:
        raise ParameterError(
            f"{path}: field 'notebook' {notebook.name!r} must be named after "
            f"the id ({study_id}.ipynb), since outputs go to figures/{study_id}/"
        )
    figures, tables = _names(data, "figures", path), _names(data, "tables", path)
    if figures is None or tables is None:
        promised = promised_outputs(notebook)
        figures = promised["figures"] if figures is None else figures
        tables = promised["tables"] if tables is None else tables
    explorer = _text(data, "explorer", path, False)
    if explorer and not (notebook.parent / f"{explorer}.ipynb").is_file():
        raise ParameterError(f"{path}: field 'explorer' names {explorer}.ipynb, which is not in {notebook.parent}")
    benchmark = _text(data, "benchmark", path, False)
    bench_path = path.parent / benchmark if benchmark else None
    if bench_path is not None and not bench_path.is_file():
        raise ParameterError(f"{path}: field 'benchmark': {bench_path} does not exist")
    return Study(
        study_id,
        title,
        _text(data, "package", path, False),
        notebook,
        explorer,
        bench_path,
        figures,
        tables,
        (),
        _text(data, "paper", path, False),
        str(path),
    )


def study_files() -> list[Path]:
    """The ``study.json`` files under the folders of ``$LABKIT_STUDY_PATH``, in path order."""
    found = []
    for folder in study_path():
        if not folder.is_dir():
            raise ParameterError(f"{STUDY_PATH_ENV} lists {str(folder)!r}, which is not a folder")
        if (folder / STUDY_FILE).is_file():
            found.append(folder / STUDY_FILE)
        else:
            found += sorted(folder.glob(f"*/{STUDY_FILE}"))
    return found


def external_studies() -> list[Study]:
    """Studies described by ``study.json`` files in ``$LABKIT_STUDY_PATH`` (read every call)."""
    return [load_study_file(path) for path in study_files()]
