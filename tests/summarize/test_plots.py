"""The study's figures read right (figure check in kaleido's Chromium) and carry the flag."""

import numpy as np
import pandas as pd
import pytest

from labkit import figcheck, png
from labkit.summarize import plots

needs_browser = pytest.mark.skipif(
    png.browser_path() is None, reason="the figure check lays figures out in kaleido's Chromium"
)
CONTEXTS = {"tiny LM (ours)": 256, "FLAN-T5": 2048, "LLaMA-2": 4096, "GPT-3.5-turbo-16k": 16384}


def _scores():
    rows = []
    systems = [
        ("Lead-k", "extractive", 0.002, False),
        ("TextRank (MiniLM)", "extractive", 11.0, False),
        ("Oracle (greedy)", "extractive", 0.08, False),
        ("Constant (best train reference)", "baseline", 1e-5, True),
        ("tiny LM 1.6M (fine-tuned)", "fine-tuned", 0.4, True),
    ]
    for inst in ("long", "medium", "short"):
        for k, (name, kind, latency, bad) in enumerate(systems):
            r1 = 20.0 + 3 * k
            rows.append(
                {
                    "system": name,
                    "kind": kind,
                    "instruction": inst,
                    "rouge1": r1,
                    "rouge1_low": r1 - 2,
                    "rouge1_high": r1 + 2,
                    "rouge2": 5.0,
                    "rouge2_low": 4.0,
                    "rouge2_high": 6.0,
                    "rougeL": 15.0,
                    "rougeL_low": 14.0,
                    "rougeL_high": 16.0,
                    "minilm_cos": 50.0 - 2 * k,
                    "minilm_cos_low": 48.0 - 2 * k,
                    "minilm_cos_high": 52.0 - 2 * k,
                    "latency_s": latency,
                    "usd_per_1000": latency * 0.1 / 3.6,
                    "energy_wh_per_summary": latency * 10,
                    "degenerate": bad,
                    "degenerate_reason": "19% of items share their output" if bad else "",
                    "degenerate_tags": "duplicates" if bad else "",
                }
            )
    return pd.DataFrame(rows)


def _paired():
    rows = []
    for queries in ("general", "specific", "all"):
        for inst in ("long", "medium", "short"):
            for metric, shift in (("rouge1", 1.0), ("minilm_cos", -0.5)):
                d = shift if inst != "short" else -2.0
                rows.append(
                    {
                        "queries": queries,
                        "instruction": inst,
                        "metric": metric,
                        "mean_diff": d,
                        "low": d - 0.8,
                        "high": d + 0.8,
                        "items": 40,
                        "meetings": 5,
                    }
                )
    return pd.DataFrame(rows)


def test_paired_figure_marks_intervals_that_exclude_zero():
    fig = plots.paired_figure(_paired(), "A minus B")
    assert len(fig.data) == 2 and len(fig.data[0].y) == 9
    symbols = list(fig.data[0].marker.symbol)
    assert symbols.count("diamond") == 9  # every rouge1 interval here excludes 0
    low, high = fig.layout.xaxis.range
    assert low < -2.8 and high > 1.8  # the data and the zero line fit


@pytest.mark.parametrize("tokens, kind", [([9000, 12000, 18000, 30000], "log"), ([100, 150, 200, 260], "linear")])
def test_prompt_lengths_axis_holds_the_data(tokens, kind):
    fig = plots.lengths_figure(
        pd.DataFrame({"prompt_tokens": tokens}), CONTEXTS if kind == "log" else {"tiny LM (ours)": 256}
    )
    assert fig.layout.xaxis.type == kind
    if kind == "log":  # explicit range in log10 units around prompts and contexts
        low, high = fig.layout.xaxis.range
        assert low <= np.log10(256) and high >= np.log10(30000) and high < 5
    bars = fig.data[0]
    assert int(np.sum(bars.y)) == len(tokens)


@needs_browser
def test_study_figures_pass_the_figure_check():
    assert png.png_server()
    scores = _scores()
    two_kinds = pd.concat(
        [scores.assign(queries="general"), scores.assign(queries="specific"), scores.assign(queries="all")],
        ignore_index=True,
    )
    for fig in (
        plots.lengths_figure(pd.DataFrame({"prompt_tokens": [9000, 12000, 30000]}), CONTEXTS),
        plots.pareto_figure(scores, "medium"),
        plots.main_figure(scores),
        plots.main_figure(two_kinds),
        plots.paired_figure(_paired(), "A minus B"),
    ):
        assert figcheck.check_figure(figcheck.readable(fig)) == []


def test_flagged_systems_are_marked_in_figures():
    scores = _scores()
    pareto = plots.pareto_figure(scores, "medium")
    labels = [t.name for t in pareto.data if t.showlegend]
    assert "5 tiny LM 1.6M (fine-tuned) ⚠ degenerate: duplicates" in labels
    assert all(t.cliponaxis is False for t in pareto.data)
    assert "⚠ degenerate" in pareto.layout.title.text
    main = plots.main_figure(scores)
    assert any("⚠ degenerate: duplicates" in str(y) for t in main.data for y in t.y)
    assert "tiny LM 1.6M (fine-tuned) (19% of items" in plots.flag_note(scores)
    assert plots.flag_note(scores[~scores["degenerate"]]) == ""
