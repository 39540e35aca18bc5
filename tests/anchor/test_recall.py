"""The long-range recall probe: prompts, training documents and labels, the recall frontier's
rows, statistics and guards (tiny random-weight models; the trained run is the notebook's)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from labkit.anchor import recall_frontier as rf
from labkit.anchor.anchors import anchor_token_ids
from labkit.anchor.recall import RecallProbe, probe_vocab, recall_prompts, training_blocks, training_documents
from labkit.anchor.recall_lm import IGNORE_INDEX, mixed_blocks, probe_labels
from labkit.errors import ParameterError

PROBE = RecallProbe(bindings=8, buckets=(1, 2, 4, 8), keys=10, values=10, min_bindings=2, train_queries=4, share=0.5)
WORDS = (
    "the and you that with have this will your not for are but all what shall".split()
    + "come good lord well make know love like sir upon".split()
)


TEXT = " ".join(WORDS * 40) + ". " + " ".join(reversed(WORDS * 3)) + "."


@pytest.fixture(scope="module")
def ac_model(make_tokenizer, make_llama):
    """A tiny random Llama with ``<AC>`` whose tokenizer holds the probe words as single tokens."""
    from labkit.anchor.anchors import AnchorSpec, add_anchor_token

    tok = make_tokenizer(TEXT, vocab_size=400)
    model = make_llama(len(tok), max_pos=512)
    spec = AnchorSpec(mode="ac")
    add_anchor_token(model, tok, spec)
    return model, tok, spec


@pytest.fixture(scope="module")
def vocab(ac_model):
    _, tok, _ = ac_model
    return probe_vocab(tok, [TEXT], PROBE)


def test_probe_checks_its_sizes():
    with pytest.raises(ParameterError, match="keys"):
        RecallProbe(bindings=8, keys=4)
    with pytest.raises(ParameterError, match="buckets"):
        RecallProbe(bindings=8, buckets=(1, 16), keys=8)
    assert RecallProbe(bindings=32, buckets=(1, 2, 4, 8, 16, 32), keys=32).far_buckets == (16, 32)


def test_prompts_answer_from_the_binding_sentence(vocab):
    p = recall_prompts(vocab, PROBE, 6, seed=1)
    assert p.context.shape == (6, 3 * PROBE.bindings)
    sent = p.context.view(6, PROBE.bindings, 3)
    for n in range(6):
        for q, d in enumerate(p.distance[n].tolist()):
            key = int(p.queries[n, p.key_index[n, q]])
            binding = sent[n, PROBE.bindings - d]
            assert int(binding[0]) == key and int(binding[1]) == int(p.target[n, q])
            assert int(p.queries[n, p.key_index[n, q] + 1]) == int(p.target[n, q])
        assert sorted(p.distance[n].tolist()) == list(PROBE.buckets)
    # the same seed gives the same bindings with <AC> after every sentence (paired methods)
    q = recall_prompts(vocab, PROBE, 6, seed=1, anchor=999)
    assert torch.equal(q.target, p.target) and q.context.shape[1] == 4 * PROBE.bindings
    assert torch.equal(q.context.view(6, -1, 4)[..., :3], sent)


def test_training_documents_never_hold_an_evaluation_prompt(vocab):
    docs = training_documents(vocab, PROBE, 50, seed=0)
    evals = recall_prompts(vocab, PROBE, 50, seed=0).context.numpy()
    full = [d[: 3 * PROBE.bindings] for d in docs if d.size >= 3 * PROBE.bindings]
    assert not any(np.array_equal(f, e) for f in full for e in evals)


def test_labels_score_queries_and_periods_never_keys_or_first_values(vocab):
    blocks = training_blocks(vocab, PROBE, 3, 64, seed=0)
    labels = probe_labels(blocks, vocab)
    keys = torch.isin(blocks, torch.as_tensor(vocab.keys))
    assert bool((labels[keys] == IGNORE_INDEX).all())
    periods = blocks == vocab.period
    assert bool((labels[periods] == vocab.period).all())
    # a value right after a key's first appearance in a document is masked, a repeat is scored
    row = blocks[0].tolist()
    seen, checked = set(), 0
    for t in range(len(row) - 1):
        if row[t] == vocab.eos:
            seen = set()
        elif row[t] in vocab.keys:
            expect_masked = row[t] not in seen
            assert (int(labels[0, t + 1]) == IGNORE_INDEX) == expect_masked
            seen.add(row[t])
            checked += 1
    assert checked > 5


def test_mixed_blocks_share_and_order(vocab):
    real = torch.randint(0, 50, (7, 32))
    mix = mixed_blocks(real, vocab, PROBE, 10, 32, seed=0)
    is_probe = torch.stack([torch.isin(b, torch.as_tensor(vocab.keys)).any() for b in mix.blocks])
    assert len(mix) == 10 and int(is_probe.sum()) >= 5
    with pytest.raises(ParameterError, match="real blocks"):
        mixed_blocks(real[:, :16], vocab, PROBE, 10, 32)


def test_recall_rows_pair_methods_and_the_guard(ac_model, vocab):
    model, tok, spec = ac_model
    anchors = {"AnLLM-AC": (model, tok, spec)}
    rows = rf.recall_rows((model, tok), anchors, vocab, PROBE, 4, budgets=(0.25,), presses=["streaming_llm"], seed=0)
    assert set(rows.method) == {"full cache", "AnLLM-AC", "StreamingLLM"}
    assert set(rows.budget[rows.method == "StreamingLLM"]) == {"25%", "= AnLLM-AC"}
    full = rows[rows.method == "full cache"]
    assert len(full) == 4 * len(PROBE.buckets) and full.kept_share.eq(1).all()
    own = rows[rows.method == "AnLLM-AC"]
    assert 0 < own.kept_share.iloc[0] < 0.5  # anchors + the open sentence
    summary = rf.recall_summary(rows, PROBE, n_resamples=200)
    assert {"d1", "d8_lo", "worst_bucket_lo", "far_recall_hi"} <= set(summary.columns)
    head = rf.recall_headline(rows, summary, PROBE, methods=["AnLLM-AC"], n_resamples=200)
    assert "streaming_vs_full_far" in head["AnLLM-AC"] and "own" in head["AnLLM-AC"]
    # a random model does not answer the probe: the full-cache guard must say so
    assert not head["full_cache_answers"] and any("does not answer" in f for f in head["flags"])
    assert "Full cache: recall" in rf.recall_headline_text(head)


def test_guard_flags_a_probe_that_needs_no_far_context():
    """StreamingLLM as good as the full cache: the headline carries NO_FAR_CONTEXT."""
    probe = RecallProbe(bindings=4, buckets=(1, 2, 4), keys=4, values=4, min_bindings=2)
    rows = []
    for method, kind, budget, share in (
        ("full cache", "full", "full", 1.0),
        ("AnLLM-AC", "own", "own", 0.25),
        ("StreamingLLM", "press", "= AnLLM-AC", 0.25),
    ):
        for p in range(10):
            for d in probe.buckets:
                ok = method != "AnLLM-AC" or d == 1
                rows.append(
                    {
                        "method": method,
                        "kind": kind,
                        "budget": budget,
                        "prompt": p,
                        "distance": d,
                        "correct": ok,
                        "kept_share": share,
                    }
                )
    rows = pd.DataFrame(rows)
    summary = rf.recall_summary(rows, probe, n_resamples=200)
    head = rf.recall_headline(rows, summary, probe, methods=["AnLLM-AC"], n_resamples=200)
    assert head["full_cache_answers"] and not head["AnLLM-AC"]["needs_far_context"]
    assert any(rf.NO_FAR_CONTEXT in f for f in head["flags"])
    assert head["AnLLM-AC"]["own"]["pooled"]["verdict"] == "worse"


def test_anchor_mix_closes_probe_sentences_with_the_anchor(ac_model):
    """The continued-training mix: for AC every probe sentence ends `. <AC>`; for EP no <AC>."""
    from labkit.anchor.anchors import AnchorSpec
    from labkit.anchor.recall_lm import anchor_mixed_blocks

    _, tok, spec = ac_model
    (ac,) = anchor_token_ids(tok, spec)
    real = torch.randint(0, 50, (4, 48))
    mix = anchor_mixed_blocks(real, tok, [TEXT], spec, PROBE, 6, 48, seed=0)
    vocab = probe_vocab(tok, [TEXT], PROBE)
    probe_rows = [b for b in mix.blocks if torch.isin(b, torch.as_tensor(vocab.keys)).any()]
    assert probe_rows
    for b in probe_rows:
        after = b[1:][b[:-1] == vocab.period]
        assert bool((after == ac).all())
    ep = anchor_mixed_blocks(real, tok, [TEXT], AnchorSpec(mode="ep"), PROBE, 6, 48, seed=0)
    assert not bool((ep.blocks == ac).any())


def test_train_config_takes_the_probe_into_its_cache_key():
    from labkit.anchor.training import AnchorTrainConfig

    plain = AnchorTrainConfig()
    assert "probe" not in plain.recipe_params()  # text-only models keep their cache keys
    mixed = AnchorTrainConfig(probe=PROBE.as_dict())
    assert mixed.probe == PROBE and mixed.recipe_params()["probe"]["bindings"] == 8
    with pytest.raises(ParameterError, match="probe"):
        AnchorTrainConfig(probe="yes")
