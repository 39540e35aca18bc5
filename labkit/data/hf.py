"""Hugging Face ``datasets`` entries: loaded through the ``datasets`` library.

Online, ``datasets.load_dataset(name, config, split=...)`` fetches and caches them. Offline, a
cache or mirror folder ``<root>/<key>/`` holding parquet / JSONL / CSV files of that split is
loaded with the matching ``datasets`` builder. With neither, one DataUnavailableError.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from labkit import io
from labkit.data.sources import Dataset, Resolved, candidate_roots
from labkit.errors import DataError, DataUnavailableError

_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def _local_files(folder: Path) -> tuple[str, list[Path]] | None:
    for suffix, builder in _BUILDERS.items():
        files = sorted(folder.rglob(f"*{suffix}"))
        if files:
            return builder, files
    return None


def parse_hf(dataset: Any) -> pd.DataFrame:
    """A ``datasets.Dataset`` as a pandas frame."""
    return dataset.to_pandas()


def load_hf(ds: Dataset, path: str | Path | None) -> tuple[Resolved, pd.DataFrame]:
    import datasets  # heavy (pyarrow): only when a Hugging Face set is asked for

    datasets.logging.set_verbosity_error()
    roots = [("path", Path(path))] if path else candidate_roots(ds.key)
    looked = []
    for origin, root in roots:
        looked.append(str(root))
        found = (
            _local_files(root) if root.is_dir() else ((_BUILDERS.get(root.suffix), [root]) if root.is_file() else None)
        )
        if found and found[0]:
            builder, files = found
            table = datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
            hashes = {str(f.relative_to(root) if root.is_dir() else f.name): io.sha256_file(f) for f in files}
            return Resolved(ds.key, root, origin, hashes, verified=False), parse_hf(table)
    try:
        table = datasets.load_dataset(ds.hf_name, ds.hf_config, split=ds.hf_split)
    except Exception as exc:  # network, hub or builder errors all mean "not available here"
        looked.append(f"huggingface.co/datasets/{ds.hf_name} ({type(exc).__name__})")
        raise DataUnavailableError(
            f"dataset {ds.key!r} not available. Looked in: {'; '.join(looked)}. Supply it by "
            f"putting its {ds.hf_split} split as parquet/JSONL/CSV under "
            f"$LABKIT_DATA_MIRROR/{ds.key}/, passing path=..., or going online so that "
            f"datasets.load_dataset({ds.hf_name!r}) can fetch it."
        ) from None
    if len(table) == 0:
        raise DataError(f"dataset {ds.key!r} split {ds.hf_split!r} is empty")
    fingerprint = getattr(table, "_fingerprint", "")
    return Resolved(ds.key, Path(ds.hf_name), "hf", {"fingerprint": fingerprint}, False), parse_hf(table)
