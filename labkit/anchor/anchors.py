"""Anchor tokens: which tokens close a sentence and carry its summary (AnLLM §3.1, §4.1).

Two variants, as in Pang et al. 2024 (arXiv 2402.07616):

* **EP** ("endpoint"): an existing punctuation token is the anchor (the paper uses ".").
  Every vocabulary entry whose text *ends with* one of ``AnchorSpec.symbols`` counts, so
  byte-level BPE merges such as ``"Ġend."`` or ``".\\n"``-style pieces are anchors too.
* **AC**: a new special token ``<AC>`` is appended after every sentence. Sentences are cut with
  labkit's rule-based splitter (:mod:`labkit.text`; no NLTK data download: labkit runs offline).

Nothing here touches attention; :mod:`labkit.anchor.masks` turns the boolean anchor flags into
the AnSAN mask and :mod:`labkit.anchor.cache` prunes the KV cache with them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import torch

from labkit.errors import ModelError, ParameterError
from labkit.text import sentence_spans, split_sentences

__all__ = [
    "AnchorSpec",
    "split_sentences",
    "sentence_spans",
    "insert_anchor_tokens",
    "add_anchor_token",
    "anchor_token_ids",
    "anchor_flags",
]

MODES = ("ep", "ac")
AC_INITS = ("period", "mean")


@dataclass(frozen=True)
class AnchorSpec:
    """How anchors are chosen.

    Attributes:
        mode: ``"ep"`` (punctuation tokens are anchors) or ``"ac"`` (an added ``<AC>`` token).
        symbols: EP only: punctuation that ends an anchor token (paper: ``(".",)``; the official
            harness also lists ``, ; ? !``).
        ac_token: AC only: the text of the added special token.
        ac_init: AC only: initialise the new embedding from ``"period"`` (the official code)
            or ``"mean"`` (the paper's text: mean of the embedding matrix).
    """

    mode: Literal["ep", "ac"] = "ep"
    symbols: tuple[str, ...] = (".",)
    ac_token: str = "<AC>"
    ac_init: Literal["period", "mean"] = "period"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParameterError(f"AnchorSpec.mode must be one of {MODES}, got {self.mode!r}")
        if isinstance(self.symbols, str) or not all(isinstance(s, str) and s for s in self.symbols):
            raise ParameterError(f"AnchorSpec.symbols must be a tuple of non-empty strings, got {self.symbols!r}")
        if self.mode == "ep" and not self.symbols:
            raise ParameterError("AnchorSpec.symbols is empty: EP mode needs at least one symbol")
        if not isinstance(self.ac_token, str) or not self.ac_token.strip():
            raise ParameterError(f"AnchorSpec.ac_token must be a non-empty string, got {self.ac_token!r}")
        if self.ac_init not in AC_INITS:
            raise ParameterError(f"AnchorSpec.ac_init must be one of {AC_INITS}, got {self.ac_init!r}")


def insert_anchor_tokens(text: str, spec: AnchorSpec) -> str:
    """AC: append ``spec.ac_token`` after each sentence (idempotent); EP: return ``text`` unchanged."""
    if spec.mode == "ep":
        return text
    out, last = [], 0
    token = spec.ac_token
    for _, end in sentence_spans(text):
        out.append(text[last:end])
        if not text[:end].endswith(token) and not text[end:].lstrip(" ").startswith(token):
            out.append(token)
        last = end
    out.append(text[last:])
    return "".join(out)


# --------------------------------------------------------------------------- tokenizer / model
def _single_token_id(tokenizer, text: str) -> int | None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def _vocab_size(tokenizer) -> int:
    return len(tokenizer)


def add_anchor_token(model, tokenizer, spec: AnchorSpec) -> int:
    """Make the model ready for ``spec`` and return the anchor token id.

    AC: add ``spec.ac_token`` as a special token, resize the embeddings and initialise the new
    input (and, if untied, output) row from the ``"."`` embedding (``ac_init="period"``, the
    official code) or the mean embedding (``ac_init="mean"``, the paper's text). Calling it twice
    is harmless. EP: nothing changes; the id of the first symbol's token is returned.
    """
    if spec.mode == "ep":
        tid = _single_token_id(tokenizer, spec.symbols[0])
        if tid is None:
            raise ModelError(
                f"the tokenizer has no single token for the EP anchor symbol {spec.symbols[0]!r} (AnchorSpec.symbols)"
            )
        return tid

    existing = tokenizer.convert_tokens_to_ids(spec.ac_token)
    if (
        existing is not None
        and existing != tokenizer.unk_token_id
        and existing < model.get_input_embeddings().weight.shape[0]
    ):
        return int(existing)

    tokenizer.add_special_tokens({"extra_special_tokens": [spec.ac_token]}, replace_extra_special_tokens=False)
    new_id = int(tokenizer.convert_tokens_to_ids(spec.ac_token))
    period = _single_token_id(tokenizer, ".")
    if spec.ac_init == "period" and period is None:
        raise ModelError("AnchorSpec.ac_init='period' but the tokenizer has no single '.' token; use ac_init='mean'")
    old_rows = model.get_input_embeddings().weight.shape[0]
    if new_id >= old_rows:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        matrices = [model.get_input_embeddings().weight]
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != matrices[0].data_ptr():
            matrices.append(out.weight)
        for weight in matrices:
            if spec.ac_init == "period":
                weight[new_id] = weight[period]
            else:
                weight[new_id] = weight[:old_rows].mean(dim=0)
        if out is not None and getattr(out, "bias", None) is not None and period is not None:
            out.bias[new_id] = out.bias[period] if spec.ac_init == "period" else out.bias[:old_rows].mean()
    return new_id


_IDS_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def anchor_token_ids(tokenizer, spec: AnchorSpec) -> set[int]:
    """The set of token ids that are anchors under ``spec``.

    EP: every non-special vocabulary entry whose surface text ends with one of
    ``spec.symbols``. AC: ``{id of spec.ac_token}``; a tokenizer without it raises
    :class:`~labkit.errors.ModelError` telling how to add it.
    """
    key = (spec, _vocab_size(tokenizer))
    try:
        cached = _IDS_CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None and cached[0] == key:
        return set(cached[1])

    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    if spec.mode == "ac":
        tid = tokenizer.convert_tokens_to_ids(spec.ac_token)
        vocab = tokenizer.get_vocab()
        if (
            spec.ac_token not in vocab
            or tid is None
            or (tid == tokenizer.unk_token_id and spec.ac_token != tokenizer.unk_token)
        ):
            raise ModelError(
                f"the tokenizer has no anchor token {spec.ac_token!r} "
                "(AnchorSpec.ac_token); call "
                "labkit.anchor.add_anchor_token(model, tokenizer, spec) first"
            )
        ids = {int(tid)}
    else:
        ids = set()
        for piece, tid in tokenizer.get_vocab().items():
            if tid in special:
                continue
            text = tokenizer.convert_tokens_to_string([piece])
            if text.rstrip(" ").endswith(spec.symbols):
                ids.add(int(tid))
        if not ids:
            raise ModelError(
                f"no token of the tokenizer ends with any of {spec.symbols!r} "
                "(AnchorSpec.symbols): EP mode has no anchors"
            )
    try:
        _IDS_CACHE[tokenizer] = (key, frozenset(ids))
    except TypeError:
        pass
    return ids


def anchor_flags(input_ids: torch.Tensor, tokenizer_or_ids, spec: AnchorSpec | None = None) -> torch.BoolTensor:
    """Boolean ``(B, L)`` tensor: True where ``input_ids`` holds an anchor token.

    Args:
        input_ids: ``(B, L)`` or ``(L,)`` token ids.
        tokenizer_or_ids: a tokenizer (then ``spec`` is required) or an iterable of anchor ids.
        spec: the anchor spec used with a tokenizer.
    """
    if not torch.is_tensor(input_ids):
        input_ids = torch.as_tensor(input_ids, dtype=torch.long)
    if input_ids.dim() == 1:
        input_ids = input_ids.unsqueeze(0)
    if input_ids.dim() != 2:
        raise ParameterError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    if isinstance(tokenizer_or_ids, (set, frozenset, list, tuple, range)) or torch.is_tensor(tokenizer_or_ids):
        ids: Iterable[int] = tokenizer_or_ids
    else:
        if spec is None:
            raise ParameterError("anchor_flags(input_ids, tokenizer, spec): spec is required when a tokenizer is given")
        ids = anchor_token_ids(tokenizer_or_ids, spec)
    ids_t = torch.as_tensor(sorted(int(i) for i in ids), dtype=input_ids.dtype, device=input_ids.device)
    return torch.isin(input_ids, ids_t)
