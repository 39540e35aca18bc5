"""Memory-first prefill: the inference path never builds a mask larger than chunk x (kept + chunk).

The mask builders the cache uses (``rule_mask``, ``bool_to_additive``) are wrapped to record every
mask they return, and a pre-hook on the decoder records the mask each forward receives together
with the number of cached slots at that moment. The dense one-pass prefill of before (an L x L
mask) is run through the same check to show that the check fails on it.
"""

from __future__ import annotations

import pytest
import torch
from tiny_models import ANCHORS, random_batch

from labkit.anchor import anchor_generate, anchor_prefill, masked_forward_logits, prefill_chunk
from labkit.anchor import cache as cache_module
from labkit.anchor.cache import DEFAULT_CHUNK
from labkit.errors import ParameterError

L = 1300  # longer than the CPU default chunk (512), so a dense mask would be ~3x too big


class MaskRecorder:
    """Shapes of every mask built on the inference path, with the cached slots of each forward."""

    def __init__(self, model, monkeypatch):
        self.built: list[tuple[int, ...]] = []
        self.forwards: list[tuple[int, int, int]] = []  # (cached slots, queries, keys)
        for name in ("rule_mask", "bool_to_additive"):
            real = getattr(cache_module, name)

            def wrapper(*args, _real=real, **kwargs):
                out = _real(*args, **kwargs)
                self.built.append(tuple(out.shape))
                return out

            monkeypatch.setattr(cache_module, name, wrapper)
        self.handle = model.get_decoder().register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        mask, cache = kwargs["attention_mask"], kwargs["past_key_values"]
        self.forwards.append((int(cache.get_seq_length()), int(mask.shape[-2]), int(mask.shape[-1])))

    def violations(self, chunk: int) -> list[str]:
        """Masks (per row) with more than chunk x (kept + chunk) elements, kept = cached slots."""
        bad = [
            f"forward with {kept} cached slots got a {q} x {k} mask"
            for kept, q, k in self.forwards
            if q * k > chunk * (kept + chunk)
        ]
        biggest_kept = max((kept for kept, _, _ in self.forwards), default=0)
        bad += [
            f"built a mask of shape {shape}"
            for shape in self.built
            if shape[-2] * shape[-1] > chunk * (biggest_kept + chunk)
        ]
        return bad


def _long_prompt(p_anchor: float = 0.05):
    ids, att, flags = random_batch(21, B=2, L=L, pad="left", p_anchor=p_anchor)
    return ids, att, flags


def test_default_prefill_is_chunked_and_bounded(make_model, monkeypatch):
    model = make_model("llama", max_pos=L + 16)
    ids, att, flags = _long_prompt()
    chunk = prefill_chunk(L, "cpu")
    assert chunk == DEFAULT_CHUNK["cpu"] == 512
    rec = MaskRecorder(model, monkeypatch)
    state = anchor_prefill(model, ids, flags, att, open_limit=None)  # chunk=None: the default
    assert len(rec.forwards) == -(-L // chunk) and rec.built
    assert rec.violations(chunk) == []
    assert max(q for _, q, _ in rec.forwards) <= chunk
    # the cache itself never held all L tokens: at most kept + one chunk
    assert max(k for _, _, k in rec.forwards) < L
    assert int(state.kept_tokens.max()) < L // 4

    rec.forwards.clear(), rec.built.clear()
    anchor_generate(
        model, None, ids, max_new_tokens=4, attention_mask=att, anchor_ids=ANCHORS, eos_token_id=-1, open_limit=None
    )
    assert rec.violations(chunk) == [] and max(q for _, q, _ in rec.forwards) <= chunk
    rec.handle.remove()


def test_the_check_fails_on_the_old_dense_prefill(make_model, monkeypatch):
    """One pass over the whole prompt (what ``chunk=None`` used to do) breaks the bound."""
    model = make_model("llama", max_pos=L + 16)
    ids, att, flags = _long_prompt()
    rec = MaskRecorder(model, monkeypatch)
    anchor_prefill(model, ids, flags, att, chunk=L, open_limit=None)
    assert rec.forwards == [(0, L, L)]
    assert rec.violations(prefill_chunk(L, "cpu"))
    rec.handle.remove()


def test_chunked_default_prefill_is_exact(make_model):
    """Same last logits and kept slots as a single dense pass under the AnSAN mask."""
    model = make_model("qwen2", max_pos=L + 16)
    ids, att, flags = _long_prompt(p_anchor=0.1)
    state = anchor_prefill(model, ids, flags, att, open_limit=None)
    ref = masked_forward_logits(model, ids, flags, att)[:, -1]
    assert (state.last_logits - ref).abs().max().item() < 2e-5
    dense = anchor_prefill(model, ids, flags, att, chunk=L, open_limit=None)
    assert torch.equal(state.kept_tokens, dense.kept_tokens)


def test_prefill_chunk_choice_and_bad_values():
    assert prefill_chunk(100, "cpu") == 100
    assert prefill_chunk(5000, "cpu") == 512
    assert prefill_chunk(5000, "cuda") == DEFAULT_CHUNK["cuda"]
    assert prefill_chunk(5000, "cpu", chunk=64) == 64
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ParameterError, match="chunk"):
            prefill_chunk(10, "cpu", chunk=bad)
