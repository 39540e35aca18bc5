"""Byte-level BPE tokenizers trained with ``tokenizers``, cached by corpus hash and vocab size.

The scaling study trains many model sizes on one corpus; they all share one tokenizer (and one
encoded token array), so both are cached under ``$LABKIT_CACHE_DIR/tokenizers``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labkit.errors import ParameterError
from labkit.io import atomic_path, sha256_text
from labkit.paths import cache_dir

SPECIAL_TOKENS = {"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}
TOKENIZER_VERSION = "bpe-v1"
MIN_VOCAB = 256 + len(SPECIAL_TOKENS) + 1  # the byte alphabet + specials + at least one merge


def tokenizer_dir(text_sha256: str, vocab_size: int) -> Path:
    key = sha256_text(TOKENIZER_VERSION, text_sha256, str(vocab_size))[:16]
    return cache_dir("tokenizers") / f"bpe-{vocab_size}-{key}"


def _atomic_dir(final: Path, build) -> Path:
    """Build a folder in a temp dir beside ``final`` and rename it into place (race-safe)."""
    if final.is_dir():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        build(tmp)
        try:
            os.replace(tmp, final)
        except OSError:  # another process won the race: keep theirs
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def train_tokenizer(text: str, vocab_size: int = 4096, *, text_sha256: str | None = None):
    """A ``PreTrainedTokenizerFast`` (byte-level BPE, specials ``<s> </s> <pad> <unk>``).

    Cached: the same text and vocab size load the saved tokenizer instead of retraining.
    """
    from transformers import PreTrainedTokenizerFast

    if not isinstance(vocab_size, int) or vocab_size < MIN_VOCAB:
        raise ParameterError(
            f"vocab_size must be an int >= {MIN_VOCAB} (byte alphabet + special tokens), got {vocab_size!r}"
        )
    if not text.strip():
        raise ParameterError("cannot train a tokenizer on empty text")
    sha = text_sha256 or sha256_text(text)
    final = tokenizer_dir(sha, vocab_size)

    def build(folder: Path) -> None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE(unk_token=SPECIAL_TOKENS["unk_token"]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=2,
            special_tokens=list(SPECIAL_TOKENS.values()),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        chunk = 1 << 16
        tok.train_from_iterator((text[i : i + chunk] for i in range(0, len(text), chunk)), trainer)
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)
        fast.save_pretrained(str(folder))

    _atomic_dir(final, build)
    return PreTrainedTokenizerFast.from_pretrained(str(final))


def encode_documents(
    tokenizer, docs: Sequence[str], *, cache_key: str | None = None, progress: bool = False
) -> np.ndarray:
    """Token ids of ``docs`` joined into one stream, each document followed by ``</s>``.

    With ``cache_key`` (e.g. tokenizer folder + text hash) the array is cached as ``.npy``.
    """
    path = None
    if cache_key is not None:
        path = cache_dir("tokenizers", "encoded") / f"{sha256_text(cache_key)[:20]}.npy"
        if path.is_file():
            return np.load(path)
    dtype = np.uint16 if len(tokenizer) <= 65535 else np.int32
    eos = tokenizer.eos_token_id
    parts = []
    batch = 256
    iterator = range(0, len(docs), batch)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc="tokenizing", unit="batch")
    for start in iterator:
        enc = tokenizer(list(docs[start : start + batch]), add_special_tokens=False)["input_ids"]
        for ids in enc:
            parts.append(np.asarray(ids + [eos], dtype=dtype))
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    if path is not None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.save(handle, ids)
    return ids
