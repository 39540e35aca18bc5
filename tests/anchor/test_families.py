"""Every family of ``SUPPORTED_FAMILIES`` is exact, trains, and everything else is refused up front.

The matrix runs over :data:`labkit.anchor.support.FAMILIES` itself (each family's tiny
random-weight configs x eager/SDPA x chunk sizes 1/7/64 x left/right padding x batch 3), so a
family cannot be on the allow-list without its exactness test. Tiny configs: unit tests only.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
from tiny_models import VOCAB, family_cases, family_model, random_batch

from labkit.anchor import anchor_cache_logits, anchor_prefill, masked_forward_logits
from labkit.anchor.support import (
    FAMILIES,
    NOT_SUPPORTED,
    SUPPORTED_FAMILIES,
    check_supported,
    kv_bytes_per_token,
    lm_logits,
)
from labkit.errors import ModelError

ATOL = 2e-5
CASES = family_cases()
MIRROR = os.environ.get("LABKIT_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(eos|bos|pad)_token_id.*")
        yield


def test_table_is_the_allow_list():
    assert len(SUPPORTED_FAMILIES) >= 10
    assert set(SUPPORTED_FAMILIES) == set(FAMILIES)
    assert all(FAMILIES[k].tiny for k in FAMILIES)  # every family has a config the matrix runs
    assert not set(NOT_SUPPORTED) & set(SUPPORTED_FAMILIES)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("model_type,variant", CASES, ids=[f"{m}-{v}" for m, v in CASES])
def test_pruned_cache_logits_equal_masked_full_pass(model_type, variant, attn):
    """The allow-list's warrant: pruned-cache logits == one full pass under the AnSAN mask."""
    model = family_model(model_type, variant, attn)
    assert check_supported(model) == SUPPORTED_FAMILIES[model_type]
    for pad, seed in (("left", 1), ("right", 2)):
        ids, att, flags = random_batch(seed, B=3, L=40, pad=pad)
        real = att.bool()
        ref = masked_forward_logits(model, ids, flags, att)
        causal = model(input_ids=ids, attention_mask=att, position_ids=(att.cumsum(1) - 1).clamp(min=0)).logits
        assert (ref - causal)[real].abs().max() > 1e-3  # the anchor mask really reached attention
        for chunk in (1, 7, 64):
            got = anchor_cache_logits(model, ids, flags, att, chunk=chunk)
            err = (got - ref)[real].abs().max().item()
            assert err < ATOL, (model_type, variant, attn, pad, chunk, err)
    # the byte rule the tables use is what the pruned cache really holds
    state = anchor_prefill(model, ids, flags, att, chunk=7)
    assert state.kv_bytes() == kv_bytes_per_token(model) * ids.shape[0] * state.cache_slots
    assert int(state.kept_tokens.max()) < int(att.sum(1).max())  # and it was pruned


@pytest.mark.parametrize("model_type,variant", CASES, ids=[f"{m}-{v}" for m, v in CASES])
def test_lm_logits_is_the_models_own_head(model_type, variant):
    model = family_model(model_type, variant)
    ids = torch.randint(8, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))
    hidden = model.get_decoder()(input_ids=ids).last_hidden_state
    assert torch.allclose(lm_logits(model, hidden), model(input_ids=ids).logits, atol=1e-6)


@pytest.mark.parametrize(
    "model_type,extra,attr",
    [
        ("cohere", dict(logit_scale=0.25), "logit_scale"),
        ("granite", dict(logits_scaling=4.0), "logits_scaling"),
    ],
)
def test_post_head_scaling_families_are_refused_with_the_reason(model_type, extra, attr):
    """Cohere / Granite scale logits after lm_head: lm_logits applies it, the plain head does not,
    so they stay off the list until the cached path calls lm_logits (then add them to FAMILIES)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        model_type,
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=None,
        bos_token_id=None,
        **extra,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    ids = torch.randint(8, VOCAB, (2, 12), generator=torch.Generator().manual_seed(0))
    hidden = model.get_decoder()(input_ids=ids).last_hidden_state
    full = model(input_ids=ids).logits
    assert torch.allclose(lm_logits(model, hidden), full, atol=1e-6)
    assert not torch.allclose(model.get_output_embeddings()(hidden), full, atol=1e-3)
    with pytest.raises(ModelError, match=attr):
        check_supported(model)


def _refused(model_type: str, attn: str = "sdpa", **extra):
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(
        model_type,
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        pad_token_id=0,
        eos_token_id=None,
        bos_token_id=None,
        **extra,
    )
    cfg._attn_implementation = attn
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(cfg).eval()


@pytest.mark.parametrize(
    "model_type,attn,extra,match",
    [
        ("mistral", "sdpa", dict(num_key_value_heads=2, sliding_window=8), r"sliding_window=8"),
        ("phi3", "eager", dict(num_key_value_heads=2, sliding_window=16), r"DynamicSlidingWindowLayer"),
        ("starcoder2", "sdpa", dict(num_key_value_heads=2, sliding_window=8), r"sliding"),
        ("gemma2", "eager", dict(num_key_value_heads=2, head_dim=8), r"model_type 'gemma2'.*hybrid"),
        ("gemma3_text", "sdpa", dict(num_key_value_heads=2, head_dim=8), r"gemma3_text"),
        ("falcon", "sdpa", dict(new_decoder_architecture=False, alibi=True), r"alibi=True"),
        ("bloom", "eager", dict(n_layer=2, n_head=4), r"model_type 'bloom'.*ALiBi"),
    ],
)
def test_sliding_window_hybrid_and_alibi_get_one_clear_error_up_front(model_type, attn, extra, match):
    """Without the check these fail deep in transformers ('size of tensor a (8) must match ...')."""
    model = _refused(model_type, attn, **extra)
    ids, att, flags = random_batch(1, B=3, L=24)
    for call in (
        lambda: anchor_prefill(model, ids, flags, att),
        lambda: anchor_cache_logits(model, ids, flags, att, chunk=7),
        lambda: masked_forward_logits(model, ids, flags, att),
    ):
        with pytest.raises(ModelError, match=match) as err:
            call()
        assert "supported" in str(err.value)
    if model_type not in SUPPORTED_FAMILIES:
        for name in ("Llama", "GPT-2", "Falcon"):
            assert name in str(err.value)


def test_qwen2_sliding_window_switched_on_after_loading_is_refused():
    model = family_model("qwen2")
    model.config.use_sliding_window, model.config.sliding_window = True, 8
    with pytest.raises(ModelError, match="use_sliding_window"):
        check_supported(model)


def test_base_folder_with_sliding_window_fails_before_training(tmp_path):
    """train_anchor_lm reads config.json and refuses before any data or weights are loaded."""
    from labkit.anchor.training import AnchorTrainConfig, check_base_family, train_anchor_lm

    _refused("mistral", num_key_value_heads=2, sliding_window=8).save_pretrained(tmp_path / "m")
    with pytest.raises(ModelError, match=r"base model .*sliding_window=8"):
        train_anchor_lm(str(tmp_path / "m"), AnchorTrainConfig(train_tokens=100))
    family_model("falcon", 1).save_pretrained(tmp_path / "f")
    assert check_base_family(tmp_path / "f") == "Falcon"


# --------------------------------------------------------------------------- training smoke
@pytest.fixture(scope="module")
def trained_bases(tmp_path_factory):
    """One saved tiny random-weight base per supported family with the in-process tokenizer."""
    from tiny_models import make_tokenizer

    root = tmp_path_factory.mktemp("bases")
    tok = make_tokenizer()
    out = {}
    for model_type, _ in dict(CASES).items():
        folder = root / model_type
        family_model(model_type, 0, vocab=len(tok), max_pos=64).save_pretrained(folder)
        tok.save_pretrained(folder)
        out[model_type] = folder
    return out


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_anchor_training_smoke_per_family(model_type, trained_bases, tmp_path, monkeypatch):
    """A few optimizer steps of the real train_anchor_lm (AC anchors, HF Trainer, AnSAN mask) on
    real text, then the trained model decodes through the pruned cache."""
    if not (Path(MIRROR) / "tinyshakespeare").exists():
        pytest.skip("real data mirror not found ($LABKIT_DATA_MIRROR or ../shared/data)")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LABKIT_DATA_MIRROR", MIRROR)
    from labkit.anchor import anchor_generate
    from labkit.anchor.training import AnchorTrainConfig, train_anchor_lm

    cfg = AnchorTrainConfig(
        mode="ac", ac_init="mean", train_tokens=3 * 2 * 32, batch_size=2, context_length=32, corpus=("tinyshakespeare",)
    )
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(trained_bases[model_type]).state_dict()
    trained = train_anchor_lm(str(trained_bases[model_type]), cfg, progress=False)
    assert trained.metrics["steps"] == 3
    assert torch.isfinite(torch.tensor(trained.metrics["train_loss"]))
    model, tok = trained.load(device="cpu")
    assert check_supported(model) == SUPPORTED_FAMILIES[model_type]
    after = model.state_dict()
    moved = [
        k for k in before if k in after and before[k].shape == after[k].shape and not torch.equal(before[k], after[k])
    ]
    assert moved, "training changed no weight"
    _, stats = anchor_generate(
        model, tok, ["Speak. Speak! Go home", "First. Second"], cfg.spec, max_new_tokens=3, insert_anchors=True
    )
    assert stats["kv_bytes"] < stats["full_kv_bytes"]
