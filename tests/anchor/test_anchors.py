"""Anchor choice: sentence splitting, <AC> insertion, anchor ids and flags, adding the token."""

from __future__ import annotations

import pytest
import torch

# test_training.py imports make_tokenizer from here
from tiny_models import TEXT, make_tokenizer  # noqa: F401

from labkit.anchor.anchors import (
    AnchorSpec,
    add_anchor_token,
    anchor_flags,
    anchor_token_ids,
    insert_anchor_tokens,
    split_sentences,
)
from labkit.errors import ModelError, ParameterError


def test_split_sentences_rules():
    sents = split_sentences(TEXT)
    assert sents == [
        "First Citizen: Before we proceed any further, hear me speak.",
        "All: Speak, speak!",
        "Dr. Smith paid 3.5 dollars at 5 p.m. on Jan. 3 to J. R. R. Tolkien.",
        "Was it late?",
        "Yes... it was.",
        '"Go home."',
        "She left.",
        "A new paragraph without a stop",
        "End.",
    ]
    assert split_sentences("") == []
    assert split_sentences("no stop at all") == ["no stop at all"]


def test_split_rejects_non_text():
    with pytest.raises(ParameterError, match="text"):
        split_sentences(None)  # type: ignore[arg-type]


def test_insert_anchor_tokens_ac_and_ep():
    ac = AnchorSpec(mode="ac")
    out = insert_anchor_tokens("One two. Three four? Five", ac)
    assert out == "One two.<AC> Three four?<AC> Five<AC>"
    assert insert_anchor_tokens(out, ac) == out  # idempotent
    assert insert_anchor_tokens("One two. Three.", AnchorSpec()) == "One two. Three."
    assert out.replace("<AC>", "") == "One two. Three four? Five"


def test_spec_validation_names_field():
    with pytest.raises(ParameterError, match="mode"):
        AnchorSpec(mode="xx")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="symbols"):
        AnchorSpec(symbols=".")  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="ac_init"):
        AnchorSpec(mode="ac", ac_init="zeros")  # type: ignore[arg-type]


def test_ep_anchor_ids_are_tokens_ending_with_symbol():
    tok = make_tokenizer()
    spec = AnchorSpec(mode="ep", symbols=(".",))
    ids = anchor_token_ids(tok, spec)
    assert ids
    for i in ids:
        assert tok.decode([i]).endswith(".")
    period = tok.encode(".", add_special_tokens=False)
    assert len(period) == 1 and period[0] in ids
    non = [i for i in range(len(tok)) if i not in ids and i not in tok.all_special_ids]
    assert not any(tok.decode([i]).rstrip(" ").endswith(".") for i in non)
    # more symbols give a superset
    assert ids < anchor_token_ids(tok, AnchorSpec(symbols=(".", "?", "!")))


def test_anchor_flags_from_tokenizer_and_ids():
    tok = make_tokenizer()
    spec = AnchorSpec()
    enc = tok(["One. Two. Three", "Speak!"], padding=True, return_tensors="pt")
    flags = anchor_flags(enc["input_ids"], tok, spec)
    assert flags.shape == enc["input_ids"].shape and flags.dtype == torch.bool
    ids = anchor_token_ids(tok, spec)
    expect = torch.tensor([[int(t) in ids for t in row] for row in enc["input_ids"]])
    assert torch.equal(flags, expect)
    assert int(flags[0].sum()) == 2 and int(flags[1].sum()) == 0
    assert torch.equal(anchor_flags(enc["input_ids"], ids), flags)
    with pytest.raises(ParameterError, match="spec"):
        anchor_flags(enc["input_ids"], tok)


def test_ac_tokenizer_without_anchor_token_raises():
    tok = make_tokenizer()
    with pytest.raises(ModelError, match="<AC>.*add_anchor_token"):
        anchor_token_ids(tok, AnchorSpec(mode="ac"))


@pytest.mark.parametrize("init", ["period", "mean"])
def test_add_anchor_token_ac(init, make_llama):
    tok = make_tokenizer()
    model = make_llama(len(tok), hidden=16, layers=1, heads=2, max_pos=64, tie=False)
    spec = AnchorSpec(mode="ac", ac_init=init)
    before = model.get_input_embeddings().weight.detach().clone()
    new_id = add_anchor_token(model, tok, spec)
    assert new_id == len(tok) - 1 == before.shape[0]
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings().weight
    assert emb.shape[0] == len(tok) and out.shape[0] == len(tok)
    period = tok.encode(".", add_special_tokens=False)[0]
    target = before[period] if init == "period" else before.mean(dim=0)
    torch.testing.assert_close(emb[new_id].detach(), target)
    assert not torch.allclose(out[new_id].detach(), torch.zeros_like(out[new_id]))
    # the token is atomic in text and recognised as the only anchor
    text = insert_anchor_tokens("One two. Three four.", spec)
    ids = tok.encode(text, add_special_tokens=False)
    assert ids.count(new_id) == 2
    assert anchor_token_ids(tok, spec) == {new_id}
    assert add_anchor_token(model, tok, spec) == new_id  # idempotent
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
