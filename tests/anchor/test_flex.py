"""The flex-attention form of the AnSAN rule equals the dense mask (every (q, k) pair, outputs).

flex-attention runs on CPU here through PyTorch's unfused eager implementation (it warns that
it materialises the scores): slow, but exact, which is what these equality tests need. Tiny
random-weight models (unit tests only).
"""

from __future__ import annotations

import warnings

import pytest
import torch
from tiny_models import ANCHORS, random_batch

from labkit.anchor.flex import (
    FlexAnchorCollator,
    anchor_block_mask,
    anchor_mask_mod,
    dense_from_mask_mod,
    flex_available,
    flex_training_available,
)
from labkit.anchor.masks import anchor_mask
from labkit.anchor.training import AnchorCollator
from labkit.errors import ParameterError

ok, why = flex_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no flex-attention in this torch build: {why}")


def _batch(seed: int, B: int, L: int, p_anchor: float, pad: str):
    gen = torch.Generator().manual_seed(seed)
    flags = torch.rand(B, L, generator=gen) < p_anchor
    att = torch.ones(B, L, dtype=torch.long)
    if pad == "holes":
        att = (torch.rand(B, L, generator=gen) < 0.7).long()
    for b in range(1, B):
        n = int(torch.randint(1, L // 2, (1,), generator=gen))
        if pad == "left":
            att[b, :n] = 0
        elif pad == "right":
            att[b, L - n :] = 0
    return flags & att.bool(), att


@pytest.mark.parametrize("pad", ["none", "left", "right", "holes"])
@pytest.mark.parametrize("p_anchor", [0.0, 0.1, 0.5, 1.0])
def test_mask_mod_equals_dense_mask_on_every_pair(pad, p_anchor):
    flags, att = _batch(hash((pad, p_anchor)) % 2**31, 3, 37, p_anchor, pad)
    att_arg = None if pad == "none" else att
    got = dense_from_mask_mod(anchor_mask_mod(flags, att_arg), 3, 37)
    ref = anchor_mask(flags, att_arg, as_bool=True)
    assert got.shape == ref.shape == (3, 1, 37, 37)
    assert torch.equal(got, ref)


def test_block_mask_skips_blocks_and_keeps_the_rule():
    """Few anchors, long rows: most 16x16 tiles are empty (what the fused kernel skips)."""
    flags, att = _batch(4, 2, 256, 0.05, "left")
    bm = anchor_block_mask(flags, att, block_size=16)
    assert bm.shape == (2, 1, 256, 256)
    assert bm.sparsity() > 40  # percent of tiles skipped; causal alone gives ~47
    dense = dense_from_mask_mod(bm.mask_mod, 2, 256)
    assert torch.equal(dense, anchor_mask(flags, att, as_bool=True))
    with pytest.raises(ParameterError, match="block_size"):
        anchor_block_mask(flags, att, block_size=0)


@pytest.mark.parametrize(
    "B,L,block,p_anchor,pad",
    [
        (3, 37, 16, 0.1, "right"),
        (2, 256, 16, 0.05, "left"),
        (2, 200, 64, 0.5, "holes"),
        (1, 300, 128, 0.0, "none"),
        (2, 130, 16, 1.0, "left"),
    ],
)
def test_row_by_row_block_mask_equals_pytorch_build(B, L, block, p_anchor, pad):
    """labkit builds the BlockMask one row of query tiles at a time (never B x L x L); every
    field equals PyTorch's whole-grid create_block_mask (counts, tile indices, both directions),
    including lengths that are not a multiple of the tile."""
    from torch.nn.attention.flex_attention import create_block_mask

    flags, att = _batch(L, B, L, p_anchor, pad)
    att_arg = None if pad == "none" else att
    got = anchor_block_mask(flags, att_arg, block_size=block)
    ref = create_block_mask(anchor_mask_mod(flags, att_arg), B, None, L, L, device="cpu", BLOCK_SIZE=block)
    assert got.shape == ref.shape and got.seq_lengths == ref.seq_lengths == (L, L)
    for field in (
        "kv_num_blocks",
        "kv_indices",
        "full_kv_num_blocks",
        "full_kv_indices",
        "q_num_blocks",
        "q_indices",
        "full_q_num_blocks",
        "full_q_indices",
    ):
        assert torch.equal(getattr(got, field), getattr(ref, field)), field


def test_flex_attention_output_equals_sdpa_under_dense_mask():
    from torch.nn.attention.flex_attention import flex_attention
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    flags, att = _batch(5, 2, 200, 0.08, "left")  # 200: not a multiple of the block size
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 200, 16, generator=gen) for _ in range(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "flex_attention called without torch.compile()"
        got = flex_attention(q, k, v, block_mask=anchor_block_mask(flags, att, block_size=64))
    ref = sdpa(q, k, v, attn_mask=anchor_mask(flags, att, as_bool=True))
    causal = sdpa(q, k, v, is_causal=True)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    assert (got - causal).abs().max() > 1e-2  # the anchor rule matters here


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_model_with_flex_block_mask_equals_dense_mask(family, make_config, monkeypatch):
    """A transformers model with attn_implementation='flex_attention' and the BlockMask from
    FlexAnchorCollator gives the logits of the SDPA model under AnchorCollator's dense mask.

    transformers compiles flex-attention on first use (minutes on CPU); the test swaps in the
    eager kernel, the same maths.
    """
    import transformers.integrations.flex_attention as hf_flex
    from torch.nn.attention.flex_attention import flex_attention
    from transformers import AutoModelForCausalLM

    def eager_flex(query, key, value, training=False, **kwargs):
        return flex_attention(query, key, value, **kwargs)

    monkeypatch.setattr(hf_flex, "compile_friendly_flex_attention", eager_flex)
    torch.manual_seed(0)
    dense_model = AutoModelForCausalLM.from_config(make_config(family, attn="sdpa")).eval()
    flex_model = AutoModelForCausalLM.from_config(make_config(family, attn="flex_attention")).eval()
    flex_model.load_state_dict(dense_model.state_dict())
    ids, att, _ = random_batch(7, B=3, L=40, pad="right")
    features = [{"input_ids": ids[b][att[b].bool()].tolist()} for b in range(3)]
    dense_batch = AnchorCollator(ANCHORS, pad_id=0)(features)
    flex_batch = FlexAnchorCollator(ANCHORS, pad_id=0, block_size=16)(features)
    assert torch.equal(dense_batch["input_ids"], flex_batch["input_ids"])
    assert torch.equal(dense_batch["labels"], flex_batch["labels"])
    assert torch.equal(dense_batch["position_ids"], flex_batch["position_ids"])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = dense_model(**{k: v for k, v in dense_batch.items() if k != "labels"}).logits
        got = flex_model(**{k: v for k, v in flex_batch.items() if k != "labels"}).logits
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    can_train, reason = flex_training_available("cpu")
    assert not can_train and "backward" in reason  # torch 2.13: no flex backward on CPU


def test_collator_bad_input():
    with pytest.raises(ParameterError, match="anchor id"):
        FlexAnchorCollator([], pad_id=0)
    with pytest.raises(ParameterError, match="pad_id"):
        FlexAnchorCollator(ANCHORS, pad_id=None)
    coll = FlexAnchorCollator(ANCHORS, pad_id=0)
    with pytest.raises(ParameterError, match="feature 1"):
        coll([{"input_ids": [5, 6]}, {"input_ids": []}])
    with pytest.raises(ParameterError, match="empty batch"):
        coll([])
