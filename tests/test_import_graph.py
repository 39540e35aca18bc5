"""labkit's import graph: layers point down only, no circles, few function-local imports.

The layers, lowest first (README, "Architecture"):

0. **foundation** -- errors, io, paths, stats, device, timing, studies (the registry: names and
   files only), params, config: no torch, no pandas at import, usable from anywhere;
1. **infrastructure** -- text, data, models, modelcache, training, carbon, lm, records,
   figcheck, histograms, png, figures, notebook, cluster, embedders: what studies are built from;
2. **studies** -- embeddings, anchor, summarize, scaling, overview: each imports layers 0-1 and
   never another study;
3. **tools** -- explore (reads a study's outputs, may use its package) and run (runs notebooks,
   knows studies only through the registry).

A function-local ``import labkit...`` hides an edge from a reader (and hid two circles before);
it is allowed only with a comment on the same line saying why (an optional heavy dependency,
typically torch or transformers, that a light caller must not pay for).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABKIT = ROOT / "labkit"

LAYERS = {
    0: {
        "errors",
        "io",
        "paths",
        "stats",
        "device",
        "timing",
        "studies",
        "params",
        "config",
        "__init__",
    },
    1: {
        "text",
        "data",
        "models",
        "modelcache",
        "training",
        "carbon",
        "lm",
        "records",
        "figcheck",
        "histograms",
        "png",
        "figures",
        "notebook",
        "cluster",
        "embedders",
    },
    2: {"embeddings", "anchor", "summarize", "scaling", "overview"},
    3: {"explore", "run"},
}
STUDIES = LAYERS[2]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The layer unit of a module: ``labkit.anchor.cache`` -> ``anchor``, ``labkit`` itself ->
    ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    unit = _unit(module)
    found = [k for k, names in LAYERS.items() if unit in names]
    assert found, f"{module}: not in any layer; add {unit!r} to LAYERS and to the README"
    return found[0]


def edges() -> tuple[dict[str, set[str]], list[str]]:
    """module -> labkit modules it imports; and the function-local imports without a reason."""
    modules = {_module(p) for p in LABKIT.rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    unexplained = []
    for path in sorted(LABKIT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        module = _module(path)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        local = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)
            if isinstance(n, (ast.Import, ast.ImportFrom))
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            targets = [t for t in targets if t == "labkit" or t.startswith("labkit.")]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != module and target != "labkit":
                    graph[module].add(target)
            if targets and id(node) in local:
                line = lines[node.lineno - 1]
                end = lines[(node.end_lineno or node.lineno) - 1]
                if "#" not in line and "#" not in end:
                    unexplained.append(f"{path.relative_to(ROOT)}:{node.lineno}: {line.strip()}")
    return graph, unexplained


def test_imports_point_down_the_layers_and_studies_stay_apart():
    graph, _ = edges()
    upward = []
    for source, targets in graph.items():
        for target in targets:
            if layer(target) > layer(source):
                upward.append(f"{source} -> {target}")
            elif layer(source) == 2 and _unit(source) != _unit(target) and layer(target) == 2:
                upward.append(f"{source} -> {target} (one study importing another)")
            elif {_unit(source), _unit(target)} == {"explore", "run"}:
                upward.append(f"{source} -> {target} (explore and run are independent tools)")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


def test_there_is_no_import_circle():
    graph, _ = edges()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            # a package importing its own submodules and back is how __init__ re-exports work
            real = [m for m in component if not any(o != m and o.startswith(m + ".") for o in component)]
            if len(real) > 1:
                circles.append(" <-> ".join(sorted(component)))

    for node in list(graph):
        if node not in index:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_function_local_labkit_imports_say_why():
    _, unexplained = edges()
    assert not unexplained, (
        f"{len(unexplained)} function-local labkit imports without a reason "
        "comment on the line:\n" + "\n".join(unexplained)
    )
