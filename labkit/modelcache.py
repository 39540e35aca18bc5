"""One cache for every model labkit trains: one key recipe, one metadata file, one hit rule.

Tiny LMs, anchor-trained LMs, fine-tuned summarizers and fine-tuned Siamese encoders are all
"train once, keep the folder, load it next time". Each used to decide on its own what "the same
model" means, and one keyed on the base model's folder *name*, so new weights under an old name
were a false hit. Here there is one answer for all of them:

* **key** (:func:`cache_key`): sha256 over the kind, the trainer's code version, the full
  training config as sorted JSON, a content fingerprint of the base weights
  (:func:`base_fingerprint`) and a content hash of the training data. The base enters by its
  bytes only, so the same weights reached by another name or path still hit.
* **metadata** (:data:`METADATA_FILE`): key, kind, config, base (name + fingerprint), data
  sha256, metrics, energy, power method, code version, creation time.
* **hit rule** (:func:`lookup`): metadata present AND ``*.safetensors`` present AND the stored
  key equals the key asked for (a folder prefix collision or an old format never counts).
* **atomic write** (:func:`atomic_model_dir`): a killed run leaves no folder a later run could
  mistake for a model.
* **energy**: measured in one place, :class:`TrainingJob` (``job.train(trainer)`` wraps
  :func:`labkit.training.train_measured`; ``job.measure()`` wraps any other loop).

Folders live in ``labkit.models.labkit_models_dir()/<kind>-<key[:12]>``, so
``labkit.models.resolve("labkit/<kind>-<key12>")`` finds them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

from labkit.carbon import CarbonSession
from labkit.errors import ModelError, ParameterError
from labkit.io import sha256_file, sha256_text, write_json
from labkit.models import labkit_models_dir, resolve
from labkit.timing import Stopwatch
from labkit.training import energy_summary, train_measured

__all__ = [
    "METADATA_FILE",
    "BaseModel",
    "CachedModel",
    "Recipe",
    "TrainingJob",
    "atomic_model_dir",
    "base_fingerprint",
    "cache_key",
    "lookup",
    "train_into_cache",
]

METADATA_FILE = "labkit_model.json"
KEY_CHARS = 12  # characters of the key in the folder name; the full key is in the metadata
_KIND = re.compile(r"^[a-z0-9][a-z0-9-]*$")


# --------------------------------------------------------------------------- the base model
def base_fingerprint(folder: str | os.PathLike) -> str:
    """sha256 over a model folder's ``config.json`` and every ``*.safetensors`` under it.

    This is what "the same base" means: the bytes, not the folder's name or location.
    """
    folder = Path(folder)
    parts = [
        f"{path.relative_to(folder)}:{sha256_file(path)}"
        for path in sorted(folder.glob("config.json")) + sorted(folder.rglob("*.safetensors"))
    ]
    if not parts:
        raise ModelError(f"{folder} holds no config.json / *.safetensors to fingerprint")
    return sha256_text(*parts)


@dataclass(frozen=True)
class BaseModel:
    """The model a training run starts from: the name it was given, its folder, its bytes' hash."""

    name: str
    path: Path
    fingerprint: str

    @classmethod
    def of(cls, base: Any) -> BaseModel:
        """From a trained labkit model (anything with ``.name`` and ``.path``), a model name
        (resolved by :func:`labkit.models.resolve`) or a local folder."""
        if hasattr(base, "path") and hasattr(base, "name"):
            name, path = str(base.name), Path(base.path)
        elif isinstance(base, (str, os.PathLike)) and str(base):
            name, path = str(base), Path(resolve(str(base)).path)
        else:
            raise ParameterError(
                f"base must be a trained labkit model or a model name / path, got {type(base).__name__}"
            )
        return cls(name, path, base_fingerprint(path))

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "fingerprint": self.fingerprint}


# --------------------------------------------------------------------------- the key
def cache_key(
    kind: str,
    *,
    config: Mapping[str, Any],
    code_version: str,
    base: BaseModel | str | None = None,
    data_sha256: str | None = None,
) -> str:
    """The full hex sha256 that names a trained model.

    Args:
        kind: the model family, also the folder prefix (``"tiny-lm"``, ``"summarizer"``...).
        config: every training setting, JSON-serialisable (tuples become lists).
        code_version: bump it when the training code changes what a config produces, so old
            folders miss instead of being misread.
        base: the starting weights (:class:`BaseModel` or its fingerprint); ``None`` when the
            model is trained from scratch.
        data_sha256: content hash of the training data.
    """
    _check_kind(kind)
    fingerprint = base.fingerprint if isinstance(base, BaseModel) else base
    try:
        payload = json.dumps(
            {
                "kind": kind,
                "code_version": code_version,
                "config": dict(config),
                "base": fingerprint,
                "data": data_sha256,
            },
            sort_keys=True,
        )
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"the training config of {kind!r} is not JSON-serialisable, so it cannot key the model cache: {exc}"
        ) from None
    return sha256_text(payload)


def _check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise ParameterError(f"model cache kind must be lowercase letters, digits and '-', got {kind!r}")


def _folder(kind: str, key: str) -> Path:
    return labkit_models_dir() / f"{kind}-{key[:KEY_CHARS]}"


@dataclass(frozen=True)
class Recipe:
    """Everything a cached model is made from; its :attr:`key` is the cache key.

    Holding the parts together means the key and the metadata cannot disagree.
    """

    kind: str
    code_version: str
    config: Mapping[str, Any]
    base: BaseModel | None = None
    data_sha256: str | None = None

    @cached_property
    def key(self) -> str:
        return cache_key(
            self.kind,
            config=self.config,
            code_version=self.code_version,
            base=self.base,
            data_sha256=self.data_sha256,
        )

    @property
    def name(self) -> str:
        """``labkit/<kind>-<key12>``, the name :func:`labkit.models.resolve` understands."""
        return f"labkit/{self.kind}-{self.key[:KEY_CHARS]}"

    @property
    def folder(self) -> Path:
        return _folder(self.kind, self.key)


# --------------------------------------------------------------------------- lookup
@dataclass(frozen=True)
class CachedModel:
    """A model folder in the cache and its metadata (:data:`METADATA_FILE`)."""

    name: str
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.metadata["key"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.metadata.get("metrics", {})

    @property
    def energy(self) -> dict[str, Any]:
        return self.metadata.get("energy", {})


def lookup(kind: str, key: str) -> CachedModel | None:
    """The cached model for ``key``, or ``None``.

    A hit needs all three: the metadata file, safetensors weights, and the stored key equal to
    ``key``. Anything else (an older format, a half-copied folder, a 12-character prefix
    collision) is a miss, and training replaces the folder.
    """
    _check_kind(kind)
    folder = _folder(kind, key)
    meta_file = folder / METADATA_FILE
    if not meta_file.is_file() or not any(folder.rglob("*.safetensors")):
        return None
    try:
        metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(metadata, dict) or metadata.get("key") != key:
        return None
    return CachedModel(f"labkit/{folder.name}", folder, metadata)


# --------------------------------------------------------------------------- training
@contextlib.contextmanager
def atomic_model_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh folder beside ``final``; on a clean exit it replaces ``final`` in one rename.

    On an exception nothing at ``final`` changes and the scratch folder is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        out = work / "model"
        out.mkdir()
        yield out
        if final.exists():
            shutil.rmtree(final)
        try:
            os.replace(out, final)
        except OSError:  # another process finished the same model first
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


class TrainingJob:
    """What a train function gets: the folder to save into and the one place energy is measured.

    Attributes:
        folder: scratch folder that becomes the cached model folder when training returns.
        scratch: a sibling folder for Trainer output (``output_dir``), removed with the
            scratch space of :func:`atomic_model_dir`.
        task: the carbon task name, ``train_<kind>-<key12>``.
    """

    def __init__(self, recipe: Recipe, folder: Path, *, carbon=None, progress: bool = True):
        self.recipe, self.folder = recipe, Path(folder)
        self.scratch = self.folder.parent / "trainer"
        self.task = f"train_{recipe.kind}-{recipe.key[:KEY_CHARS]}"
        self.carbon, self.progress = carbon, progress
        self.energy: dict[str, Any] | None = None

    def train(self, trainer, *, per_epoch: bool = False, resume_from_checkpoint=None) -> dict[str, Any]:
        """``trainer.train()`` measured by :func:`labkit.training.train_measured`; returns its
        summary (``train_loss``, ``loss_curve``, ``energy``...). ``per_epoch`` records one carbon
        task per epoch (``epoch_<k>``) instead of one for the run; ``resume_from_checkpoint``
        continues a saved Trainer checkpoint."""

        run = train_measured(
            trainer,
            self.task,
            carbon=self.carbon,
            progress=self.progress,
            per_epoch=per_epoch,
            resume_from_checkpoint=resume_from_checkpoint,
        )
        self._add(run["energy"])
        return run

    @contextlib.contextmanager
    def measure(self) -> Iterator[None]:
        """Measure a training loop that is not a Hugging Face Trainer as one carbon task."""

        session = self.carbon if self.carbon is not None else CarbonSession()
        with contextlib.ExitStack() as stack:
            if self.carbon is None:
                stack.enter_context(session)
            before = len(session.measurements)
            with session.task(self.task):
                yield
            self._add(energy_summary(session, session.measurements[before:]))

    def _add(self, energy: dict[str, Any]) -> None:
        if self.energy is None:
            self.energy = dict(energy)
            return
        for k in ("energy_kwh", "emissions_g", "duration_s"):
            self.energy[k] += energy[k]
        self.energy["tasks"] = self.energy["tasks"] + energy["tasks"]


def train_into_cache(
    recipe: Recipe,
    train_fn: Callable[[TrainingJob], dict[str, Any]],
    *,
    force: bool = False,
    carbon=None,
    progress: bool = True,
) -> CachedModel:
    """The cached model of ``recipe``, training it with ``train_fn`` on a miss.

    Args:
        recipe: what the model is made from (its key decides hit or miss).
        train_fn: ``train_fn(job) -> metrics``; saves safetensors weights into ``job.folder``
            and trains through ``job.train(trainer)`` or ``with job.measure():`` so the energy
            is measured. Any exception leaves no folder behind.
        force: retrain even on a hit (the folder is replaced atomically).
        carbon: an open :class:`labkit.carbon.CarbonSession`; ``None`` measures privately.
        progress: tqdm bars and Trainer log lines.

    Returns:
        :class:`CachedModel` read back from disk, so a fresh model and a cache hit are equal.
        ``metrics["energy_kwh"]`` is the measured training energy.
    """
    if not force and (hit := lookup(recipe.kind, recipe.key)) is not None:
        return hit
    clock = Stopwatch().start()  # the device rule's device, synchronised at both readings
    with atomic_model_dir(recipe.folder) as out:
        job = TrainingJob(recipe, out, carbon=carbon, progress=progress)
        metrics = train_fn(job)
        if job.energy is None:
            raise RuntimeError(
                f"{recipe.kind}: train_fn must train through job.train(trainer) "
                f"or `with job.measure():` so its energy is recorded"
            )
        if not any(out.rglob("*.safetensors")):
            raise ModelError(f"{recipe.kind}: training saved no *.safetensors weights in {out}")
        write_json(
            out / METADATA_FILE,
            {
                "key": recipe.key,
                "kind": recipe.kind,
                "name": recipe.name,
                "code_version": recipe.code_version,
                "config": dict(recipe.config),
                "base": recipe.base.as_dict() if recipe.base else None,
                "data_sha256": recipe.data_sha256,
                "metrics": {**metrics, "energy_kwh": job.energy["energy_kwh"]},
                "energy": job.energy,
                "power_method": job.energy["power_method"],
                "train_wall_s": clock.stop(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
    hit = lookup(recipe.kind, recipe.key)
    if hit is None:  # pragma: no cover - only if another process broke the folder meanwhile
        raise ModelError(f"{recipe.folder} vanished right after training")
    return hit
