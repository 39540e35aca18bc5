"""Study measurements on a tiny random model + in-process tokenizer (unit tests only): prompts,
KV table, kept-anchor payload, latency/speed-up tables, quality table, few-shot panel, errors."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from labkit.anchor.anchors import AnchorSpec, add_anchor_token
from labkit.anchor.prompts import demonstration_pool, kshot_prompts, prompt_ids_of_length
from labkit.errors import DataError, DataUnavailableError, ParameterError
from test_anchors import make_tokenizer  # same folder

DOCS = [
    "First Citizen: Before we proceed any further, hear me speak. All: Speak, speak! "
    "We are accounted poor citizens, the patricians good. What authority surfeits on would "
    "relieve us. If they would yield us but the superfluity, while it were wholesome, we might "
    "guess they relieved us humanely. But they think we are too dear.",
    "Speaker A: Okay, so the next item is the remote control design. Speaker B: I think the "
    "buttons should be bigger. Speaker A: Why is that? Speaker B: Users told us they lose it. "
    "Speaker C: We could add a locator beep. Speaker A: Good idea, let us note that.",
] * 6


@pytest.fixture(scope="module")
def setup():
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer(" ".join(DOCS), vocab_size=400)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4,
                                         max_position_embeddings=512)).eval()
    spec = AnchorSpec(mode="ac")
    add_anchor_token(model, tok, spec)
    return model, tok, spec


def test_kshot_prompts_close_each_demonstration(setup):
    _, tok, spec = setup
    prompts = kshot_prompts(DOCS, tok, spec, k=3, n_prompts=2, demo_tokens=20, query_tokens=5)
    assert len(prompts) == 2 and all(p.k == 3 for p in prompts)
    for p in prompts:
        assert p.text.count("<AC>") == 3 and not p.text.endswith("<AC>")
        assert len(tok.encode(p.query, add_special_tokens=False)) <= 5
        for demo in p.demonstrations:
            assert len(tok.encode(demo, add_special_tokens=False)) >= 20 - 3
    assert prompts[0].demonstrations != prompts[1].demonstrations
    ep = kshot_prompts(DOCS, tok, AnchorSpec(mode="ep"), k=2, demo_tokens=20)[0]
    assert "<AC>" not in ep.text
    ids = prompt_ids_of_length(DOCS, tok, spec, 60, batch=2, demo_tokens=20)
    assert ids.shape == (2, 60)


def test_prompt_bad_input(setup):
    _, tok, spec = setup
    with pytest.raises(DataError, match="demonstrations"):
        demonstration_pool(DOCS[:1], tok, demo_tokens=10_000, n=2)
    with pytest.raises(ParameterError, match="demo_tokens"):
        demonstration_pool(DOCS, tok, demo_tokens=0, n=2)
    with pytest.raises(ParameterError, match="k "):
        kshot_prompts(DOCS, tok, spec, k=-1)
    with pytest.raises(ParameterError, match="length"):
        prompt_ids_of_length(DOCS, tok, spec, 3)


def test_kv_table_and_kept_payload(setup, tmp_path, monkeypatch):
    from labkit.anchor import study
    from labkit.anchor.inference import kv_bytes_per_token

    model, tok, spec = setup
    kv = study.kv_cache_table(model, tok, spec, DOCS, ks=(1, 3), n_prompts=2, demo_tokens=20)
    assert len(kv) == 4
    per_tok = kv_bytes_per_token(model)
    assert (kv.kv_bytes_full == per_tok * kv.prompt_tokens).all()
    assert (kv.kv_bytes_anchor == per_tok * kv.kept_tokens).all()
    # kept = one <AC> per demonstration + the open query
    assert (kv.anchors == kv.demonstrations).all()
    assert (kv.kept_tokens < kv.prompt_tokens).all()
    assert kv.groupby("demonstrations").kv_reduction.mean().is_monotonic_increasing

    payload = study.kept_anchor_examples(model, tok, spec, DOCS, "tiny", ks=(1, 2, 3), demo_tokens=20)
    assert payload["mode"] == "ac" and [e["demonstrations"] for e in payload["examples"]] == [1, 2, 3]
    for e in payload["examples"]:
        n = e["context_tokens"]
        assert len(e["tokens"]) == len(e["is_anchor"]) == len(e["kept"]) == n
        assert all(k for k, a in zip(e["kept"], e["is_anchor"]) if a)  # anchors are kept
        assert e["kept"][-1] and not e["kept"][0]
        assert e["kv_bytes_anchor"] * n == e["kv_bytes_full"] * sum(e["kept"])
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    path = study.save_kept_anchors(payload)
    assert path == tmp_path / "anchor_attention" / "kept_anchors.json"
    assert json.loads(path.read_text())["examples"][2]["demonstrations"] == 3
    from labkit.explore.anchor import token_html  # the explorer can render it
    assert "span" in token_html(payload["examples"][0]["tokens"], payload["examples"][0]["is_anchor"],
                                payload["examples"][0]["kept"])


def test_latency_sweep_and_speedups(setup):
    from labkit.anchor import study

    model, tok, spec = setup
    lat = study.latency_sweep(model, tok, spec, DOCS, [40, 80], new_tokens=3, batch=2, repeats=1,
                              demo_tokens=20, query_tokens=4)
    assert set(lat.method) == {"no_cache", "full_cache", "anchor_cache"} and len(lat) == 6
    assert (lat.seconds > 0).all() and (lat.decode_s <= lat.seconds).all()
    speed = study.speedup_table(lat)
    assert list(speed.context) == [40, 80]
    assert (speed.kv_bytes_anchor < speed.kv_bytes_full).all()
    row = speed.iloc[1]
    assert row.speedup_vs_full_cache == pytest.approx(row.full_cache_s / row.anchor_cache_s)
    fig = study.figure1(speed)
    assert len(fig.data) == 6
    assert (speed.tokens_full == speed.context + 3 - 1).all() and (speed.tokens_anchor < speed.tokens_full).all()
    assert len(study.latency_figure(lat).data) == 3
    with pytest.raises(ParameterError, match="contexts"):
        study.latency_sweep(model, tok, spec, DOCS, [510], new_tokens=5)
    with pytest.raises(ParameterError, match="contexts"):
        study.latency_sweep(model, tok, spec, DOCS, [])


def test_quality_table_scores_the_same_tokens(setup):
    from labkit.anchor import study

    model, tok, spec = setup
    q = study.quality_table({"base": (model, tok), "anchor-trained": (model, tok)}, spec, DOCS,
                            context=64, max_tokens=400, batch_size=4, chunk=16)
    assert len(q) == 4 and q.tokens_scored.nunique() == 1 and q.tokens_scored.iloc[0] > 200
    assert q.perplexity.gt(1).all() and q.next_token_accuracy.between(0, 1).all()
    by = q.set_index(["model", "inference"])
    # same weights: anchor rows agree; full rows differ only by the <AC> tokens in the input
    assert by.loc[("base", "anchor")].perplexity == pytest.approx(by.loc[("anchor-trained", "anchor")].perplexity)
    assert by.loc[("base", "full")].perplexity != by.loc[("anchor-trained", "full")].perplexity
    res = study.results_table(pd.DataFrame([{"demonstrations": 5, "prompt_tokens": 500, "kept_tokens": 10,
                                             "kv_reduction": 0.98}]),
                              pd.DataFrame([{"context": 100, "speedup_vs_no_cache": 4.0,
                                             "speedup_vs_full_cache": 1.1, "decode_speedup_vs_no_cache": 5.0,
                                             "decode_speedup_vs_full_cache": 1.3}]), q)
    assert res.met.tolist()[:3] == [True, True, False]


def test_fewshot_panel_skips_unavailable_and_scores_items(setup):
    from labkit.anchor import study

    model, tok, spec = setup

    class Rec:
        warnings: list = []

        def warn(self, msg):
            self.warnings.append(msg)

    def loader(task):
        if task == "piqa":
            return pd.DataFrame([{"goal": f"Open a jar {i}", "sol1": "twist the lid", "sol2": "eat it",
                                  "label": i % 2} for i in range(8)])
        raise DataUnavailableError(f"dataset {task!r} not available")

    rec = Rec()
    frame = study.fewshot_panel(model, tok, spec, k=2, n_eval=3, record=rec, loader=loader)
    assert list(frame.task) == ["piqa"] and frame["items"].iloc[0] == 3
    assert frame.accuracy_full.between(0, 1).all() and frame.accuracy_anchor.between(0, 1).all()
    assert len(rec.warnings) == 2 and "openbookqa" in rec.warnings[0]
    none = study.fewshot_panel(model, tok, spec, tasks=("boolq",), record=rec, loader=loader)
    assert none is None
    with pytest.raises(ParameterError, match="few-shot task"):
        study.fewshot_items("hellaswag", pd.DataFrame([{"x": 1}]))
    items = study.fewshot_items("boolq", pd.DataFrame([{"passage": "p", "question": "q", "answer": True}]))
    assert items[0]["answer"] == 1 and items[0]["choices"] == [" no", " yes"]


def test_study_bad_input_tokenizer_without_anchor_and_too_long(setup):
    from transformers import LlamaConfig, LlamaForCausalLM

    from labkit.anchor import study
    from labkit.errors import ModelError

    model, tok, spec = setup
    plain_tok = make_tokenizer(" ".join(DOCS), vocab_size=400)  # no <AC> added
    with pytest.raises(ModelError, match="<AC>"):
        study.kv_cache_table(model, plain_tok, spec, DOCS, ks=(1,), demo_tokens=20)
    with pytest.raises(ModelError, match="<AC>"):
        study.quality_table({"base": (model, plain_tok)}, spec, DOCS, context=64, max_tokens=100)
    short = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         max_position_embeddings=32)).eval()
    with pytest.raises(ParameterError, match="max_position_embeddings"):
        study.kv_cache_table(short, tok, spec, DOCS, ks=(3,), demo_tokens=20)
