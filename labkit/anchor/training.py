"""Continued training under the AnSAN mask (AnLLM §4.2) with a plain HF ``Trainer``.

Why a collator and nothing else: transformers 5.x passes a 4-D ``attention_mask`` to eager and
SDPA attention untouched (``masking_utils._preprocess_mask_arguments`` returns it as-is), so a
collator that builds the additive ``(B, 1, L, L)`` anchor mask, padding-aware, plus explicit
``position_ids`` is all the official code's monkey-patched ``LlamaModel.forward`` did. The
padding, the causal part and "no fully masked row" (SDPA NaN) are the collator's job because
the model no longer adds them (``tests/anchor/test_training.py`` checks that ``model(**batch)``
really gives the masked logits for Llama, Qwen2 and GPT-NeoX, eager and SDPA, in train mode;
``tests/anchor/test_families.py`` trains every family of ``SUPPORTED_FAMILIES`` a few steps).

:func:`train_anchor_lm` starts from labkit's tiny LM (:func:`labkit.lm.train_tiny_lm`) or any HF
causal-LM name / folder, adds ``<AC>`` for AnLLM-AC (embedding from ``"."`` or the mean),
trains on the same corpus as the base (``corpus_splits`` training documents, ``<AC>`` inserted
after each sentence for AC) and caches the result like ``labkit.lm``:
``labkit_models_dir()/anchor-lm-<hash>`` (:mod:`labkit.modelcache`) where the hash covers the
base weights, this config (all but ``attention``) and the training text.

Two attention paths, one rule (``AnchorTrainConfig.attention``): ``"dense"``, the reference,
is the additive ``(B, 1, L, L)`` mask of :class:`AnchorCollator` through eager/SDPA;
``"flex"`` switches the model to ``attn_implementation="flex_attention"`` and feeds the
``BlockMask`` of :class:`labkit.anchor.flex.FlexAnchorCollator` (no ``L x L`` tensor; needs
flex-attention's backward, i.e. CUDA in torch <= 2.13); ``"auto"`` takes flex where it can
train (:func:`labkit.anchor.flex.choose_training_attention`) and dense elsewhere, so CPU runs
are unchanged. ``metrics["attention"]`` says which path produced the weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from labkit import params
from labkit.anchor.anchors import (
    AC_INITS,
    MODES,
    AnchorSpec,
    add_anchor_token,
    anchor_token_ids,
    insert_anchor_tokens,
)
from labkit.anchor.collators import AnchorCollator
from labkit.anchor.flex import TRAINING_ATTENTION, attention_collator, choose_training_attention
from labkit.anchor.recall import RecallProbe
from labkit.anchor.recall_lm import anchor_mixed_blocks
from labkit.anchor.support import NOT_SUPPORTED, SUPPORTED_FAMILIES, check_config, check_supported
from labkit.device import resolve_device
from labkit.errors import ModelError, ParameterError
from labkit.io import sha256_text
from labkit.lm.corpus import check_keys, corpus_documents
from labkit.lm.load import load_causal_lm
from labkit.modelcache import BaseModel, Recipe, base_fingerprint, train_into_cache
from labkit.params import Param
from labkit.timing import Stopwatch
from labkit.training import save_model, training_arguments, use_torch_threads

__all__ = [
    "AnchorTrainConfig",
    "AnchorCollator",
    "AnchoredLM",
    "train_anchor_lm",
    "base_fingerprint",
    "anchor_training_blocks",
    "attention_collator",
    "anchor_trainer",
]

KIND = "anchor-lm"
CODE_VERSION = "anchor-lm-v2"  # v2: labkit.modelcache keys and metadata


#: the checked fields of :class:`AnchorTrainConfig` (:func:`labkit.params.validate`)
_CONFIG_PARAMS = (
    Param("attention", str, choices=TRAINING_ATTENTION),
    Param("mode", str, choices=MODES),
    Param("ac_init", str, choices=AC_INITS),
    Param("train_tokens", int, min=1),
    Param("batch_size", int, min=1),
    Param("warmup_steps", int, min=0),
    Param("context_length", int, min=8, none_means="the base model's max_position_embeddings"),
    Param("learning_rate", float, min=0, max=1, exclusive_min=True),
)


@dataclass(frozen=True)
class AnchorTrainConfig:
    """Continued-training settings; everything here but ``attention`` goes into the cache hash.

    Defaults follow the paper's recipe scaled down (constant LR after a short warm-up, weight
    decay 0), with a token budget instead of 1B RedPajama tokens. ``attention``: ``"auto"``,
    ``"dense"`` or ``"flex"`` (see the module docstring).
    """

    mode: str = "ac"
    ac_init: str = "period"
    symbols: tuple[str, ...] = (".",)
    train_tokens: int = 200_000
    context_length: int | None = None  # None -> the base model's max_position_embeddings
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_steps: int = 5
    lr_scheduler: str = "constant_with_warmup"
    corpus: tuple[str, ...] = ("tinyshakespeare", "qmsum")
    heldout_fraction: float = 0.05
    seed: int = 0
    attention: str = "auto"
    #: mix recall-probe blocks into the training text (:mod:`labkit.anchor.recall_lm`); None: text only
    probe: Any = None

    def __post_init__(self) -> None:

        if isinstance(self.probe, dict):
            object.__setattr__(self, "probe", RecallProbe(**self.probe))
        if self.probe is not None and not isinstance(self.probe, RecallProbe):
            raise ParameterError(
                f"AnchorTrainConfig.probe must be a RecallProbe or None, got {type(self.probe).__name__}"
            )
        for name in ("symbols", "corpus"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            elif isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        for param in _CONFIG_PARAMS:  # one schema language for notebook parameters and configs
            where = f"AnchorTrainConfig.{param.name}"
            object.__setattr__(self, param.name, params.validate(param, getattr(self, param.name), where))
        check_keys(self.corpus)

    @property
    def spec(self) -> AnchorSpec:
        return AnchorSpec(mode=self.mode, symbols=self.symbols, ac_init=self.ac_init)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["symbols"], out["corpus"] = list(self.symbols), list(self.corpus)
        out["probe"] = self.probe.as_dict() if self.probe is not None else None
        return out

    def recipe_params(self) -> dict[str, Any]:
        """:meth:`as_dict` without ``attention``: the model-cache key's settings.

        Left out on purpose: flex and dense compute the same masked attention (loss and
        gradients agree to float rounding, ``tests/anchor/test_flex_training.py``), a smaller
        difference than the training device's own (CPU vs CUDA, bf16 autocast, nondeterministic
        CUDA kernels), which the cache key does not hold either; keeping it out also keeps
        every model cached before the option existed valid. ``metrics["attention"]`` records
        which path trained the cached weights.
        """
        out = self.as_dict()
        del out["attention"]
        if out["probe"] is None:  # text-only recipes keep the keys they were cached under
            del out["probe"]
        return out


class _Blocks(torch.utils.data.Dataset):
    def __init__(self, blocks: torch.Tensor):
        self.blocks = blocks

    def __len__(self) -> int:
        return self.blocks.shape[0]

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.blocks[i]}


def anchor_training_blocks(
    tokenizer, documents: Sequence[str], spec: AnchorSpec, context_length: int, n_tokens: int, seed: int = 0
) -> torch.Tensor:
    """``(n, context_length)`` windows of the token stream of ``documents`` (shuffled by
    ``seed``, ``<AC>`` inserted after each sentence for AC, documents joined by EOS), enough for
    ``n_tokens`` (the stream is repeated when the corpus is smaller)."""
    if not documents:
        raise ParameterError("anchor_training_blocks got no documents")
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    eos = tokenizer.eos_token_id
    stream: list[int] = []
    need = n_tokens + context_length
    for start in range(0, len(order), 64):
        batch = [insert_anchor_tokens(documents[i], spec) for i in order[start : start + 64]]
        for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
            stream.extend(ids + ([eos] if eos is not None else []))
        if len(stream) >= need:
            break
    n_blocks = len(stream) // context_length
    if n_blocks == 0:
        raise ParameterError(
            f"context_length {context_length} is longer than the whole training text ({len(stream)} tokens)"
        )
    return torch.tensor(stream[: n_blocks * context_length], dtype=torch.long).view(n_blocks, context_length)


@dataclass
class AnchoredLM:
    """An anchor-trained model (cached): labkit name, folder, config, base and metrics."""

    name: str
    path: Path
    config: AnchorTrainConfig
    base: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def load(self, device: str = "auto", dtype=None):
        """The trained model on the device rule's device; ``dtype="auto"`` casts to the compute
        dtype (bf16 on CUDA) for measurement-only use, ``None`` keeps float32 for training."""
        return load_causal_lm(str(self.path), device=device, dtype=dtype)


def check_base_family(folder: Path) -> str:
    """Read ``config.json`` of a base model and fail early (before any data is loaded) when its
    architecture is not one anchor inference supports: an unlisted family, or a listed one
    configured with sliding-window / hybrid caches or ALiBi (:func:`labkit.anchor.support.check_config`)."""
    from transformers import AutoConfig

    cfg_file = Path(folder) / "config.json"
    if not cfg_file.is_file():
        raise ModelError(f"{folder} has no config.json: not a Hugging Face model folder")
    model_type = json.loads(cfg_file.read_text()).get("model_type")
    if model_type not in SUPPORTED_FAMILIES:
        names = ", ".join(f"{v} ({k!r})" for k, v in SUPPORTED_FAMILIES.items())
        why = f" ({NOT_SUPPORTED[model_type]})" if model_type in NOT_SUPPORTED else ""
        raise ModelError(
            f"base model {folder} has model_type {model_type!r}{why}, which anchor "
            f"training and inference do not support; supported families: {names}"
        )
    try:
        config = AutoConfig.from_pretrained(str(folder))
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(
            f"base model {folder}: config.json cannot be read by transformers: {str(exc).splitlines()[0][:200]}"
        ) from exc
    return check_config(config, who=f"base model {folder}")


def train_anchor_lm(
    base, config: AnchorTrainConfig = AnchorTrainConfig(), *, force: bool = False, progress: bool = True, carbon=None
) -> AnchoredLM:
    """Continue training ``base`` under the AnSAN mask (or load the cached result).

    Args:
        base: a :class:`labkit.lm.TrainedLM`, ``"labkit/tiny-lm-<hash>"``, a local model folder
            or any HF causal-LM name available offline (a family of
            :data:`labkit.anchor.support.SUPPORTED_FAMILIES`).
        config: anchors (EP/AC, ``<AC>`` initialisation), token budget, optimiser.
        force: retrain even if cached.
        progress: tqdm bars.
        carbon: an open :class:`labkit.carbon.CarbonSession` (task ``train_anchor-lm-<hash>``).

    Returns:
        :class:`AnchoredLM`; ``metrics``: ``train_loss`` (mean of the last 10% of logged steps),
        ``loss_curve``, ``steps``, ``train_tokens``, ``anchors_per_1k_tokens``, ``wall_s``,
        ``energy_kwh``, ``attention`` (``"dense"`` or ``"flex"``: the path that trained the
        weights) and ``attention_reason``.

    Raises:
        ParameterError: ``config.attention="flex"`` where flex-attention cannot train (before
            any data or weights are loaded), besides bad configs.
    """
    from transformers import AutoConfig

    if not isinstance(config, AnchorTrainConfig):
        raise ParameterError(f"train_anchor_lm needs an AnchorTrainConfig, got {type(config).__name__}")
    base_ref = BaseModel.of(base)
    check_base_family(base_ref.path)
    choose_training_attention(
        config.attention, resolve_device(), AutoConfig.from_pretrained(str(base_ref.path))
    )  # fail early
    train_docs, _ = corpus_documents(config.corpus, config.heldout_fraction)
    recipe = Recipe(KIND, CODE_VERSION, config.recipe_params(), base=base_ref, data_sha256=sha256_text(*train_docs))
    cached = train_into_cache(
        recipe, lambda job: _train(job, base_ref, config, train_docs), force=force, carbon=carbon, progress=progress
    )
    stored_base = (cached.metadata.get("base") or {}).get("name", base_ref.name)
    return AnchoredLM(cached.name, cached.path, config, stored_base, cached.metrics)


def anchor_trainer(
    model,
    blocks: torch.Tensor | torch.utils.data.Dataset,
    collator,
    config: AnchorTrainConfig,
    *,
    steps: int,
    scratch: Path,
    progress: bool = False,
    callbacks: Sequence = (),
):
    """The HF ``Trainer`` of continued training: ``steps`` optimiser steps over ``blocks`` with
    ``config``'s batch size and schedule (shared by :func:`train_anchor_lm` and the benchmark)."""
    from transformers import Trainer

    args = training_arguments(
        scratch,
        max_steps=steps,
        seed=config.seed,
        progress=progress,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=min(config.warmup_steps, steps),
        lr_scheduler_type=config.lr_scheduler,
        weight_decay=0.0,
        max_grad_norm=1.0,
    )
    data = blocks if isinstance(blocks, torch.utils.data.Dataset) else _Blocks(blocks)
    return Trainer(
        model=model, args=args, train_dataset=data, data_collator=collator, callbacks=list(callbacks) or None
    )


def _train(job, base: BaseModel, config: AnchorTrainConfig, train_docs: Sequence[str]) -> dict[str, Any]:
    """Load the base, add the anchor token, train under the AnSAN mask; saves into ``job.folder``."""

    use_torch_threads()
    clock = Stopwatch().start()  # the device rule's device, synchronised at both readings
    model, tokenizer = load_causal_lm(str(base.path))
    check_supported(model)
    spec = config.spec
    add_anchor_token(model, tokenizer, spec)
    ids = anchor_token_ids(tokenizer, spec)
    context = config.context_length or int(getattr(model.config, "max_position_embeddings", 0) or 0)
    if context < 8:
        raise ParameterError("the base model has no max_position_embeddings; set AnchorTrainConfig.context_length")
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos and context > max_pos:
        raise ParameterError(
            f"AnchorTrainConfig.context_length {context} is longer than the base "
            f"model's context ({max_pos}, config.max_position_embeddings)"
        )
    steps = max(1, math.ceil(config.train_tokens / (config.batch_size * context)))
    blocks = anchor_training_blocks(
        tokenizer, train_docs, spec, context, steps * config.batch_size * context, seed=config.seed
    )
    anchors_per_1k = float(torch.isin(blocks, torch.tensor(sorted(ids))).float().mean() * 1000)
    data = blocks
    if config.probe is not None:  # the base's mix of text and recall documents, anchors added
        data = anchor_mixed_blocks(
            blocks, tokenizer, train_docs, spec, config.probe, steps * config.batch_size, context, seed=config.seed
        )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    attention, why = choose_training_attention(config.attention, device, model)
    impl = model.config._attn_implementation
    collator = attention_collator(model, attention, ids, pad_id)
    model.train()
    run = job.train(
        anchor_trainer(model, data, collator, config, steps=steps, scratch=job.scratch, progress=job.progress)
    )
    model.eval()
    if model.config._attn_implementation != impl:
        model.set_attn_implementation(impl)  # saved for anchor inference (eager/SDPA)
    save_model(model, tokenizer, job.folder)
    return {
        "train_loss": run["train_loss"],
        "loss_curve": run["loss_curve"],
        "steps": steps,
        "train_tokens": steps * config.batch_size * context,
        "context_length": context,
        "anchors_per_1k_tokens": anchors_per_1k,
        "wall_s": clock.stop(),
        "attention": attention,
        "attention_reason": why,
    }
