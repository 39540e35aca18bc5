"""The AnSAN rule as a flex-attention ``mask_mod`` / ``BlockMask`` (no dense ``L x L`` mask).

Why: the dense additive mask (:func:`labkit.anchor.masks.anchor_mask`) costs ``B x L x L``
elements per batch, which rules out AnLLM's 4k-8k training contexts on one GPU. PyTorch's
flex-attention takes the rule as a predicate over ``(batch, head, q_idx, kv_idx)`` instead and
stores only which ``block x block`` tiles are empty, full or partial (``BlockMask``); the fused
kernel then skips empty tiles. The predicate here reads three ``(B, L)`` tensors (sentence ids,
anchor flags, padding) and states exactly the rule of :func:`labkit.anchor.masks.rule_mask`:

``visible(q, k) = valid[k] and k <= q and (seq[k] == seq[q] or (anchor[k] and not anchor[q]))``,
and a padded query sees only itself (so no row is empty, as in the dense mask).

The dense mask stays the reference (tests compare every ``(q, k)`` pair and attention outputs).
transformers 5.x passes a ``BlockMask`` given as ``attention_mask`` straight to its
``flex_attention`` implementation (models loaded with ``attn_implementation="flex_attention"``),
so continued training needs only a collator that emits one (:class:`FlexAnchorCollator`).

Mask building: :func:`anchor_block_mask` evaluates the predicate one row of query tiles at a
time (``B x block x L`` booleans at once) and hands the tile counts to
``BlockMask.from_kv_blocks``; PyTorch's eager ``create_block_mask`` would evaluate the whole
``B x L x L`` grid with ``int64`` gathers (about 300 MiB at L=4096, B=1, more than the dense
float mask it replaces).

Limits: flex-attention needs ``torch.compile`` to be fast and memory-lean; without it
(``torch.nn.attention.flex_attention.flex_attention`` called eagerly) PyTorch materialises the
scores, so on CPU the flex path is a correctness path unless inductor can compile it (a C++
compiler; the first compile of each shape took 22-35 s on 2 cores at 1k-4k, forward only).
Training needs its backward, which PyTorch (<= 2.13) runs on CUDA/XPU only:
:func:`choose_training_attention` picks the path continued training takes.

Not used for prefill, on purpose: anchor inference (:mod:`labkit.anchor.cache`) already encodes
a prompt in chunks whose masks are ``chunk x (kept + chunk)`` (MiB, not GiB), so flex could only
save attention work by skipping empty tiles, and AnSAN tiles are almost never empty: every
earlier anchor is visible to every non-anchor query, and with an anchor every ~20-30 tokens
nearly every ``128 x 128`` tile holds one, so it is partial. Measured on the training
benchmark's BlockMasks (anchors at 5%): 43.8% of tiles skipped at 1k and 50.4% at 4k, where the
causal rule alone skips 43.8% and 48.4%; the kept anchors of a prefill chunk are visible to
every non-anchor query, so their tiles are never empty. A flex prefill would add a
``BlockMask`` per chunk of a new ``(Lq, Lk)`` shape (the kept-key count changes after every
chunk, so flex-attention recompiles until ``torch.compile`` marks the shapes dynamic) and a
switch back to eager/SDPA for the pruned-cache decode (:func:`labkit.anchor.support.check_config`
accepts only those). Nothing to win there: prefill stays on eager/SDPA with its small dense masks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from labkit.anchor.anchors import anchor_flags as flags_of
from labkit.anchor.collators import AnchorCollator, pad_batch
from labkit.anchor.masks import _check_flags, position_ids_from_attention_mask, sequence_ids
from labkit.device import resolve_device
from labkit.errors import ModelError, ParameterError

__all__ = [
    "flex_available",
    "flex_training_available",
    "choose_training_attention",
    "TRAINING_ATTENTION",
    "attention_collator",
    "anchor_mask_mod",
    "anchor_block_mask",
    "dense_from_mask_mod",
    "FlexAnchorCollator",
]

#: Values of ``AnchorTrainConfig.attention``: ``"auto"`` (flex where it can train, else dense),
#: ``"dense"`` (the reference: additive ``(B, 1, L, L)`` mask, eager/SDPA) or ``"flex"``.
TRAINING_ATTENTION = ("auto", "dense", "flex")
_DROPOUT_FIELDS = ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob")


def flex_available() -> tuple[bool, str]:
    """Whether this torch build has flex-attention (``(True, "")`` or ``(False, reason)``)."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention  # noqa: F401
    except ImportError as err:  # torch < 2.5
        return False, f"torch {torch.__version__} has no torch.nn.attention.flex_attention ({err})"
    return True, ""


def flex_training_available(device: torch.device | str) -> tuple[bool, str]:
    """Whether flex-attention can *train* (run backward) on ``device``'s type.

    PyTorch (up to 2.13 at least) runs flex-attention's backward only on CUDA (and XPU); on CPU
    it raises ``NotImplementedError``, so continued training on CPU keeps the dense mask.
    """
    ok, why = flex_available()
    if not ok:
        return False, why
    kind = torch.device(device).type
    if kind in ("cpu", "mps"):
        return False, (
            f"torch {torch.__version__} has no flex-attention backward on {kind} "
            "(forward only); train with the dense mask there"
        )
    return True, ""


def _model_flex_reason(model_or_config) -> str:
    """Why this model cannot train with flex-attention ("" when it can)."""
    from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, PretrainedConfig

    if isinstance(model_or_config, PretrainedConfig):
        config = model_or_config
        cls = MODEL_FOR_CAUSAL_LM_MAPPING.get(type(config), None)
    else:
        config, cls = model_or_config.config, type(model_or_config)
    name = cls.__name__ if cls is not None else getattr(config, "model_type", "?")
    if cls is None or not getattr(cls, "_supports_flex_attn", False):
        return f"{name} has no flex-attention implementation in transformers"
    for field in _DROPOUT_FIELDS:
        rate = getattr(config, field, 0.0) or 0.0
        if isinstance(rate, (int, float)) and rate > 0:
            return f"{name} uses {field}={rate}, which transformers' flex-attention refuses"
    return ""


def choose_training_attention(requested: str, device: torch.device | str, model_or_config=None) -> tuple[str, str]:
    """The attention path continued training takes: ``("dense" | "flex", why)``.

    ``"dense"`` always gives dense; ``"auto"`` gives flex when flex-attention can train here
    (backward on ``device``, :func:`flex_training_available`; a model class with a flex
    implementation and no attention dropout, when ``model_or_config`` is given) and dense
    otherwise, with the reason; ``"flex"`` where it cannot run raises one
    :class:`ParameterError` with that reason (before any data or weights are loaded).
    """
    if requested not in TRAINING_ATTENTION:
        raise ParameterError(f"AnchorTrainConfig.attention must be one of {TRAINING_ATTENTION}, got {requested!r}")
    if requested == "dense":
        return "dense", "attention='dense' requested"
    ok, why = flex_training_available(device)
    if ok and model_or_config is not None:
        why = _model_flex_reason(model_or_config)
        ok = not why
    if ok:
        return "flex", f"flex-attention trains on {torch.device(device).type}"
    if requested == "flex":
        raise ParameterError(
            f"AnchorTrainConfig.attention='flex' cannot run here: {why}; use attention='dense' or 'auto'"
        )
    return "dense", why


def _metadata(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None):
    flags, valid = _check_flags(anchor_flags, attention_mask)
    return sequence_ids(flags), flags, valid


def anchor_mask_mod(anchor_flags: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Callable:
    """A flex-attention ``mask_mod(b, h, q_idx, kv_idx) -> bool`` for a (padded) batch.

    Args:
        anchor_flags: ``(B, L)`` bool, True at anchors (padding is never an anchor).
        attention_mask: optional ``(B, L)`` 0/1 padding mask (left, right or holes).

    The returned function closes over ``(B, L)`` tensors on ``anchor_flags``' device; build the
    ``BlockMask`` on that device.
    """
    seq, anchor, valid = _metadata(anchor_flags, attention_mask)

    def mask_mod(b, h, q_idx, kv_idx):  # noqa: ARG001 (flex-attention calls mask_mod(b, h, q, kv))
        q_valid = valid[b, q_idx]
        rule = (
            (kv_idx <= q_idx)
            & valid[b, kv_idx]
            & ((seq[b, kv_idx] == seq[b, q_idx]) | (anchor[b, kv_idx] & ~anchor[b, q_idx]))
        )
        return (q_valid & rule) | (~q_valid & (kv_idx == q_idx))

    return mask_mod


def anchor_block_mask(
    anchor_flags: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    *,
    block_size: int = 128,
    device: torch.device | str | None = None,
    compile: bool = False,
):
    """The AnSAN rule as a ``BlockMask`` of shape ``(B, 1, L, L)`` (heads broadcast).

    The eager build evaluates the predicate one row of query tiles at a time (``B x block x L``
    booleans at once, never ``B x L x L``); ``compile=True`` uses PyTorch's ``torch.compile``
    build instead (``create_block_mask(_compile=True)``: one compilation per shape).
    """
    ok, why = flex_available()
    if not ok:
        raise ParameterError(f"flex-attention masks need torch >= 2.5: {why}")
    from torch.nn.attention.flex_attention import create_block_mask

    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ParameterError(f"block_size must be a positive int, got {block_size!r}")
    device = torch.device(device) if device is not None else anchor_flags.device
    anchor_flags = anchor_flags.to(device)
    attention_mask = None if attention_mask is None else attention_mask.to(device)
    B, L = anchor_flags.shape
    mod = anchor_mask_mod(anchor_flags, attention_mask)
    if compile:
        return create_block_mask(mod, B, None, L, L, device=device, BLOCK_SIZE=block_size, _compile=True)
    return _block_mask_by_rows(mod, B, L, block_size, device)


def _block_mask_by_rows(mask_mod: Callable, B: int, L: int, block: int, device: torch.device):
    """``create_block_mask`` (eager) without its ``B x L x L`` grid: one row of query tiles at a
    time. Same tiles as PyTorch's build (the grid is padded with False to whole tiles, a tile is
    full when every element is visible, partial when some are); hand-written because PyTorch
    offers only the whole-grid eager build or a ``torch.compile`` of it."""
    from torch.nn.attention.flex_attention import BlockMask

    n = -(-L // block)
    b = torch.arange(B, device=device)[:, None, None]
    kv = torch.arange(L, device=device)[None, None, :]
    partial = torch.zeros(B, 1, n, n, dtype=torch.int32, device=device)
    full = torch.zeros_like(partial)
    for row in range(n):
        q = torch.arange(row * block, min(L, (row + 1) * block), device=device)[None, :, None]
        tile = mask_mod(b, 0, q, kv).expand(B, q.shape[1], L)
        tile = torch.nn.functional.pad(tile, (0, n * block - L, 0, block - q.shape[1]))
        count = tile.view(B, block, n, block).sum(dim=(1, 3))
        full[:, 0, row] = count == block * block
        partial[:, 0, row] = (count > 0) & (count < block * block)

    def ordered(dense: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (
            dense.sum(-1).to(torch.int32),
            torch.argsort(dense, dim=-1, descending=True, stable=True).to(torch.int32),
        )

    return BlockMask.from_kv_blocks(
        *ordered(partial), *ordered(full), BLOCK_SIZE=block, mask_mod=mask_mod, seq_lengths=(L, L)
    )


def dense_from_mask_mod(
    mask_mod: Callable, batch: int, length: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Evaluate ``mask_mod`` on every ``(q, k)`` pair: boolean ``(B, 1, L, L)`` (for tests)."""
    from torch.nn.attention.flex_attention import create_mask

    device = device if device is not None else resolve_device()
    return create_mask(mask_mod, batch, 1, length, length, device=device)


class FlexAnchorCollator:
    """HF data collator like :class:`labkit.anchor.collators.AnchorCollator`, with a ``BlockMask``.

    Right-pads a batch; returns ``input_ids``, ``position_ids`` (0 at each row's first token),
    ``labels`` (-100 at padding) and ``attention_mask`` = :func:`anchor_block_mask` built on
    ``device`` (the model's: Trainer moves tensors, not BlockMasks). Use it with a model loaded
    with ``attn_implementation="flex_attention"``.
    """

    def __init__(
        self,
        anchor_ids: Iterable[int],
        pad_id: int,
        device: torch.device | str | None = None,
        block_size: int = 128,
        compile_mask: bool = False,
    ):
        self.anchor_ids = sorted({int(i) for i in anchor_ids})
        if not self.anchor_ids:
            raise ParameterError("FlexAnchorCollator needs at least one anchor id (anchor_ids is empty)")
        if pad_id is None:
            raise ParameterError("FlexAnchorCollator: pad_id is None; set tokenizer.pad_token")

        self.pad_id = int(pad_id)
        self.device = torch.device(device if device is not None else resolve_device())
        self.block_size, self.compile_mask = block_size, compile_mask

    def __call__(self, features: Sequence[dict]) -> dict:
        input_ids, label_t, att = pad_batch(features, self.pad_id, "FlexAnchorCollator")
        flags = flags_of(input_ids, self.anchor_ids) & att.bool()
        return {
            "input_ids": input_ids,
            "attention_mask": anchor_block_mask(
                flags, att, block_size=self.block_size, device=self.device, compile=self.compile_mask
            ),
            "position_ids": position_ids_from_attention_mask(att),
            "labels": label_t,
        }


def attention_collator(model, attention: str, anchor_ids: Iterable[int], pad_id: int):
    """Put ``model`` on the attention path ``attention`` (``"dense"`` / ``"flex"``) and return
    the collator that feeds it its AnSAN mask: the one place continued training
    (:mod:`labkit.anchor.training`) and its benchmark do so.

    Flex switches the model to ``attn_implementation="flex_attention"`` in place (set it back
    before saving: anchor inference needs eager/SDPA) and builds each ``BlockMask`` on the
    model's device, tile row by tile row (:func:`anchor_block_mask`).
    """

    if attention == "dense":
        return AnchorCollator(anchor_ids, pad_id, dtype=next(model.parameters()).dtype)
    if attention != "flex":
        raise ParameterError(f"attention path must be 'dense' or 'flex', got {attention!r}")
    model.set_attn_implementation("flex_attention")
    if model.config._attn_implementation != "flex_attention":
        raise ModelError(
            f"{type(model).__name__} could not be switched to flex_attention "
            f"(still {model.config._attn_implementation!r}); use attention='dense'"
        )
    return FlexAnchorCollator(anchor_ids, pad_id, device=next(model.parameters()).device)
