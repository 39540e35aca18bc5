"""Every distribution labkit imports is declared in pyproject.toml (issue 24)."""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _requirement_name(text: str) -> str:
    return re.split(r"[\s\[<>=!~;]", text.strip(), maxsplit=1)[0].lower().replace("_", "-")


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_requirement_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        names |= {_requirement_name(r) for r in extra if not r.startswith("labkit")}
    return names


def imported_modules(root: Path) -> dict[str, str]:
    """Top-level module imported anywhere under ``root`` -> one file that imports it."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared():
    providers = metadata.packages_distributions()
    wanted = declared()
    missing = []
    for module, where in imported_modules(ROOT / "labkit").items():
        if module in sys.stdlib_module_names or module in ("labkit", "__future__"):
            continue
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        assert dists, f"{module} (imported in {where}) is not installed: declare and install it"
        if not dists & wanted:
            missing.append(f"{module} ({where}) from {sorted(dists)}")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_the_check_can_fail():
    assert "psutil" in declared()
    assert "surely-not-a-dependency" not in declared()
    assert _requirement_name("dask[distributed]>=2026.8") == "dask"
