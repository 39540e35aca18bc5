"""KV-budget frontier (labkit.anchor.frontier / presses) on a tiny random Llama + in-process
tokenizer (unit tests only): budgets kept, exact full-cache scores, anchor shares, errors,
failing presses, statistics and the figure check."""

from __future__ import annotations

import math

import pytest
import torch
from tiny_models import TWO_DOCUMENTS

from labkit.anchor import frontier, presses
from labkit.anchor.anchors import anchor_flags, anchor_token_ids
from labkit.anchor.cache import anchor_prefill
from labkit.anchor.prompts import kshot_prompts
from labkit.anchor.support import kv_bytes_per_token, kv_cache_bytes
from labkit.errors import ModelError, ParameterError

DOCS = TWO_DOCUMENTS * 6
SIZES = dict(k=3, n_prompts=3, demo_tokens=20, query_tokens=6)


@pytest.fixture(scope="module")
def setup(ac_model, make_llama):
    model, tok, spec = ac_model
    trained = make_llama(len(tok), max_pos=512, seed=1)  # stands in for an anchor-trained copy
    return model, tok, spec, trained


@pytest.fixture(scope="module")
def rows(setup):
    model, tok, spec, trained = setup
    anchors = {"AnLLM-AC": (trained, tok, spec), "base + anchor cache": (model, tok, spec)}
    return frontier.frontier_table(
        (model, tok),
        anchors,
        DOCS,
        budgets=[0.5, 0.1],
        presses=["streaming_llm", "knorm", "snapkv", "observed_attention"],
        **SIZES,
    )


def _context(setup, p=0):
    model, tok, spec, _ = setup
    prompt = kshot_prompts(
        DOCS, tok, spec, SIZES["k"], SIZES["n_prompts"], SIZES["demo_tokens"], SIZES["query_tokens"]
    )[p]
    return prompt, frontier.encode(tok, prompt, None)


@pytest.mark.parametrize("name", list(presses.PRESSES))
@pytest.mark.parametrize("share", [0.5, 0.1, 0.02])
def test_press_keeps_its_budget_of_cache_bytes(setup, name, share):
    model = setup[0]
    _, (ctx, _) = _context(setup)
    L = len(ctx)
    kept = max(1, round(share * L))
    attn = model.config._attn_implementation
    cache, logits = presses.pressed_prefill(model, name, torch.tensor([ctx]), kept)
    assert kv_cache_bytes(cache) == kept * kv_bytes_per_token(model)
    assert abs(kv_cache_bytes(cache) / (L * kv_bytes_per_token(model)) - share) <= 0.5 / L + 1e-9
    assert logits.shape == (1, model.config.vocab_size) and torch.isfinite(logits).all()
    assert model.config._attn_implementation == attn  # eager switch (observed attention) undone


def test_full_cache_scores_equal_a_plain_forward(setup):
    model = setup[0]
    _, (ctx, query) = _context(setup)
    result = presses.run_cache(model, torch.tensor([ctx]), query, None, None)
    assert result["kv_bytes"] == len(ctx) * kv_bytes_per_token(model)
    ids = torch.tensor([ctx + query])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    lp = torch.log_softmax(logits[len(ctx) - 1 : -1], dim=-1)
    target = torch.tensor(query)
    nll = -float(lp.gather(1, target[:, None]).sum())
    correct = int((lp.argmax(-1) == target).sum())
    assert result["nll"] == pytest.approx(nll, rel=1e-5, abs=1e-4)
    assert result["correct"] == correct


def test_table_rows_and_shares(setup, rows):
    model, tok, spec, trained = setup
    assert set(rows.method) == {
        "full cache",
        "AnLLM-AC",
        "AnLLM-AC, full cache",
        "base + anchor cache",
        "StreamingLLM",
        "key norm",
        "SnapKV",
        "observed attention (H2O)",
    }
    # the trained model's own full-cache ceiling reads the same prompts, keeps everything
    own_full = rows[rows.method == "AnLLM-AC, full cache"]
    assert (own_full.kind == frontier.TRAINED_FULL).all() and (own_full.kept_share == 1).all()
    assert (own_full.context_tokens.to_numpy() == rows[rows.method == "AnLLM-AC"].context_tokens.to_numpy()).all()
    # every (method, budget) is measured on every prompt
    assert (
        rows.groupby(["method", "budget"]).prompt.apply(sorted).map(tuple) == tuple(range(SIZES["n_prompts"]))
    ).all()
    assert (rows[rows.kind == "full"].kept_share == 1).all()
    # the anchor method's kept share is what the anchor cache really keeps
    ids_set = anchor_token_ids(tok, spec)
    for p, prompt in enumerate(
        kshot_prompts(DOCS, tok, spec, SIZES["k"], SIZES["n_prompts"], SIZES["demo_tokens"], SIZES["query_tokens"])
    ):
        ctx, _ = frontier.encode(tok, prompt, spec)
        ids = torch.tensor([ctx])
        state = anchor_prefill(trained, ids, anchor_flags(ids, ids_set), open_limit=None)
        row = rows[(rows.method == "AnLLM-AC") & (rows.prompt == p)].iloc[0]
        assert row.context_tokens == len(ctx) and row.kv_bytes == kv_cache_bytes(state.cache)
        assert row.kept_share == pytest.approx(int(state.kept_tokens[0]) / len(ctx))
        assert row.kept_share < 0.5  # k anchors + the separator after the last one
        # the presses at this method's budget keep the same share of their (plain) prompt
        matched = rows[(rows.budget == "= AnLLM-AC") & (rows.prompt == p)]
        assert len(matched) == 4
        assert (abs(matched.kept_share - row.kept_share) <= 0.5 / matched.context_tokens + 1e-9).all()
    # the base model through the anchor cache keeps the same tokens: its budget is not repeated
    assert "= base + anchor cache" not in set(rows.budget)
    sweep = rows[rows.budget == "10%"]
    assert (abs(sweep.kept_share - 0.1) <= 0.5 / sweep.context_tokens + 1e-9).all()
    assert (rows.prefill_s > 0).all() and (rows.decode_s > 0).all()


def test_summary_comparison_and_headline(rows):
    summary = frontier.frontier_summary(rows, n_resamples=200)
    full = summary[summary.kind == "full"].iloc[0]
    assert (summary.perplexity_lo <= summary.perplexity + 1e-9).all()
    assert (summary.perplexity <= summary.perplexity_hi + 1e-9).all()
    assert full.tokens_scored == rows[rows.kind == "full"].query_tokens.sum()
    assert full.perplexity == pytest.approx(math.exp(rows[rows.kind == "full"].nll.sum() / full.tokens_scored))
    same = frontier.paired_comparison(rows, ("full cache", "full"), ("full cache", "full"), 200)
    assert same["ppl_diff"] == 0 and same["verdict"] == "no clear difference"
    h = frontier.frontier_headline(rows, summary, "AnLLM-AC", n_resamples=200)
    assert h["own_press"] in set(summary.method) and h["at_10pct_press"] in set(summary.method)
    assert h["own_ppl_diff_lo"] <= h["own_ppl_diff_hi"]
    assert h["own_verdict"] in ("better", "worse", "no clear difference")
    assert "own budget" in frontier.headline_text(h)
    # the guard: StreamingLLM at AnLLM-AC's share against the full cache's interval
    assert isinstance(h["needs_far_context"], bool)
    assert (frontier.NO_FAR_CONTEXT in frontier.headline_text(h)) == (not h["needs_far_context"])
    own_full = summary[summary.method == "AnLLM-AC, full cache"].iloc[0]
    assert h["ppl_own_full_cache"] == own_full.perplexity
    assert h["vs_own_full_ppl_diff"] == pytest.approx(h["ppl"] - own_full.perplexity, rel=0.2, abs=1e-6)
    assert "same model with a full cache" in frontier.headline_text(h)
    with pytest.raises(ParameterError, match="no frontier rows"):
        frontier.paired_comparison(rows, ("AnLLM-EP", "own"), ("full cache", "full"))


def test_figure_passes_figcheck(rows):
    from labkit.figcheck import check_figure

    summary = frontier.frontier_summary(rows, n_resamples=100)
    fig = frontier.frontier_figure(summary)
    assert check_figure(fig) == []
    names = [t.name for t in fig.data]
    assert "full cache (ceiling)" in names and "AnLLM-AC (own budget)" in names
    assert fig.layout.xaxis.type == "log"


def test_bad_press_name_and_budgets(setup):
    model, tok, spec, _ = setup
    with pytest.raises(ParameterError, match="unknown press 'h2o'.*streaming_llm"):
        frontier.frontier_table((model, tok), {}, DOCS, presses=["knorm", "h2o"], **SIZES)
    with pytest.raises(ParameterError, match="presses"):
        presses.check_presses("knorm")
    with pytest.raises(ParameterError, match="budgets"):
        frontier.frontier_table((model, tok), {}, DOCS, budgets=[0.1, 1.5], **SIZES)
    with pytest.raises(ParameterError, match="n_prompts"):
        frontier.frontier_table((model, tok), {}, DOCS, **{**SIZES, "n_prompts": 1})


def test_prompts_longer_than_the_context_are_skipped_or_refused(setup, make_llama):
    model, tok, spec, _ = setup
    lengths = []
    for p in kshot_prompts(
        DOCS, tok, spec, SIZES["k"], 2 * SIZES["n_prompts"], SIZES["demo_tokens"], SIZES["query_tokens"]
    ):
        lengths.append(sum(map(len, frontier.encode(tok, p, spec))))
    short = make_llama(len(tok), max_pos=sorted(lengths)[SIZES["n_prompts"] - 1])
    anchors = {"AnLLM-AC": (short, tok, spec)}
    rows = frontier.frontier_table((model, tok), anchors, DOCS, budgets=[0.5], presses=[], **SIZES)
    fits = rows[rows.method == "AnLLM-AC"].context_tokens + rows[rows.method == "AnLLM-AC"].query_tokens
    assert (fits <= short.config.max_position_embeddings).all()
    tiny = make_llama(len(tok), max_pos=min(lengths) - 1)
    with pytest.raises(ParameterError, match="fit in the models' context"):
        frontier.frontier_table((model, tok), {"AnLLM-AC": (tiny, tok, spec)}, DOCS, presses=[], **SIZES)


def test_failing_press_is_a_warning_not_a_crash(make_model, make_tokenizer):
    # GPT-NeoX: kvpress hooks ``model.model.layers``, which this family does not have
    tok = make_tokenizer(" ".join(DOCS), vocab_size=400)
    from transformers import AutoModelForCausalLM, GPTNeoXConfig

    cfg = GPTNeoXConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        rotary_pct=0.5,
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).eval()
    warnings: list[str] = []
    rows = frontier.frontier_table(
        (model, tok), {}, DOCS, budgets=[0.25], presses=["knorm"], warn=warnings.append, **SIZES
    )
    assert len(warnings) == 1 and warnings[0].startswith("failed: press knorm: ")
    assert set(rows.method) == {"full cache"}
    with pytest.raises(ModelError, match="failed: press knorm"):
        frontier.frontier_table((model, tok), {}, DOCS, budgets=[0.25], presses=["knorm"], **SIZES)


def test_press_ratio_keeps_exact_counts():
    for length in (37, 200, 871):
        for kept in (1, 2, 17, length // 3, length - 1, length):
            ratio = presses.press_ratio(kept, length)
            assert max(1, int(length * (1 - ratio))) == kept
    with pytest.raises(ParameterError, match="kept tokens"):
        presses.press_ratio(0, 10)


def test_encode_query_is_shared(setup):
    _, tok, spec, _ = setup
    prompt, (plain_ctx, query) = _context(setup)
    ac_ctx, ac_query = frontier.encode(tok, prompt, spec)
    assert ac_query == query and len(ac_ctx) == len(plain_ctx) + SIZES["k"]


def test_importing_kvpress_leaves_flex_attention_working():
    """kvpress wraps transformers' attention functions on import; its wrapper breaks
    flex-attention (``dropout`` lands on ``scaling``), so labkit puts the flex entry back."""
    from transformers.integrations.flex_attention import flex_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    from labkit.anchor import presses

    presses.make_press("knorm", 4, 16)
    assert ALL_ATTENTION_FUNCTIONS["flex_attention"] is flex_attention_forward
    assert ALL_ATTENTION_FUNCTIONS["sdpa"] is not None
