"""Continued training through flex-attention equals the dense (reference) path; the choice.

PyTorch 2.13 refuses flex-attention's backward on CPU (``_validate_device``), but its eager
(unfused) flex-attention autograd is plain PyTorch maths that runs anywhere; the equality tests
lift that one device guard, and swap transformers' compiled flex-attention for the eager call
(the compile takes minutes on 2 cores), so the labkit side of the flex path (the switch to
``flex_attention``, the ``BlockMask`` collator, the Trainer wiring, saving back to SDPA) is
checked on CPU against the dense mask. The fused CUDA kernel itself is not exercised here
(``benchmarks/anchor_training_masks.py`` runs it on a GPU). Tiny random-weight models.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import pytest
import torch
from tiny_models import ANCHORS, family_config, family_model, random_batch, tiny_config

from labkit.anchor.flex import attention_collator, choose_training_attention, flex_available
from labkit.anchor.training import AnchorTrainConfig
from labkit.errors import ParameterError

ok, why = flex_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no flex-attention in this torch build: {why}")
MIRROR = os.environ.get("LABKIT_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")


@pytest.fixture
def cpu_flex_backward(monkeypatch):
    """Let flex-attention train on CPU with PyTorch's eager (unfused) implementation."""
    import torch.nn.attention.flex_attention as torch_flex
    import transformers.integrations.flex_attention as hf_flex

    def eager_flex(query, key, value, training=False, **kwargs):
        return torch_flex.flex_attention(query, key, value, **kwargs)

    monkeypatch.setattr(torch_flex, "_validate_device", lambda *tensors: None)
    monkeypatch.setattr(hf_flex, "compile_friendly_flex_attention", eager_flex)
    monkeypatch.setattr("labkit.anchor.flex.flex_training_available", lambda device: (True, ""))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile.*")
        yield


def test_attention_value_is_checked():
    with pytest.raises(ParameterError, match="AnchorTrainConfig.attention.*'fused'"):
        AnchorTrainConfig(attention="fused")
    with pytest.raises(ParameterError, match="attention"):
        choose_training_attention("sdpa", "cpu")
    assert AnchorTrainConfig().attention == "auto"


def test_choice_auto_dense_flex():
    llama = tiny_config("llama")
    path, reason = choose_training_attention("auto", "cpu", llama)
    assert path == "dense" and "backward" in reason  # torch <= 2.13: no flex backward on CPU
    with pytest.raises(ParameterError, match=r"attention='flex' cannot run here.*backward on cpu"):
        choose_training_attention("flex", "cpu", llama)
    assert choose_training_attention("dense", "cuda", llama)[0] == "dense"
    # on CUDA (no GPU needed: the choice reads the device type and the model class only)
    assert choose_training_attention("auto", "cuda", llama)[0] == "flex"
    assert choose_training_attention("auto", "cuda")[0] == "flex"
    gpt2 = family_config("gpt2")
    path, reason = choose_training_attention("auto", "cuda", gpt2)
    assert path == "dense" and "GPT2LMHeadModel has no flex-attention" in reason
    with pytest.raises(ParameterError, match="GPT2LMHeadModel"):
        choose_training_attention("flex", "cuda", gpt2)
    dropout = tiny_config("llama")
    dropout.attention_dropout = 0.1
    path, reason = choose_training_attention("auto", "cuda", dropout)
    assert path == "dense" and "attention_dropout=0.1" in reason


def _loss_and_grads(model, collator, features):
    batch = collator(features)
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("dense_attn", ["sdpa", "eager"])
def test_flex_training_step_equals_dense(family, dense_attn, cpu_flex_backward):
    """One training step's loss and every gradient agree between the two paths (padded batch,
    anchors at 15%), and two optimiser steps leave the same weights."""
    base = family_model(family, attn=dense_attn).train()
    flex_model = copy.deepcopy(base)
    ids, att, _ = random_batch(3, B=3, L=48, pad="right")
    features = [{"input_ids": ids[b][att[b].bool()].tolist()} for b in range(3)]
    dense_collate = attention_collator(base, "dense", ANCHORS, 0)
    flex_collate = attention_collator(flex_model, "flex", ANCHORS, 0)
    assert flex_model.config._attn_implementation == "flex_attention"
    assert base.config._attn_implementation == dense_attn
    ref_loss, ref_grads = _loss_and_grads(base, dense_collate, features)
    loss, grads = _loss_and_grads(flex_model, flex_collate, features)
    torch.testing.assert_close(loss, ref_loss, atol=1e-6, rtol=1e-6)
    assert grads.keys() == ref_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], atol=1e-6, rtol=1e-4, msg=name)
    # the rule matters: plain causal attention gives another loss
    causal = copy.deepcopy(base)
    plain = causal(input_ids=ids, attention_mask=att, labels=ids.masked_fill(att == 0, -100)).loss
    assert abs(float(plain.detach()) - float(ref_loss)) > 1e-4
    for model, collate in ((base, dense_collate), (flex_model, flex_collate)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(2):
            _loss_and_grads(model, collate, features)
            opt.step()
    for (name, p), q in zip(base.named_parameters(), flex_model.parameters()):
        torch.testing.assert_close(q, p, atol=1e-5, rtol=1e-4, msg=name)


def test_attention_collator_bad_path():
    model = family_model("llama")
    with pytest.raises(ParameterError, match="'dense' or 'flex'"):
        attention_collator(model, "auto", ANCHORS, 0)


@pytest.mark.slow
def test_train_anchor_lm_flex_path_matches_dense(tmp_path, monkeypatch, cpu_flex_backward):
    """The real train_anchor_lm (HF Trainer, AC anchors, real text) through the flex path: same
    loss curve as the dense path, one cache entry for both (attention is not in the recipe),
    metrics name the path, and the saved model is back on SDPA for anchor inference."""
    if not (Path(MIRROR) / "tinyshakespeare").exists():
        pytest.skip("real data mirror not found ($LABKIT_DATA_MIRROR or ../shared/data)")
    from tiny_models import make_tokenizer

    from labkit.anchor.training import train_anchor_lm

    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("LABKIT_DATA_MIRROR", MIRROR)
    tok = make_tokenizer()
    family_model("llama", vocab=len(tok), max_pos=64).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    common = dict(
        mode="ac", ac_init="mean", train_tokens=4 * 2 * 64, batch_size=2, corpus=("tinyshakespeare",), warmup_steps=0
    )
    flex = train_anchor_lm(str(tmp_path / "base"), AnchorTrainConfig(attention="flex", **common), progress=False)
    assert flex.metrics["attention"] == "flex" and flex.metrics["steps"] == 4
    saved = json.loads((flex.path / "config.json").read_text())
    assert "flex" not in json.dumps(saved)
    model, _ = flex.load(device="cpu")
    assert model.config._attn_implementation in ("sdpa", "eager")
    cached = train_anchor_lm(str(tmp_path / "base"), AnchorTrainConfig(attention="dense", **common), progress=False)
    assert cached.path == flex.path and cached.metrics["attention"] == "flex"  # a cache hit
    dense = train_anchor_lm(
        str(tmp_path / "base"), AnchorTrainConfig(attention="dense", **common), progress=False, force=True
    )
    assert dense.metrics["attention"] == "dense"
    got = [loss for _, loss in flex.metrics["loss_curve"]]
    ref = [loss for _, loss in dense.metrics["loss_curve"]]
    assert len(got) == len(ref) == 4
    torch.testing.assert_close(torch.tensor(got), torch.tensor(ref), atol=1e-4, rtol=1e-5)
    assert got[0] != pytest.approx(got[-1], abs=1e-3)  # it did train
