"""Continued training under the AnSAN mask: the collator, the mask really reaching attention
(transformers 5.x, eager and SDPA, train mode) and the cached Trainer run on real text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_inference import ANCHORS, FAMILIES, VOCAB, tiny_model  # same folder

from labkit.anchor.anchors import AnchorSpec, anchor_flags
from labkit.anchor.teacher_forced import masked_forward_logits
from labkit.anchor.training import AnchorCollator, AnchorTrainConfig, anchor_training_blocks
from labkit.errors import ParameterError

MIRROR = os.environ.get("LABKIT_DATA_MIRROR") or str(Path(__file__).resolve().parents[3] / "shared" / "data")


def features(seed: int, lengths=(20, 13, 7)):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(8, VOCAB, (n,), generator=gen)
        ids[torch.rand(n, generator=gen) < 0.2] = 3
        out.append({"input_ids": ids.tolist()})
    return out


def test_collator_pads_masks_and_labels():
    batch = AnchorCollator(ANCHORS, pad_id=0)(features(0))
    ids, mask, pos, labels = (batch[k] for k in ("input_ids", "attention_mask", "position_ids", "labels"))
    assert ids.shape == (3, 20) and mask.shape == (3, 1, 20, 20)
    assert mask.dtype == torch.float32
    assert (labels[1, 13:] == -100).all() and (labels[1, :13] == ids[1, :13]).all()
    assert pos[2, :7].tolist() == list(range(7))
    blocked = torch.finfo(torch.float32).min
    # padded keys blocked for every real query; no row fully blocked (SDPA NaN)
    assert (mask[1, 0, :13, 13:] == blocked).all()
    assert ((mask == 0).sum(-1) > 0).all()
    # the mask is the AnSAN rule: anchor rows do not see earlier anchors
    from labkit.anchor.masks import reference_anchor_mask

    att = (labels != -100).long()
    ref = reference_anchor_mask(anchor_flags(ids, ANCHORS) & att.bool(), att)
    assert torch.equal(mask, ref)


def test_collator_bad_input():
    col = AnchorCollator(ANCHORS, pad_id=0)
    with pytest.raises(ParameterError, match="feature 1 of the batch is empty"):
        col([{"input_ids": [5, 6]}, {"input_ids": []}])
    with pytest.raises(ParameterError, match="empty batch"):
        col([])
    with pytest.raises(ParameterError, match="feature 0: labels"):
        col([{"input_ids": [5, 6], "labels": [5]}])
    with pytest.raises(ParameterError, match="'input_ids'"):
        col([{"ids": [1]}])
    with pytest.raises(ParameterError, match="anchor_ids"):
        AnchorCollator([], pad_id=0)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_forward_honours_the_4d_mask(family, attn):
    """``model(**batch)`` -- exactly what HF Trainer calls -- gives the masked logits and loss
    in train mode: transformers 5.x passes the 4-D mask through untouched (no is_causal path)."""
    model = tiny_model(family, attn).train()
    batch = AnchorCollator(ANCHORS, pad_id=0)(features(1))
    out = model(**batch)
    att = batch["labels"] != -100
    ref = masked_forward_logits(
        model.eval(), batch["input_ids"], anchor_flags(batch["input_ids"], ANCHORS) & att, att.long()
    )
    assert torch.isfinite(out.logits).all()
    assert (out.logits - ref)[att].abs().max() < 2e-5
    causal = model(input_ids=batch["input_ids"], attention_mask=att.long(), position_ids=batch["position_ids"]).logits
    assert (causal - ref)[att].abs().max() > 1e-3  # the mask changed the computation
    shift_logits, shift_labels = ref[:, :-1], batch["labels"][:, 1:]
    manual = torch.nn.functional.cross_entropy(
        shift_logits.reshape(-1, VOCAB), shift_labels.reshape(-1), ignore_index=-100
    )
    assert abs(out.loss.item() - manual.item()) < 1e-4
    out.loss.backward()  # gradients flow through the masked attention
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_train_config_validation_names_field():
    with pytest.raises(ParameterError, match="AnchorTrainConfig.mode"):
        AnchorTrainConfig(mode="xx")
    with pytest.raises(ParameterError, match="AnchorTrainConfig.train_tokens"):
        AnchorTrainConfig(train_tokens=0)
    with pytest.raises(ParameterError, match="AnchorTrainConfig.ac_init"):
        AnchorTrainConfig(ac_init="zero")
    with pytest.raises(ParameterError, match="corpus"):
        AnchorTrainConfig(corpus=("wikitext",))


def test_training_blocks_insert_ac_and_join_documents():
    from test_anchors import make_tokenizer

    from labkit.anchor.anchors import add_anchor_token

    tok = make_tokenizer()
    model = tiny_model("llama")
    spec = AnchorSpec(mode="ac")
    ac = add_anchor_token(model, tok, spec)
    docs = ["One line here. Two lines there! Three?", "Another doc. With text."] * 5
    blocks = anchor_training_blocks(tok, docs, spec, context_length=16, n_tokens=40)
    assert blocks.shape[1] == 16 and blocks.shape[0] >= 3
    assert int((blocks == ac).sum()) >= 5
    assert int((blocks == tok.eos_token_id).sum()) >= 1
    with pytest.raises(ParameterError, match="context_length"):
        anchor_training_blocks(tok, ["Hi."], spec, context_length=64, n_tokens=10)


@pytest.mark.slow
def test_train_anchor_lm_on_real_text_is_cached(tmp_path, monkeypatch):
    if not (Path(MIRROR) / "tinyshakespeare").exists():
        pytest.skip("real data mirror not found ($LABKIT_DATA_MIRROR or ../shared/data)")
    monkeypatch.setenv("LABKIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("LABKIT_DATA_MIRROR", MIRROR)
    from labkit.anchor.anchors import anchor_token_ids
    from labkit.anchor.training import train_anchor_lm
    from labkit.lm import TinyLMConfig, load_causal_lm, train_tiny_lm

    base = train_tiny_lm(
        TinyLMConfig(
            vocab_size=512,
            hidden_size=32,
            num_layers=2,
            num_heads=2,
            context_length=64,
            train_tokens=10_000,
            batch_size=8,
            corpus=("tinyshakespeare",),
        ),
        progress=False,
    )
    cfg = AnchorTrainConfig(mode="ac", ac_init="mean", train_tokens=2_000, batch_size=4, corpus=("tinyshakespeare",))
    first = train_anchor_lm(base, cfg, progress=False)
    assert first.metrics["steps"] == 8 and first.metrics["anchors_per_1k_tokens"] > 10
    assert first.metrics["attention"] == "dense"  # "auto" on CPU: no flex backward there
    assert "backward" in first.metrics["attention_reason"]
    model, tok = first.load()
    spec = cfg.spec
    assert anchor_token_ids(tok, spec) == {tok.convert_tokens_to_ids("<AC>")}
    base_model, base_tok = load_causal_lm(str(base.path))
    assert model.get_input_embeddings().weight.shape[0] == len(base_tok) + 1
    # the weights moved (the Trainer really trained under the mask)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, base_model.model.layers[0].mlp.up_proj.weight)
    again = train_anchor_lm(str(base.path), cfg, progress=False)  # same base given as a path
    assert again.path == first.path and again.metrics == first.metrics
    other = train_anchor_lm(
        base,
        AnchorTrainConfig(mode="ep", train_tokens=2_000, batch_size=4, corpus=("tinyshakespeare",)),
        progress=False,
    )
    assert other.path != first.path


def test_unsupported_base_architecture_fails_before_training(tmp_path):
    from transformers import BloomConfig, BloomForCausalLM

    from labkit.anchor.training import train_anchor_lm
    from labkit.errors import ModelError

    BloomForCausalLM(BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=1, n_head=2)).save_pretrained(
        str(tmp_path / "bloom"), safe_serialization=True
    )
    with pytest.raises(ModelError) as err:
        train_anchor_lm(str(tmp_path / "bloom"), AnchorTrainConfig(train_tokens=100))
    for name in ("bloom", "Llama", "Qwen2", "GPT-NeoX"):
        assert name in str(err.value)
    with pytest.raises(ParameterError, match="base"):
        train_anchor_lm(None)
