"""Explore study 2's anchor cache: choose a prompt length, see which tokens the cache keeps.

Reads ``kept_anchors.json`` written by ``notebooks/anchor_attention.ipynb``: for k = 1, 2, ...
demonstrations of real text, the prompt's tokens, which are anchors, which stay in the KV cache
after anchor pruning, and the cache size with and without pruning. Kept tokens are shown in
bold on a blue background (anchors) or black (the still-open sentence); dropped tokens in grey.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from labkit import studies
from labkit.explore import main_control, open_explorer

STUDY = studies.for_explorer(__name__).id  # the registry entry whose explorer this is
FILES = ("kept_anchors.json",)


def token_html(tokens: list[str], is_anchor: list[bool], kept: list[bool]) -> str:
    """The prompt with anchors highlighted and pruned tokens greyed out."""
    spans = []
    for tok, anchor, keep in zip(tokens, is_anchor, kept):
        text = html.escape(tok.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\n"))
        text = text.replace("\n", "&#8629;<br>")
        if anchor and keep:
            style = "background:#cfe3f5;font-weight:bold;color:#0072B2"
        elif keep:
            style = "font-weight:bold;color:#000"
        else:
            style = "color:#aaa"
        spans.append(f"<span style='{style}'>{text}</span>")
    return (
        "<div style='font-family:monospace;font-size:12px;line-height:1.6;max-height:320px;"
        "overflow:auto;border:1px solid #ddd;padding:6px'>" + "".join(spans) + "</div>"
    )


def load_examples(folder: Path) -> dict:
    return json.loads((folder / "kept_anchors.json").read_text(encoding="utf-8"))


def build(folder: Path):
    import ipywidgets as widgets
    import plotly.graph_objects as go

    payload = load_examples(folder)
    examples = sorted(payload["examples"], key=lambda e: e["context_tokens"])
    labels = [f"{e['demonstrations']} demos, {e['context_tokens']} tokens" for e in examples]
    choice = main_control(
        widgets.SelectionSlider(
            options=list(zip(labels, range(len(examples)))),
            value=0,
            description="prompt",
            continuous_update=False,
            layout=widgets.Layout(width="600px"),
            style={"description_width": "60px"},
        )
    )
    bars = go.FigureWidget(
        go.Bar(
            x=["full cache", "anchor cache"],
            y=[0, 0],
            marker_color=["#E69F00", "#0072B2"],
            texttemplate="%{y:.3s}B",
            textposition="outside",
        )
    )
    bars.update_layout(title="KV-cache size after the prompt", yaxis_title="bytes", width=420, height=380)
    curve = go.FigureWidget()
    curve.add_scatter(
        x=[e["context_tokens"] for e in examples],
        y=[100 * (1 - e["kv_bytes_anchor"] / e["kv_bytes_full"]) for e in examples],
        mode="lines+markers",
        name="reduction",
        line=dict(color="#009E73"),
    )
    curve.add_scatter(
        x=[examples[0]["context_tokens"]], y=[0], mode="markers", name="shown", marker=dict(size=14, color="#D55E00")
    )
    curve.update_layout(
        title="KV-cache reduction by prompt length",
        width=480,
        height=380,
        xaxis_title="prompt tokens",
        yaxis_title="reduction (%)",
        yaxis_range=[0, 100],
        showlegend=False,
    )
    summary = widgets.HTML()
    text = widgets.HTML()

    def update(*_):
        e = examples[choice.value]
        reduction = 100 * (1 - e["kv_bytes_anchor"] / e["kv_bytes_full"])
        with bars.batch_update():
            bars.data[0].y = [e["kv_bytes_full"], e["kv_bytes_anchor"]]
        with curve.batch_update():
            curve.data[1].x = [e["context_tokens"]]
            curve.data[1].y = [reduction]
        summary.value = (
            f"model <b>{html.escape(str(payload.get('model', '?')))}</b>, "
            f"AnLLM-{str(payload.get('mode', '?')).upper()}: keeps "
            f"{sum(e['kept'])} of {len(e['tokens'])} tokens "
            f"({sum(e['is_anchor'])} anchors); cache {reduction:.1f}% smaller"
        )
        text.value = token_html(e["tokens"], e["is_anchor"], e["kept"])

    choice.observe(update, names="value")
    update()
    return widgets.VBox([choice, summary, widgets.HBox([bars, curve]), text])


def explorer(root: Path | None = None):
    """The study-2 explorer, or a message saying what to run first."""
    return open_explorer(STUDY, FILES, build, root)
