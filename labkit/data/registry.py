"""Dataset registry: key -> source URLs, sha256, licence, parser.

Resolution order for a key (first hit wins):

1. an explicit ``path=`` argument (a file or a folder laid out like the mirror);
2. the cache dir ``$LABKIT_DATA_DIR`` (default ``~/.cache/labkit/data``), ``<dir>/<key>/...``;
3. each mirror dir in ``$LABKIT_DATA_MIRROR`` (colon-separated), ``<mirror>/<key>/...``;
4. a download from the pinned source URL into the cache dir, checked against its sha256.

Registry files are always checked against their sha256; a user's own file given by ``path=``
is parsed and validated but not checked (it is different data by design) and its hash is still
recorded in the run record. With no network and no mirror, one :class:`DataUnavailableError`
says which key, where labkit looked and how to supply the data.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from labkit import io
from labkit.data.hf import load_hf
from labkit.data.sources import (
    DataFile,
    Dataset,
    Resolved,
    cache_root,  # noqa: F401 (API)
    candidate_roots,
)
from labkit.errors import DataError, DataUnavailableError, ParameterError

# Every dataset loaded in this process, for the run record (key -> Resolved).
USED: dict[str, Resolved] = {}
_REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    if dataset.key in _REGISTRY:
        raise ValueError(f"dataset key {dataset.key!r} registered twice")
    _REGISTRY[dataset.key] = dataset
    return dataset


def get(key: str) -> Dataset:
    """The registry entry for ``key``; a clear error with suggestions if unknown."""
    try:
        return _REGISTRY[key]
    except KeyError:
        import difflib

        hint = difflib.get_close_matches(key, _REGISTRY, n=1)
        raise ParameterError(
            f"unknown dataset key {key!r}"
            + (f"; did you mean {hint[0]!r}?" if hint else "")
            + f" (known: {', '.join(sorted(_REGISTRY))})"
        ) from None


def keys() -> list[str]:
    return sorted(_REGISTRY)


def _complete(ds: Dataset, root: Path) -> bool:
    return all((root / f.relpath).is_file() for f in ds.files)


def _verify(ds: Dataset, root: Path) -> dict[str, str]:
    """sha256 of each file; a DataError naming the first file whose hash is wrong."""
    hashes = {}
    for f in ds.files:
        path = root / f.relpath
        got = io.sha256_file(path)
        if got != f.sha256:
            raise DataError(
                f"{path}: sha256 mismatch for dataset {ds.key!r} (expected {f.sha256}, got {got}). "
                f"The file is corrupt or a different version; delete it and run "
                f"`labkit data fetch {ds.key}`, or fix the mirror."
            )
        hashes[f.relpath] = got
    return hashes


def _download(ds: Dataset, root: Path, timeout: float = 30.0) -> dict[str, str]:
    """Fetch every missing file into ``root``, checking sha256 before the rename."""
    hashes = {}
    for f in ds.files:
        target = root / f.relpath
        if target.is_file() and io.sha256_file(target) == f.sha256:
            hashes[f.relpath] = f.sha256
            continue
        with io.atomic_path(target) as tmp:
            with urllib.request.urlopen(f.url, timeout=timeout) as response, open(tmp, "wb") as out:
                while block := response.read(1 << 20):
                    out.write(block)
            got = io.sha256_file(tmp)
            if got != f.sha256:
                raise DataError(
                    f"download of {f.url} has sha256 {got}, expected {f.sha256}; "
                    f"the source changed or the transfer was corrupted"
                )
        hashes[f.relpath] = got
    return hashes


def resolve(key: str, path: str | os.PathLike | None = None, download: bool = True) -> Resolved:
    """Find ``key`` locally (or download it) and return where it is, with file hashes."""
    ds = get(key)
    if ds.is_hf:
        raise ParameterError(f"{key!r} is a Hugging Face dataset; use labkit.data.load({key!r})")
    if path is not None:
        return _resolve_explicit(ds, Path(path).expanduser())
    looked = []
    for origin, root in candidate_roots(key):
        looked.append(str(root))
        if _complete(ds, root):
            return Resolved(key, root, origin, _verify(ds, root))
    if download:
        root = cache_root() / key
        try:
            return Resolved(key, root, "download", _download(ds, root))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            looked.append(f"{ds.files[0].url} ({reason})")
    raise DataUnavailableError(
        f"dataset {key!r} not found. Looked in: {'; '.join(looked)}. "
        f"Supply it by (a) setting LABKIT_DATA_MIRROR to a folder that holds {key}/"
        f"{ds.files[0].relpath}, (b) passing path=... to labkit.data.load, or (c) running "
        f"`labkit data fetch {key}` on a machine with internet access."
    )


def _resolve_explicit(ds: Dataset, path: Path) -> Resolved:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (given for dataset {ds.key!r})")
    if path.is_file():
        return Resolved(ds.key, path, "path", {path.name: io.sha256_file(path)}, verified=False)
    root = path / ds.key if (path / ds.key).is_dir() and not _complete(ds, path) else path
    if _complete(ds, root):
        hashes = {f.relpath: io.sha256_file(root / f.relpath) for f in ds.files}
        return Resolved(ds.key, root, "path", hashes, verified=False)
    if ds.user_files:
        # a user's own data in the same layout: the parser validates every file; hashes are
        # recorded, not checked (the manifest describes the registry's copy only)
        files = sorted(p for p in root.glob(ds.user_files) if p.is_file())
        if not files:
            raise DataError(
                f"{root}: folder given for dataset {ds.key!r} holds no files matching "
                f"{ds.user_files!r} (the registry copy's layout)"
            )
        hashes = {p.relative_to(root).as_posix(): io.sha256_file(p) for p in files}
        return Resolved(ds.key, root, "path", hashes, verified=False)
    missing = next(f.relpath for f in ds.files if not (root / f.relpath).is_file())
    raise DataError(f"{root}: folder given for dataset {ds.key!r} lacks {missing}")


def load(key: str, path: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """Resolve ``key`` and return its parsed form (see each entry's parser).

    The resolution is remembered in :data:`USED` so the run record lists data hashes.
    """
    ds = get(key)
    if ds.is_hf:
        resolved, value = load_hf(ds, path)
        USED[key] = resolved
        return value
    resolved = resolve(key, path)
    target = resolved.root
    if resolved.origin != "path" or target.is_dir():
        target = resolved.root if len(ds.files) != 1 else resolved.root / ds.files[0].relpath
    value = ds.parser(target, **kwargs)
    USED[key] = resolved
    return value


def verify(key: str) -> Resolved:
    """Resolve without downloading and check every hash (and the listing hash, if any)."""
    ds = get(key)
    resolved = resolve(key, download=False)
    if ds.listing_sha256:
        listing = "".join(f"{h}  ./{p}\n" for p, h in sorted(resolved.sha256.items()))
        got = hashlib.sha256(listing.encode("utf-8")).hexdigest()
        if got != ds.listing_sha256:
            raise DataError(f"{resolved.root}: listing sha256 {got} != {ds.listing_sha256}")
    return resolved


def fetch(key: str) -> Resolved:
    """Download ``key`` into the cache dir (no-op for files already there and correct)."""
    ds = get(key)
    if ds.is_hf:
        resolved, _ = load_hf(ds, None)
        return resolved
    root = cache_root() / key
    try:
        return Resolved(key, root, "download", _download(ds, root))
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataUnavailableError(
            f"could not download dataset {key!r} from {ds.files[0].url}: "
            f"{getattr(exc, 'reason', exc)}. Use LABKIT_DATA_MIRROR or path=... offline."
        ) from None


def manifest_files(name: str, url_prefix: str) -> tuple[DataFile, ...]:
    """Read a ``sha256sum`` listing shipped in ``labkit/manifests`` into DataFile entries."""
    text = resources.files("labkit").joinpath("manifests", name).read_text(encoding="utf-8")
    files = []
    for line in text.splitlines():
        digest, rel = line.split(maxsplit=1)
        rel = rel.removeprefix("./")
        files.append(DataFile(rel, url_prefix + rel, digest))
    return tuple(files)
