"""AnSAN mask builder vs a brute-force reference, padding, and eager == SDPA under the mask."""

from __future__ import annotations

import pytest
import torch

from labkit.anchor.masks import anchor_mask, position_ids_from_attention_mask, reference_anchor_mask, sequence_ids
from labkit.errors import ParameterError

MIN = torch.finfo(torch.float32).min


def _random_batch(gen: torch.Generator, B: int, L: int, p_anchor: float, pad: str):
    flags = torch.rand(B, L, generator=gen) < p_anchor
    att = torch.ones(B, L, dtype=torch.long)
    for b in range(B):
        n_pad = int(torch.randint(0, L // 2 + 1, (1,), generator=gen))
        if pad == "left" and n_pad:
            att[b, :n_pad] = 0
        elif pad == "right" and n_pad:
            att[b, L - n_pad :] = 0
    return flags, att


def test_paper_example_by_hand():
    # tokens: a b . c d . e   (anchors at 2 and 5)
    flags = torch.tensor([[0, 0, 1, 0, 0, 1, 0]], dtype=torch.bool)
    allowed = anchor_mask(flags, as_bool=True)[0, 0]
    expected = torch.tensor(
        [
            [1, 0, 0, 0, 0, 0, 0],  # a
            [1, 1, 0, 0, 0, 0, 0],  # b
            [1, 1, 1, 0, 0, 0, 0],  # . (anchor 1: its own sentence)
            [0, 0, 1, 1, 0, 0, 0],  # c: earlier anchor + itself
            [0, 0, 1, 1, 1, 0, 0],  # d
            [0, 0, 0, 1, 1, 1, 0],  # . (anchor 2: own sentence only, not anchor 1)
            [0, 0, 1, 0, 0, 1, 1],  # e: both anchors + itself
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)
    assert sequence_ids(flags).tolist() == [[0, 0, 0, 1, 1, 1, 2]]


@pytest.mark.parametrize("pad", ["none", "left", "right"])
@pytest.mark.parametrize("p_anchor", [0.0, 0.1, 0.4, 1.0])
def test_matches_bruteforce_reference(pad, p_anchor):
    gen = torch.Generator().manual_seed(hash((pad, p_anchor)) % 2**31)
    for trial in range(5):
        B, L = 3, int(torch.randint(1, 24, (1,), generator=gen))
        flags, att = _random_batch(gen, B, L, p_anchor, pad)
        att_arg = None if pad == "none" else att
        got = anchor_mask(flags, att_arg)
        ref = reference_anchor_mask(flags, att_arg)
        assert got.shape == (B, 1, L, L)
        assert torch.equal(got, ref), (pad, p_anchor, trial, flags, att)


def test_padding_with_holes_matches_reference():
    gen = torch.Generator().manual_seed(7)
    flags = torch.rand(4, 20, generator=gen) < 0.2
    att = (torch.rand(4, 20, generator=gen) < 0.7).long()
    att[0] = 0  # an empty row: every pad row still sees itself
    assert torch.equal(anchor_mask(flags, att), reference_anchor_mask(flags, att))


def test_no_fully_masked_rows_and_dtype():
    flags = torch.tensor([[0, 1, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    att = torch.tensor([[0, 1, 1, 1], [0, 0, 0, 0]])
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        mask = anchor_mask(flags, att, dtype=dtype)
        assert mask.dtype == dtype
        assert (mask == 0).any(dim=-1).all()
        assert set(torch.unique(mask.float()).tolist()) <= {0.0, float(torch.finfo(dtype).min)}
    # pad rows attend only to themselves; pad columns are blocked for real rows
    allowed = anchor_mask(flags, att, as_bool=True)[0, 0]
    assert allowed[0].tolist() == [True, False, False, False]
    assert not allowed[1:, 0].any()


def test_pads_are_never_anchors_and_positions_skip_padding():
    flags = torch.tensor([[1, 1, 0, 1, 0]], dtype=torch.bool)
    att = torch.tensor([[0, 0, 1, 1, 1]])
    assert sequence_ids(flags, att).tolist() == [[0, 0, 0, 0, 1]]
    assert position_ids_from_attention_mask(att).tolist() == [[0, 0, 0, 1, 2]]
    right = torch.tensor([[1, 1, 1, 0, 0]])
    assert position_ids_from_attention_mask(right).tolist()[0][:3] == [0, 1, 2]


def test_bad_shapes_raise_parameter_error():
    with pytest.raises(ParameterError, match="anchor_flags"):
        anchor_mask(torch.zeros(5, dtype=torch.bool))
    with pytest.raises(ParameterError, match="attention_mask"):
        anchor_mask(torch.zeros(2, 5, dtype=torch.bool), torch.ones(2, 4))
    with pytest.raises(ParameterError, match="dtype"):
        anchor_mask(torch.zeros(1, 3, dtype=torch.bool), dtype=torch.long)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt_neox"])
def test_eager_equals_sdpa_under_anchor_mask(family, make_config):
    from transformers import AutoModelForCausalLM

    cfg = make_config(family)
    torch.manual_seed(0)
    eager_cfg = make_config(family, attn="eager")
    sdpa_cfg = make_config(family, attn="sdpa")
    eager = AutoModelForCausalLM.from_config(eager_cfg).eval()
    sdpa = AutoModelForCausalLM.from_config(sdpa_cfg).eval()
    sdpa.load_state_dict(eager.state_dict())
    assert cfg.model_type == family
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, cfg.vocab_size, (3, 26), generator=gen)
    flags, att = _random_batch(gen, 3, 26, 0.2, "left")
    mask = anchor_mask(flags, att)
    pos = position_ids_from_attention_mask(att)
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        b = sdpa(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        causal = eager(input_ids=ids, attention_mask=att, position_ids=pos).logits
    assert torch.isfinite(a).all() and torch.isfinite(b).all()  # incl. pad rows: no NaN
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # the mask really changes the computation (so the equality above is not vacuous)
    real = att.bool()
    assert (a - causal)[real].abs().max() > 1e-3
