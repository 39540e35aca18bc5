"""Pruned-cache anchor inference == one full forward under the AnSAN mask, per family.

Tiny random-weight configs (unit tests only). Every family runs with batch >= 2 and padding.
"""

from __future__ import annotations

import warnings

import pytest
import torch

# test_training.py imports these names from here
from tiny_models import ANCHORS, FAMILIES, VOCAB, random_batch, tiny_model  # noqa: F401

from labkit.anchor import (
    SUPPORTED_FAMILIES,
    AnchorCacheWarning,
    AnchorSpec,
    anchor_cache_logits,
    anchor_flags,
    anchor_generate,
    anchor_prefill,
    anchor_step,
    check_supported,
    full_cache_generate,
    kv_bytes_per_token,
    kv_cache_bytes,
    masked_forward_logits,
    no_cache_generate,
)
from labkit.errors import ModelError, ParameterError

ATOL = 2e-5


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("family", FAMILIES)
def test_pruned_cache_logits_equal_masked_full_pass(family, attn, make_model):
    """THE key test: pruned-cache logits == full forward under the anchor mask (same positions)."""
    model = make_model(family, attn)
    for pad, seed in (("left", 1), ("right", 2)):
        ids, att, flags = random_batch(seed, pad=pad)
        ref = masked_forward_logits(model, ids, flags, att)
        real = att.bool()
        causal = model(input_ids=ids, attention_mask=att, position_ids=(att.cumsum(1) - 1).clamp(min=0)).logits
        assert (ref - causal)[real].abs().max() > 1e-3  # the mask matters: equality is not vacuous
        for chunk in (1, 7, 64):
            got = anchor_cache_logits(model, ids, flags, att, chunk=chunk)
            assert got.shape == ref.shape
            err = (got - ref)[real].abs().max().item()
            assert err < ATOL, (family, attn, pad, chunk, err)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefill_prunes_to_anchors_plus_open_sentence(family, make_model):
    model = make_model(family)
    ids, att, flags = random_batch(5, pad="left")
    state = anchor_prefill(model, ids, flags, att)
    for b in range(ids.shape[0]):
        real = att[b].bool()
        f = flags[b][real]
        last = int(f.nonzero().max()) if f.any() else -1
        expected = int(f.sum()) + (int(real.sum()) - 1 - last)
        assert int(state.kept_tokens[b]) == expected
        # kept absolute positions: the anchors, then every token after the last anchor
        kept = sorted(state.pos[b][state.valid[b]].tolist())
        anchors = f.nonzero()[:, 0].tolist()
        assert kept == anchors + list(range(last + 1, int(real.sum())))
    L_cache = state.valid.shape[1]
    for layer in state.cache.layers:
        assert layer.keys.shape[2] == L_cache == layer.values.shape[2]
    assert state.kv_bytes() == kv_cache_bytes(state.cache)
    assert state.kv_bytes() == kv_bytes_per_token(model) * ids.shape[0] * L_cache


@pytest.mark.parametrize("family", FAMILIES)
def test_step_by_step_decoding_matches_masked_pass(family, make_model):
    """Feeding fixed tokens one at a time (with anchors among them) == one masked pass."""
    model = make_model(family)
    ids, att, flags = random_batch(9, B=2, L=24, pad="left")
    cont = torch.tensor([[10, 3, 12, 13, 7, 15], [20, 21, 3, 3, 24, 25]])
    state = anchor_prefill(model, ids, flags, att, chunk=5)
    steps = [state.last_logits.clone()]
    sizes = [state.cache_slots]
    for t in range(cont.shape[1]):
        steps.append(anchor_step(model, state, cont[:, t], ANCHORS).clone())
        sizes.append(state.cache_slots)
    full_ids = torch.cat([ids, cont], dim=1)
    full_att = torch.cat([att, torch.ones_like(cont)], dim=1)
    full_flags = anchor_flags(full_ids, ANCHORS) & full_att.bool()
    ref = masked_forward_logits(model, full_ids, full_flags, full_att)
    L = ids.shape[1]
    for t, got in enumerate(steps):
        assert (got - ref[:, L - 1 + t]).abs().max().item() < ATOL, t
    # generating anchor 3 at step 2 (row 0) shrinks the cache again
    assert min(sizes[2:]) < max(sizes)


@pytest.mark.parametrize("family", FAMILIES)
def test_anchor_generate_equals_masked_recompute_and_rows_are_independent(family, make_model):
    model = make_model(family)
    ids, att, flags = random_batch(11, B=3, L=30, pad="left")
    anchors = set(range(3, VOCAB, 4))  # a quarter of the vocabulary, so anchors get generated
    got, stats = anchor_generate(model, None, ids, max_new_tokens=12, attention_mask=att, anchor_ids=anchors, chunk=8)
    ref, _ = no_cache_generate(model, None, ids, max_new_tokens=12, attention_mask=att, anchor_ids=anchors)
    assert torch.equal(got, ref)
    assert any(int(t) in anchors for t in got.flatten())
    assert stats["kv_reduction_after_prefill"] > 0
    assert stats["kv_bytes"] < stats["full_kv_bytes"]
    # each row alone (no padding) gives the same continuation as inside the batch
    for b in range(ids.shape[0]):
        row = ids[b][att[b].bool()][None]
        alone, _ = anchor_generate(model, None, row, max_new_tokens=12, anchor_ids=anchors)
        assert torch.equal(alone[0], got[b])


def test_full_cache_generate_matches_causal_recompute(make_model):
    model = make_model("llama")
    ids, att, _ = random_batch(4, B=2, L=20, pad="left")
    a, sa = full_cache_generate(model, None, ids, max_new_tokens=6, attention_mask=att)
    b, _ = no_cache_generate(model, None, ids, max_new_tokens=6, attention_mask=att)
    assert torch.equal(a, b)
    assert sa["kv_bytes"] == kv_bytes_per_token(model) * 2 * (20 + 5)
    with pytest.raises(ParameterError, match="left padding"):
        _, _, _ = random_batch(4, B=2, L=20, pad="right")
        r_ids, r_att, _ = random_batch(4, B=2, L=20, pad="right")
        full_cache_generate(model, None, r_ids, max_new_tokens=2, attention_mask=r_att)


def test_eos_stops_rows(make_model):
    model = make_model("llama")
    ids, att, _ = random_batch(6, B=2, L=16)
    free, _ = anchor_generate(model, None, ids, max_new_tokens=8, attention_mask=att, anchor_ids=ANCHORS)
    eos = int(free[0, 2])
    got, _ = anchor_generate(
        model, None, ids, max_new_tokens=8, attention_mask=att, anchor_ids=ANCHORS, eos_token_id=eos
    )
    first = (free[0] == eos).nonzero()[0, 0]
    assert torch.equal(got[0, : first + 1], free[0, : first + 1])
    # finished rows are padded; with no tokenizer the pad id is the eos id (HF convention)
    assert (got[0, first + 1 :] == eos).all()


# ----------------------------------------------------------------------------- bad input
def test_unsupported_architecture_names_supported_families():
    from transformers import BloomConfig, BloomForCausalLM

    # BLOOM (ALiBi, no position ids) stays unsupported; GPT-2 joined the supported families
    model = BloomForCausalLM(BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=1, n_head=2))
    with pytest.raises(ModelError) as err:
        anchor_prefill(model, torch.ones(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.bool))
    for name in SUPPORTED_FAMILIES.values():
        assert name in str(err.value)
    assert "bloom" in str(err.value)


def test_unsupported_attention_and_sliding_window(make_model):
    model = make_model("llama")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ModelError, match="attn_implementation"):
        check_supported(model)
    qwen = make_model("qwen2")
    qwen.config.use_sliding_window, qwen.config.sliding_window = True, 8
    with pytest.raises(ModelError, match="use_sliding_window"):
        check_supported(qwen)


def test_prompt_without_anchor_warns_caps_or_errors(make_model):
    model = make_model("llama")
    ids = torch.randint(8, VOCAB, (2, 40), generator=torch.Generator().manual_seed(0))
    flags = torch.zeros_like(ids, dtype=torch.bool)
    with pytest.warns(AnchorCacheWarning, match="open_limit=16"):
        state = anchor_prefill(model, ids, flags, open_limit=16, chunk=8)
    assert state.kept_tokens.tolist() == [40, 40]
    state = anchor_prefill(model, ids, flags, open_limit=16, open_policy="cap", chunk=8)
    assert state.kept_tokens.max() <= 16 and state.capped_tokens > 0
    with pytest.raises(ParameterError, match="open_limit"):
        anchor_prefill(model, ids, flags, open_limit=16, open_policy="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        anchor_prefill(model, ids, flags, open_limit=None)  # limit off: silent, exact
    with pytest.raises(ParameterError, match="open_policy"):
        anchor_prefill(model, ids, flags, open_policy="ignore")
    _, stats = anchor_generate(model, None, ids, max_new_tokens=2, anchor_ids={3}, open_limit=None)
    assert stats["rows_without_anchor_in_prompt"] == [0, 1]


def test_too_long_for_context(make_model):
    model = make_model("llama", max_pos=32)
    ids = torch.full((1, 40), 9)
    with pytest.raises(ParameterError, match="max_position_embeddings"):
        anchor_prefill(model, ids, torch.zeros_like(ids, dtype=torch.bool))
    with pytest.raises(ParameterError, match="max_new_tokens"):
        anchor_generate(model, None, ids[:, :30], max_new_tokens=5, anchor_ids=ANCHORS)
    with pytest.raises(ParameterError, match="max_new_tokens"):
        full_cache_generate(model, None, ids[:, :30], max_new_tokens=5)


def test_empty_rows_and_bad_shapes(make_model):
    model = make_model("llama")
    ids, att, flags = random_batch(3, B=2, L=10)
    att[1] = 0
    with pytest.raises(ParameterError, match=r"rows \[1\]"):
        anchor_prefill(model, ids, flags, att)
    with pytest.raises(ParameterError, match=r"rows \[1\]"):
        anchor_generate(model, None, ids, max_new_tokens=2, attention_mask=att, anchor_ids=ANCHORS)
    with pytest.raises(ParameterError, match="anchor_flags"):
        anchor_prefill(model, ids, flags[:, :5])
    with pytest.raises(ParameterError, match="empty"):
        anchor_prefill(model, ids[:, :0], flags[:, :0])
    with pytest.raises(ParameterError, match="max_new_tokens"):
        anchor_generate(model, None, ids, max_new_tokens=0, anchor_ids=ANCHORS)


def test_text_prompts_with_tokenizer_ac_mode(make_tokenizer, make_llama):
    """End to end with a real (tiny, in-process) tokenizer and an added <AC> token."""
    from labkit.anchor.anchors import add_anchor_token

    tok = make_tokenizer()
    model = make_llama(len(tok))
    spec = AnchorSpec(mode="ac")
    ac = add_anchor_token(model, tok, spec)
    prompts = ["First demo. Second demo. Third one", "Speak, speak! Go home."]
    got, stats = anchor_generate(model, tok, prompts, spec, max_new_tokens=4, insert_anchors=True)
    assert got.shape[0] == 2
    assert stats["kept_after_prefill"][1] == 2  # two <AC> anchors, nothing open
    assert stats["kv_reduction_after_prefill"] > 0.5
    ref, _ = no_cache_generate(model, tok, [p for p in prompts], max_new_tokens=4)
    assert ref.shape == got.shape
    del ac
