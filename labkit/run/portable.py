"""No machine paths in what labkit publishes: the folders of this machine (home, temp, the
checkout, the caches and data mirror) that must never appear in a committed output, and a check
that names every file holding one. The reference record runs it before anything is written."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from labkit import studies
from labkit.errors import DataError
from labkit.paths import project_root


def machine_paths(figures: Path | None = None) -> list[str]:
    """Folders of this machine that must never appear in a committed output."""
    candidates = [
        os.path.expanduser("~"),
        tempfile.gettempdir(),
        "/tmp",
        str(studies.CHECKOUT),
        str(project_root() or ""),
        str(figures or ""),
        os.environ.get("LABKIT_CACHE_DIR", ""),
        os.environ.get("LABKIT_DATA_DIR", ""),
        *os.environ.get("LABKIT_DATA_MIRROR", "").split(os.pathsep),
    ]
    found = set()
    for raw in filter(None, candidates):
        for path in (raw.rstrip("/"), os.path.realpath(raw)):
            if len(path) > 1 and path.startswith("/"):
                found.add(path)
    return sorted(found, key=len, reverse=True)


def path_leaks(text: str, needles: Iterable[str]) -> list[str]:
    """The machine paths found in ``text`` (a path counts only as a whole path component).

    >>> path_leaks("read /home/ann/data/x.csv and /home/annex", ["/home/ann"])
    ['/home/ann']
    >>> path_leaks("Sulfameth/tmp ds for pink eye", ["/tmp"])  # a drug name, not a folder
    []
    """
    return [n for n in needles if re.search(r"(?<![\w.-])" + re.escape(n) + r"(?![\w.-])", text)]


def check_portable(folder: Path, needles: Iterable[str]) -> None:
    """Raise :class:`DataError` naming every file under ``folder`` that holds a machine path."""
    needles = list(needles)
    bad = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        leaks = path_leaks(path.read_text(encoding="utf-8", errors="replace"), needles)
        if leaks:
            bad.append(f"{path.relative_to(folder)} holds {', '.join(map(repr, leaks))}")
    if bad:
        raise DataError(
            "the reference record would carry machine paths (fix the study that writes them): " + "; ".join(bad)
        )
