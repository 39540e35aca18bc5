"""The lean decode loop: no data-dependent host sync per anchor step, and still exact.

Host syncs are counted on CPU with a ``TorchFunctionMode`` that records every call of the
operations that make the host wait for the device on CUDA (``item``, ``tolist``, ``__bool__``,
``__int__``, ``__float__``, ``__index__``, ``nonzero``, ``unique``, ``masked_select``); CUDA's
``torch.cuda.set_sync_debug_mode`` is not available here. Per-step counts are differences of
whole generations of ``n`` and ``n + extra`` tokens divided by ``extra``, so prefill and the final
compaction cancel out. Tiny random-weight models (unit tests only).
"""

from __future__ import annotations

import collections

import pytest
import torch
from tiny_models import ANCHORS, VOCAB, random_batch
from torch.overrides import TorchFunctionMode

from labkit.anchor import (
    anchor_flags,
    anchor_generate,
    anchor_prefill,
    anchor_step,
    full_cache_generate,
    masked_forward_logits,
    no_cache_generate,
)
from labkit.anchor.cache import anchor_id_tensor
from labkit.errors import ParameterError

ATOL = 2e-5
SYNC_OPS = {
    torch.Tensor.item,
    torch.Tensor.tolist,
    torch.Tensor.__bool__,
    torch.Tensor.__int__,
    torch.Tensor.__float__,
    torch.Tensor.__index__,
    torch.nonzero,
    torch.Tensor.nonzero,
    torch.unique,
    torch.Tensor.unique,
    torch.masked_select,
    torch.Tensor.masked_select,
}
MANY_ANCHORS = set(range(3, VOCAB, 4))  # a quarter of the vocabulary: decoding emits anchors


class SyncCounter(TorchFunctionMode):
    """Counts calls of operations that force a device-to-host sync on CUDA."""

    def __init__(self):
        super().__init__()
        self.calls = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in SYNC_OPS:
            self.calls[func.__name__] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def _syncs(fn) -> int:
    with SyncCounter() as counter:
        fn()
    return counter.total


def _per_step(run, n: int = 6, extra: int = 64) -> float:
    return (_syncs(lambda: run(n + extra)) - _syncs(lambda: run(n))) / extra


def test_the_counter_sees_syncs():
    x = torch.arange(5)
    with SyncCounter() as counter:
        x.sum().item(), bool(x.any()), int(x.max()), x.nonzero(), x.tolist()
        x + 1  # not a sync
    assert counter.total == 5


@pytest.mark.parametrize("eos", [-1, 0])
def test_anchor_step_syncs_no_more_than_full_cache_step(make_model, eos):
    """eos=-1: no EOS can occur, so no step reads the device; eos=0: one read per step each
    (the shared greedy loop checks whether every row has finished)."""
    model = make_model("llama", max_pos=256)
    ids, att, _ = random_batch(3, B=3, L=30, pad="left")
    anchor = _per_step(
        lambda n: anchor_generate(
            model, None, ids, max_new_tokens=n, attention_mask=att, anchor_ids=MANY_ANCHORS, eos_token_id=eos
        )
    )
    full = _per_step(lambda n: full_cache_generate(model, None, ids, n, att, eos_token_id=eos))
    # anchors were emitted in these steps (pruning happened), so this is not the trivial case
    seqs, _ = anchor_generate(
        model, None, ids, max_new_tokens=70, attention_mask=att, anchor_ids=MANY_ANCHORS, eos_token_id=-1
    )
    assert any(int(t) in MANY_ANCHORS for t in seqs.flatten())
    assert anchor <= full, (anchor, full)
    # compaction every 32 appended slots: at most one read per 32 steps beyond the EOS check
    assert anchor <= (1 if eos >= 0 else 0) + 2 / 32, anchor


def test_compacting_every_step_costs_a_sync_per_step(make_model):
    """The count is not vacuous: the old behaviour (gather after every step) reads each step."""
    model = make_model("llama", max_pos=256)
    ids, att, _ = random_batch(3, B=3, L=30, pad="left")
    eager = _per_step(
        lambda n: anchor_generate(
            model,
            None,
            ids,
            max_new_tokens=n,
            attention_mask=att,
            anchor_ids=MANY_ANCHORS,
            eos_token_id=-1,
            compact_every=1,
        ),
        extra=16,
    )
    assert eager >= 1


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_lazy_compaction_is_exact_and_bounded(family, make_model):
    model = make_model(family)
    ids, att, _ = random_batch(11, B=3, L=30, pad="left")
    ref, _ = no_cache_generate(model, None, ids, max_new_tokens=20, attention_mask=att, anchor_ids=MANY_ANCHORS)
    results = {}
    for every in (1, 3, 32):
        got, stats = anchor_generate(
            model,
            None,
            ids,
            max_new_tokens=20,
            attention_mask=att,
            anchor_ids=MANY_ANCHORS,
            chunk=8,
            compact_every=every,
        )
        assert torch.equal(got, ref), every
        results[every] = stats
    for every in (3, 32):  # same cache once compacted, whatever the schedule
        for key in ("kept_final", "kv_bytes", "peak_cache_slots", "kept_after_prefill"):
            assert results[every][key] == results[1][key], (every, key)


def test_step_by_step_with_stale_slots_matches_masked_pass(make_model):
    """Logits stay exact while pruned slots wait for compaction; physical slots stay bounded."""
    model = make_model("qwen2")
    ids, att, flags = random_batch(9, B=2, L=24, pad="left")
    cont = torch.tensor([[10, 3, 12, 13, 7, 15, 16, 3], [20, 21, 3, 3, 24, 25, 26, 27]])
    every = 3
    state = anchor_prefill(model, ids, flags, att, chunk=5, compact_every=every)
    ids_t = anchor_id_tensor(ANCHORS)
    steps = [state.last_logits.clone()]
    for t in range(cont.shape[1]):
        steps.append(anchor_step(model, state, cont[:, t], ids_t).clone())
        assert state.cache_slots <= int(state.kept_tokens.max()) + every
    full_ids = torch.cat([ids, cont], dim=1)
    full_att = torch.cat([att, torch.ones_like(cont)], dim=1)
    ref = masked_forward_logits(model, full_ids, anchor_flags(full_ids, ANCHORS) & full_att.bool(), full_att)
    L = ids.shape[1]
    for t, got in enumerate(steps):
        assert (got - ref[:, L - 1 + t]).abs().max().item() < ATOL, t


def test_cap_policy_same_with_lazy_compaction(make_model):
    model = make_model("llama")
    ids = torch.randint(8, VOCAB, (2, 40), generator=torch.Generator().manual_seed(0))
    out = {}
    for every in (1, 16):
        seqs, stats = anchor_generate(
            model, None, ids, max_new_tokens=12, anchor_ids={3}, open_limit=16, open_policy="cap", compact_every=every
        )
        out[every] = (seqs, stats["kept_final"], stats["capped_tokens"])
    assert torch.equal(out[1][0], out[16][0])
    assert out[1][1:] == out[16][1:] and out[1][2] > 0


def test_bad_compact_every(make_model):
    model = make_model("llama")
    ids, att, flags = random_batch(3, B=2, L=10)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ParameterError, match="compact_every"):
            anchor_prefill(model, ids, flags, att, compact_every=bad)
