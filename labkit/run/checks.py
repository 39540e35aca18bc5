"""Checks made before any kernel starts: folders usable, user files readable and valid.

A figures folder under a regular file, a read-only cache or a mirror that does not exist used
to surface as a library traceback seconds (or minutes) into a run; a bad row in a user's pairs
file as a notebook failure 16 s in. Here each is one line naming the path (and the file, line
and field), raised as :class:`labkit.errors.ParameterError` (exit code 2), in well under a
second for folders and within a second or two for a file parse.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

from labkit.errors import DataError, LabkitError, ParameterError
from labkit.params import schema_for
from labkit.paths import cache_root


def _problem(path: Path) -> str | None:
    """What stops ``path`` from being a folder labkit can write into (it is created if
    missing), or None."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                return (
                    f"{parent} is a file, not a folder"
                    if parent == path
                    else f"{parent} is a file, so no folder can be made under it"
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot be created ({exc.strerror or exc})"
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".labkit-write-test-"):
            pass
    except OSError as exc:
        return f"is not writable ({exc.strerror or exc})"
    return None


def writable_folder(path: Path, what: str, setting: str) -> Path:
    """``path`` resolved, created if missing; one ParameterError if it cannot be written."""
    path = Path(path).expanduser()
    why = _problem(path)
    if why:
        raise ParameterError(f"{what} {path}: {why}; set {setting} to a folder you can write")
    return path.resolve()


def output_root(path: Path) -> Path:
    """The figures folder of a run, checked (``LABKIT_FIGURES_DIR`` or the checkout's)."""
    return writable_folder(path, "figures folder", "LABKIT_FIGURES_DIR")


def environment_folders() -> None:
    """The cache folder (``LABKIT_CACHE_DIR``, where trained models go) must be writable; each
    ``LABKIT_DATA_MIRROR`` entry must be an existing, readable folder."""

    writable_folder(cache_root(), "cache folder", "LABKIT_CACHE_DIR")
    for entry in filter(None, (p.strip() for p in os.environ.get("LABKIT_DATA_MIRROR", "").split(os.pathsep))):
        mirror = Path(entry).expanduser()
        if not mirror.is_dir():
            raise ParameterError(
                f"LABKIT_DATA_MIRROR entry {mirror}: "
                f"{'is a file, not a folder' if mirror.exists() else 'no such folder'}"
            )
        if not os.access(mirror, os.R_OK | os.X_OK):
            raise ParameterError(f"LABKIT_DATA_MIRROR entry {mirror}: not readable")


def _loader(spec: str):
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def user_files(study: str, params: dict[str, Any]) -> None:
    """Parse every file a parameter names with the loader its schema declares
    (``Param(parse="module:function")``), so bad data fails before any kernel starts."""

    schema = schema_for(study)
    if schema is None:
        return
    for name, value in params.items():
        param = schema.params.get(name)
        if param is None or not param.parse or value is None:
            continue
        try:
            _loader(param.parse)(value)
        except LabkitError as exc:
            raise ParameterError(f"{name}: {exc}") from None
        except (OSError, UnicodeError, ValueError) as exc:  # a loader that let one through
            raise DataError(f"{name}: {value}: {type(exc).__name__}: {exc}") from None
