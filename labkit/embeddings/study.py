"""Study 1's steps (``notebooks/embeddings_medical.ipynb``): pairs and the systems that score them.

A *system* is one way of scoring a pair: zero-shot cosine of a provider's embeddings, the same
after a Siamese head, or a fine-tuned encoder. Every system is evaluated the same way and
lands in the tables of :mod:`labkit.embeddings.tables`.

Energy comes from codecarbon; where it is an estimate from CPU load x TDP the tables say so in
an ``energy_basis`` column and put seconds first (:mod:`labkit.carbon`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

import labkit.data as data
from labkit.embedders.providers import Embedder, make_embedder
from labkit.embeddings import similarity
from labkit.embeddings.siamese import FineTuneConfig, HeadConfig, finetune_encoder, train_head
from labkit.errors import LabkitError, ParameterError
from labkit.timing import timed


def load_pairs(cfg: dict[str, Any], seed: int = 0) -> pd.DataFrame:
    """MQP (or the user's pair CSV), optionally subsampled per doctor, with a ``split`` column."""

    pairs = data.parse_pairs_csv(cfg["pairs_csv"]) if cfg.get("pairs_csv") else data.load("mqp")
    pairs = pairs.rename_axis("row").reset_index()
    if cfg["max_pairs"]:
        per_doctor = max(2, int(np.ceil(cfg["max_pairs"] / pairs["dr_id"].nunique())))
        pairs = pairs.groupby("dr_id", sort=False).head(per_doctor + per_doctor % 2)
    pairs = pairs.reset_index(drop=True)
    pairs["split"] = similarity.split_by_doctor(pairs, cfg["test_doctors"], cfg["val_doctors"], seed)
    return pairs


def split_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pairs, question groups (the bootstrap's unit), similar pairs and doctors per split."""
    groups = similarity.question_groups(pairs) if "question_1" in pairs.columns else pairs.index
    frame = pairs.assign(group=groups)
    return (
        frame.groupby("split")
        .agg(
            pairs=("label", "size"),
            question_groups=("group", "nunique"),
            similar=("label", "sum"),
            doctors=("dr_id", lambda d: sorted(d.unique())),
        )
        .reset_index()
    )


@dataclass
class Systems:
    """Scores per system name, what kind each is, energy, and providers that did not run.

    ``skipped`` holds one entry per provider that produced no scores: ``status`` is
    ``"skipped"`` (not available: no key, no client) or ``"failed"`` (it raised while
    embedding; ``reason`` then starts with ``"failed: "``). :meth:`warnings` turns them, and
    any ``notes``, into messages for ``record.warn``.
    """

    scores: dict[str, np.ndarray] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    embeddings: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    inference: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    base: dict[str, str] = field(default_factory=dict)  # trained system -> the system it starts from

    @property
    def failed(self) -> list[dict[str, str]]:
        """The providers that raised while embedding (a subset of ``skipped``)."""
        return [s for s in self.skipped if s.get("status") == "failed"]

    def warnings(self) -> list[str]:
        """One message per provider that did not run, and per note, for ``record.warn``."""
        out = []
        for s in self.skipped:
            if s.get("status") == "failed":  # "failed: ..." makes `labkit run` report "partial"
                cause = s["reason"].removeprefix("failed: ")
                out.append(f"failed: {s['spec']}: {cause} (its row is marked failed; the other systems ran)")
            else:
                out.append(f"skipped {s['spec']}: {s['reason']}")
        return out + list(self.notes)


def _cause(exc: BaseException) -> str:
    """A one-line cause: labkit's own message as is, a library's prefixed by its type."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return text if isinstance(exc, LabkitError) and text else f"{type(exc).__name__}: {text}"


def _build_all(specs: Sequence[str], out: Systems) -> list[tuple[str, Embedder]]:
    """Every embedder built before any model loads, so a malformed spec fails at once naming
    its ``models`` entry; one that cannot be built for another reason (an unknown model) is
    recorded as failed and left out."""
    if isinstance(specs, str) or not isinstance(specs, Sequence):
        raise ParameterError(f"models must be a list of embedder specs, got {specs!r}")
    built = []
    for i, spec in enumerate(specs):
        try:
            built.append((spec, make_embedder(spec)))
        except ParameterError as exc:
            raise ParameterError(f"models[{i}]: {exc}") from None
        except Exception as exc:  # noqa: BLE001  one bad model must not stop the others
            out.skipped.append(
                {"system": str(spec), "spec": str(spec), "status": "failed", "reason": f"failed: {_cause(exc)}"}
            )
    return built


def embed_pairs(pairs: pd.DataFrame, specs: Sequence[str], *, carbon=None, energy_texts: int = 1000) -> Systems:
    """Zero-shot cosine per provider; energy per 1,000 embeddings for local models.

    A provider that is not available is skipped; one that raises while being built or while
    embedding (an API outage, a model that will not load) becomes a ``failed`` entry with its
    cause, and the other providers still run. Malformed specs raise :class:`ParameterError`
    before any work. Energy is measured on a fresh, uncached embedding of ``energy_texts``
    texts (the cache would otherwise make a re-run look free).
    """
    out = Systems()
    texts = list(dict.fromkeys(list(pairs["question_1"]) + list(pairs["question_2"])))
    for spec, embedder in _build_all(specs, out):
        name = embedder.name
        ok, reason = embedder.available()
        if not ok:
            out.skipped.append({"system": name, "spec": spec, "status": "skipped", "reason": reason})
            continue
        try:
            embedder.fit(texts)  # unsupervised: question texts only, labels never seen
            a = embedder.embed(list(pairs["question_1"]))
            b = embedder.embed(list(pairs["question_2"]))
        except Exception as exc:  # noqa: BLE001  one provider's failure must not cost the rest
            out.skipped.append({"system": name, "spec": spec, "status": "failed", "reason": f"failed: {_cause(exc)}"})
            continue
        out.scores[name] = similarity.cosine(a, b)
        out.kind[name] = "zero-shot cosine"
        out.embeddings[name] = (a, b)
        if embedder.is_local and carbon is not None and energy_texts:
            try:
                out.inference.append(_inference_energy(spec, name, texts[:energy_texts], texts, carbon))
            except Exception as exc:  # noqa: BLE001  the scores stand; only energy is missing
                out.notes.append(f"{spec}: inference energy not measured ({_cause(exc)})")
    return out


def _inference_energy(spec: str, name: str, sample: list[str], corpus: list[str], carbon) -> dict[str, Any]:
    """Seconds, energy and emissions per 1,000 texts of a fresh, uncached embedder."""
    fresh = make_embedder(spec, cache=False).fit(corpus)
    fresh.embed(sample[:8], progress=False)  # load the model outside the measurement
    with carbon.task(f"inference {name}") as ms:
        _, seconds = timed(lambda: fresh.embed(sample, progress=False))  # syncs the device
    m = ms[-1]
    return {
        "system": name,
        "texts": len(sample),
        "seconds_per_1000": 1000 * seconds / len(sample),
        "energy_kwh_per_1000": 1000 * m.energy_kwh / len(sample),
        "emissions_g_per_1000": 1000 * m.emissions_g / len(sample),
        "power_method": m.power_method,
    }


def add_heads(systems: Systems, pairs: pd.DataFrame, head: dict[str, Any], *, carbon=None, seed: int = 0) -> None:
    """A Siamese head on every provider's frozen embeddings (``<name>+siamese``)."""
    labels, split = pairs["label"].to_numpy(), pairs["split"].to_numpy()
    for name, (a, b) in list(systems.embeddings.items()):
        result = train_head(
            a, b, labels, split, HeadConfig(**{**head, "seed": seed}), carbon=carbon, name=f"{name}+siamese"
        )
        label = f"{name}+siamese"
        systems.scores[label] = result.scores
        systems.kind[label] = "Siamese head"
        systems.base[label] = name
        for row in result.epochs:
            systems.epochs.append({"system": label, **row, "best_epoch": result.best_epoch})


def add_finetuned(
    systems: Systems, pairs: pd.DataFrame, base: str, epochs: int, *, carbon=None, seed: int = 0
) -> dict[str, Any]:
    """Full Siamese fine-tune of ``base`` on the training doctors' pairs (``<name>-finetuned``)."""
    train = pairs[pairs["split"] == "train"]
    before = len(carbon.measurements) if carbon is not None else 0
    folder, metrics = finetune_encoder(
        train["question_1"],
        train["question_2"],
        train["label"],
        FineTuneConfig(base_model=base, epochs=epochs, seed=seed),
        carbon=carbon,
    )
    tuned = make_embedder(f"st:{folder}")
    short = base.split("/")[-1].replace("all-", "")
    label = f"{short}-finetuned"
    a, b = tuned.embed(list(pairs["question_1"])), tuned.embed(list(pairs["question_2"]))
    systems.scores[label] = similarity.cosine(a, b)
    systems.kind[label] = "fine-tuned encoder"
    if short in systems.scores:  # the zero-shot cosine of the same weights, when it ran
        systems.base[label] = short
    if carbon is not None:
        for k, m in enumerate(carbon.measurements[before:], start=1):
            if m.task.startswith("epoch_"):
                systems.epochs.append(
                    {
                        "system": label,
                        "epoch": k,
                        "seconds": m.duration_s,
                        "energy_kwh": m.energy_kwh,
                        "emissions_g": m.emissions_g,
                        "best_epoch": epochs,
                    }
                )
    return metrics
