"""Study measurements on a tiny random model + in-process tokenizer (unit tests only): prompts,
KV table, kept-anchor payload, latency/speed-up tables, quality table, few-shot panel, errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from tiny_models import TWO_DOCUMENTS

from labkit.anchor.anchors import AnchorSpec
from labkit.anchor.prompts import demonstration_pool, kshot_prompts, prompt_ids_of_length
from labkit.errors import DataError, DataUnavailableError, ParameterError

DOCS = TWO_DOCUMENTS * 6


@pytest.fixture(scope="module")
def setup(ac_model):
    return ac_model


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


def test_kshot_prompts_skip_prompts_longer_than_max_tokens(setup):
    _, tok, spec = setup
    free = kshot_prompts(DOCS, tok, spec, k=2, n_prompts=6, demo_tokens=20, query_tokens=5)
    lengths = sorted(len(tok.encode(p.text, add_special_tokens=False)) for p in free)
    cap = lengths[len(lengths) // 2]
    fitted = kshot_prompts(DOCS, tok, spec, k=2, n_prompts=2, demo_tokens=20, query_tokens=5, max_tokens=cap)
    assert len(fitted) == 2
    assert all(len(tok.encode(p.text, add_special_tokens=False)) <= cap for p in fitted)
    with pytest.raises(DataError, match="too long"):
        kshot_prompts(DOCS, tok, spec, k=2, n_prompts=2, demo_tokens=20, max_tokens=5)


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
    from labkit.anchor import kv_bytes_per_token, study

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
    from labkit import records

    record = records.start("anchor_attention", {})
    path = study.save_kept_anchors(payload, record)
    assert path == tmp_path / "anchor_attention" / "kept_anchors.json"
    assert [o["name"] for o in record.outputs] == ["kept_anchors"]
    assert json.loads(path.read_text())["examples"][2]["demonstrations"] == 3
    from labkit.explore.anchor import token_html  # the explorer can render it

    assert "span" in token_html(
        payload["examples"][0]["tokens"], payload["examples"][0]["is_anchor"], payload["examples"][0]["kept"]
    )


def test_latency_sweep_interleaves_and_speedups_have_intervals(setup):
    from labkit.anchor import study

    model, tok, spec = setup
    lat = study.latency_sweep(
        model, tok, spec, DOCS, [40, 80], new_tokens=3, batch=2, repeats=3, demo_tokens=20, query_tokens=4
    )
    assert len(lat) == 2 * 3 * 3 and set(lat.method) == {"no_cache", "full_cache", "anchor_cache"}
    # interleaved: within each context the methods alternate anchor, full, none, anchor, ...
    for _, part in lat.groupby("context", sort=False):
        assert part.method.tolist() == ["anchor_cache", "full_cache", "no_cache"] * 3
        assert part.repeat.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert (lat.seconds > 0).all() and (lat.decode_s <= lat.seconds).all()
    speed = study.speedup_table(lat)
    assert list(speed.context) == [40, 80] and (speed.repeats == 3).all()
    assert (speed.kv_bytes_anchor < speed.kv_bytes_full).all()
    # the speed-up is the median of the paired per-repeat ratios, inside its interval
    part = lat[lat.context == 80].pivot(index="repeat", columns="method", values="seconds")
    paired = (part.full_cache / part.anchor_cache).median()
    row = speed.iloc[1]
    assert row.speedup_vs_full_cache == pytest.approx(paired)
    for name in ("speedup_vs_no_cache", "speedup_vs_full_cache", "decode_speedup_vs_full_cache"):
        assert speed[f"{name}_lo"].le(speed[name]).all() and speed[name].le(speed[f"{name}_hi"]).all()
    assert (speed.tokens_full == speed.context + 3 - 1).all() and (speed.tokens_anchor < speed.tokens_full).all()
    fig = study.figure1(speed)
    assert len(fig.data) == 8  # 4 bars + speed-ups vs none, full, decode, full-vs-none
    curves = [t for t in fig.data if t.type == "scatter"]
    assert all(t.error_y.arrayminus is not None for t in curves)  # intervals drawn
    assert any(sh.y0 == 1 and sh.line.dash == "dash" for sh in fig.layout.shapes)  # 1x line
    assert len(study.latency_figure(lat).data) == 3
    # memory and throughput: one peak per (context, method) from the warm-up, constant over
    # repeats, growing with the context (at these short contexts the anchor prefill is one chunk
    # and may peak above the full cache: tests/anchor/test_prefill_memory.py guards long ones)
    assert (lat.tokens_per_s == 2 * 3 / lat.seconds).all() and (lat.peak_bytes > 0).all()
    assert (lat.groupby(["context", "method"]).peak_bytes.nunique() == 1).all()
    peak = lat.groupby(["context", "method"]).peak_bytes.first().unstack()
    assert (peak.loc[80] > peak.loc[40]).all()
    mem = study.memory_throughput_figure(lat)
    assert len(mem.data) == 6 and mem.layout.yaxis.title.text.startswith("MiB")
    with pytest.raises(ParameterError, match="contexts"):
        study.latency_sweep(model, tok, spec, DOCS, [])
    with pytest.raises(ParameterError, match="repeats"):
        study.latency_sweep(model, tok, spec, DOCS, [40], repeats=0)


def test_median_interval_and_nice_ticks():
    from labkit.anchor.figures import nice_ticks
    from labkit.anchor.latency import median_interval

    mid, lo, hi = median_interval([2.0, 2.2, 1.9, 2.1, 2.05, 1.95, 2.15])
    assert mid == pytest.approx(2.05) and 1.9 <= lo < mid < hi <= 2.2
    assert median_interval([3.0])[0] == 3.0 and all(v != v for v in median_interval([3.0])[1:])
    assert median_interval([1.5, 1.5]) == (1.5, 1.5, 1.5)
    # 2.88 / 5.75 / 8.63 was the old axis: now round steps that cover the data
    for top, step in ((11.5, 2), (3.2, 1), (1.3, 0.25), (50, 10), (0.4, 0.1)):
        got_step, upper = nice_ticks(top)
        assert got_step == pytest.approx(step) and upper >= top and upper - top < got_step


def _speed_row(dec, dec_lo, tot, tot_lo, dec_short_lo=1.0):
    """Two contexts: the short one (decode CI lower end ``dec_short_lo``), the long one."""
    rows = []
    for context, d, d_lo, t, t_lo in ((100, 1.0, dec_short_lo, 1.0, 0.95), (8192, dec, dec_lo, tot, tot_lo)):
        rows.append(
            {
                "context": context,
                "speedup_vs_no_cache": 5.0,
                "speedup_vs_no_cache_lo": 4.5,
                "speedup_vs_no_cache_hi": 5.5,
                "full_speedup_vs_no_cache": 4.8,
                "speedup_vs_full_cache": t,
                "speedup_vs_full_cache_lo": t_lo,
                "speedup_vs_full_cache_hi": t + 0.2,
                "decode_speedup_vs_full_cache": d,
                "decode_speedup_vs_full_cache_lo": d_lo,
                "decode_speedup_vs_full_cache_hi": d + 0.5,
            }
        )
    return pd.DataFrame(rows)


def test_quality_table_scores_the_same_tokens(setup):
    from labkit.anchor import study

    model, tok, spec = setup
    q = study.quality_table(
        {"base": (model, tok), "anchor-trained": (model, tok)},
        spec,
        DOCS,
        context=64,
        max_tokens=400,
        batch_size=4,
        chunk=16,
    )
    assert len(q) == 4 and q.tokens_scored.nunique() == 1 and q.tokens_scored.iloc[0] > 200
    assert q.perplexity.gt(1).all() and q.next_token_accuracy.between(0, 1).all()
    by = q.set_index(["model", "inference"])
    # same weights: anchor rows agree; full rows differ only by the <AC> tokens in the input
    assert by.loc[("base", "anchor")].perplexity == pytest.approx(by.loc[("anchor-trained", "anchor")].perplexity)
    assert by.loc[("base", "full")].perplexity != by.loc[("anchor-trained", "full")].perplexity
    kv = pd.DataFrame([{"demonstrations": 5, "prompt_tokens": 500, "kept_tokens": 10, "kv_reduction": 0.98}])
    # rows: decode at 8192 (>= 2x), total at 8192 (>= 1.2x), decode at 100 (>= 0.91x), then
    # reference rows (met empty): recompute beside the full cache, KV reduction, ppl gaps
    res = study.results_table(kv, _speed_row(3.0, 2.4, 1.5, 1.3), q)
    assert res.met.tolist()[:3] == [True, True, True]
    assert res.met.iloc[3:].isna().all() and "3.00x [2.40, 3.50]" in res.measured.iloc[0]
    assert "full 4.80x" in res.measured.iloc[3]
    # medians above target but interval lower ends below it: not met
    res = study.results_table(kv, _speed_row(3.0, 1.9, 1.5, 1.1, dec_short_lo=0.85), q)
    assert res.met.tolist()[:3] == [False, False, False]
    # a single repeat has no interval, so no speed-up target can be declared met
    res = study.results_table(kv, _speed_row(9.0, float("nan"), 3.0, float("nan")), q)
    assert res.met.tolist()[:2] == [False, False] and "one repeat" in res.measured.iloc[0]


def test_fewshot_panel_skips_unavailable_and_scores_items(setup):
    from labkit.anchor import study

    model, tok, spec = setup

    class Rec:
        warnings: list = []

        def warn(self, msg):
            self.warnings.append(msg)

    def loader(task):
        if task == "piqa":
            return pd.DataFrame(
                [
                    {"goal": f"Open a jar {i}", "sol1": "twist the lid", "sol2": "eat it", "label": i % 2}
                    for i in range(8)
                ]
            )
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


def test_study_bad_input_tokenizer_without_anchor_and_too_long(setup, make_tokenizer, make_llama):
    from labkit.anchor import study
    from labkit.errors import ModelError

    model, tok, spec = setup
    plain_tok = make_tokenizer(" ".join(DOCS), vocab_size=400)  # no <AC> added
    with pytest.raises(ModelError, match="<AC>"):
        study.kv_cache_table(model, plain_tok, spec, DOCS, ks=(1,), demo_tokens=20)
    with pytest.raises(ModelError, match="<AC>"):
        study.quality_table({"base": (model, plain_tok)}, spec, DOCS, context=64, max_tokens=100)
    short = make_llama(len(tok), hidden=16, layers=1, heads=2, max_pos=32)
    with pytest.raises(DataError, match="max_tokens=32"):  # no 3-shot prompt fits 32 positions
        study.kv_cache_table(short, tok, spec, DOCS, ks=(3,), demo_tokens=20)
