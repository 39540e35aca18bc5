"""Where datasets come from: the registry's entry types and the folders searched for them.

Apart from :mod:`labkit.data.registry` (resolution, download, hashes) and
:mod:`labkit.data.hf` (Hugging Face sets) so both can use them without importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit.paths import cache_dir


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path inside ``<key>/``, where to download it, its hash."""

    relpath: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Dataset:
    """A registry entry. ``files`` is empty for Hugging Face ``datasets`` entries."""

    key: str
    description: str
    licence: str
    source: str
    parser: Callable[[Path], Any]
    files: tuple[DataFile, ...] = ()
    hf_name: str | None = None
    hf_config: str | None = None
    hf_split: str | None = None
    citation: str = ""
    # sha256 of the sorted ``sha256sum`` listing (for multi-file sets, e.g. QMSum).
    listing_sha256: str | None = None
    # glob (inside the folder) of the files a user's own folder in this layout holds, e.g.
    # QMSum's "*/*.json": such a folder loads through ``path=`` without the registry's manifest
    user_files: str | None = None

    @property
    def is_hf(self) -> bool:
        return self.hf_name is not None


@dataclass
class Resolved:
    """Where a dataset was found and the sha256 of each of its files."""

    key: str
    root: Path
    origin: str  # "path" | "cache" | "mirror" | "download" | "hf"
    sha256: dict[str, str] = field(default_factory=dict)
    verified: bool = True


def cache_root() -> Path:
    env = os.environ.get("LABKIT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    return cache_dir("data")


def mirror_roots() -> list[Path]:
    env = os.environ.get("LABKIT_DATA_MIRROR", "")
    return [Path(p).expanduser().resolve() for p in env.split(os.pathsep) if p.strip()]


def candidate_roots(key: str) -> list[tuple[str, Path]]:
    """Locations searched for ``key`` (origin, folder), in resolution order."""
    return [("cache", cache_root() / key)] + [("mirror", m / key) for m in mirror_roots()]
