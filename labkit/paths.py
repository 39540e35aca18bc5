"""Where labkit reads and writes: project root, figures, caches.

Every location can be overridden by an environment variable so that CI, a user's laptop and a
JupyterLab kernel started inside ``notebooks/`` all agree:

==========================  ==============================================  =====================
variable                    meaning                                         default
==========================  ==============================================  =====================
``LABKIT_FIGURES_DIR``      root of the study output folders                ``<project>/figures``
``LABKIT_CACHE_DIR``        trained tiny models, embedding / summary cache  ``~/.cache/labkit``
``LABKIT_DATA_DIR``         downloaded datasets                             ``<cache>/data``
``LABKIT_DATA_MIRROR``      colon-separated read-only dataset mirrors       (none)
``LABKIT_STUDY_PATH``       folders of external studies (``study.json``),   (none)
                            ``os.pathsep``-separated
==========================  ==============================================  =====================
"""

from __future__ import annotations

import os
from pathlib import Path

#: the committed reference record's folder, under the project root (``labkit.run.reference``)
RESULTS_DIR = "results"


def project_root(start: Path | None = None) -> Path | None:
    """Return the labkit checkout that contains ``start`` (default: cwd), or None.

    A checkout is recognised by a ``pyproject.toml`` next to a ``labkit/`` package, so a
    notebook kernel started in ``notebooks/`` still writes to the project's ``figures/``.
    """
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "pyproject.toml").is_file() and (candidate / "labkit").is_dir():
            return candidate
    return None


def figures_dir() -> Path:
    """Root folder for study outputs (``figures/`` of the checkout, or ``$LABKIT_FIGURES_DIR``)."""
    env = os.environ.get("LABKIT_FIGURES_DIR")
    if env:
        return Path(env).expanduser().resolve()
    root = project_root()
    return (root / "figures") if root else (Path.cwd() / "figures").resolve()


def study_dir(study: str) -> Path:
    """Output folder of one study, created on demand."""
    path = figures_dir() / study
    path.mkdir(parents=True, exist_ok=True)
    return path


def study_path() -> list[Path]:
    """Folders listed in ``$LABKIT_STUDY_PATH`` (``os.pathsep``-separated; empty entries skipped).

    Each holds a ``study.json`` or sub-folders that do; :mod:`labkit.studies` reads them.
    """
    raw = os.environ.get("LABKIT_STUDY_PATH", "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def cache_root() -> Path:
    """labkit's cache folder (``$LABKIT_CACHE_DIR`` or ``~/.cache/labkit``), not created."""
    base = os.environ.get("LABKIT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "labkit"
    )
    return Path(base).expanduser()


def cache_dir(*parts: str) -> Path:
    """A sub-folder of labkit's cache (``$LABKIT_CACHE_DIR`` or ``~/.cache/labkit``), created."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
