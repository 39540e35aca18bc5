"""Explore study 1's pair similarities: pick a model and a threshold, see what it gets wrong.

Reads ``pair_scores.csv`` (one row per MQP pair: ``row, dr_id, split, label``, optionally
``question_1, question_2``, and one score column per system) and ``thresholds.csv``
(``system, threshold, heldout_accuracy``) written by
``notebooks/embeddings_medical.ipynb``. Everything shown is on the held-out doctors, the split
the study reports; the threshold starts at the value chosen on the training doctors.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from labkit import data, studies
from labkit.errors import LabkitError
from labkit.explore import main_control, open_explorer

STUDY = studies.for_explorer(__name__).id  # the registry entry whose explorer this is
FILES = ("pair_scores.csv", "thresholds.csv")
META_COLUMNS = ("row", "dr_id", "split", "label", "question_1", "question_2")
HELDOUT = "test"


def confusion(labels: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """2x2 counts [[TN, FP], [FN, TP]] for ``score >= threshold`` predicting label 1."""
    pred = scores >= threshold
    labels = labels.astype(bool)
    return np.array(
        [[np.sum(~labels & ~pred), np.sum(~labels & pred)], [np.sum(labels & ~pred), np.sum(labels & pred)]]
    )


def nearest_pairs(frame: pd.DataFrame, system: str, threshold: float, k: int = 8) -> pd.DataFrame:
    """The ``k`` held-out pairs whose score lies closest to the threshold (the hard calls)."""
    order = (frame[system] - threshold).abs().sort_values(kind="stable").index[:k]
    out = frame.loc[
        order, [c for c in ("row", "label", system, "question_1", "question_2") if c in frame.columns]
    ].copy()
    out["predicted"] = (out[system] >= threshold).astype(int)
    return out.rename(columns={system: "score"})


def _pairs_html(pairs: pd.DataFrame) -> str:
    rows = []
    for _, r in pairs.iterrows():
        ok = "&#10003;" if r["predicted"] == r["label"] else "&#10007;"
        texts = ""
        if "question_1" in pairs.columns:
            texts = f"<td>{html.escape(str(r['question_1']))}</td><td>{html.escape(str(r['question_2']))}</td>"
        rows.append(
            f"<tr><td>{int(r['row'])}</td><td>{r['score']:.3f}</td>"
            f"<td>{int(r['label'])}</td><td>{int(r['predicted'])} {ok}</td>{texts}</tr>"
        )
    head = "<th>question 1</th><th>question 2</th>" if "question_1" in pairs.columns else ""
    return (
        "<table style='font-size:12px'><tr><th>row</th><th>score</th><th>label</th>"
        f"<th>predicted</th>{head}</tr>{''.join(rows)}</table>"
    )


def _with_texts(frame: pd.DataFrame) -> pd.DataFrame:
    """The question texts: written by the study itself, else joined from the data registry
    when the MQP data is reachable (older results carried only row numbers)."""

    if {"question_1", "question_2"} <= set(frame.columns):
        return frame

    try:
        mqp = data.load("mqp")
    except LabkitError:
        return frame
    texts = mqp[["question_1", "question_2"]]
    return frame.join(texts, on="row") if frame["row"].isin(texts.index).all() else frame


def build(folder: Path):
    import ipywidgets as widgets
    import plotly.graph_objects as go

    scores = pd.read_csv(folder / "pair_scores.csv")
    thresholds = pd.read_csv(folder / "thresholds.csv").set_index("system")
    systems = [c for c in scores.columns if c not in META_COLUMNS]
    held = _with_texts(scores[scores["split"] == HELDOUT].reset_index(drop=True))
    held = held.dropna(subset=systems, how="all")
    labels = held["label"].to_numpy()

    system = widgets.Dropdown(options=systems, value=systems[0], description="model")
    start = float(thresholds["threshold"].get(systems[0], 0.5))
    threshold = main_control(
        widgets.FloatSlider(
            value=round(start, 2),
            min=-0.2,
            max=1.0,
            step=0.01,
            description="threshold",
            continuous_update=False,
            readout_format=".2f",
        )
    )
    matrix = go.FigureWidget(
        go.Heatmap(
            z=[[0, 0], [0, 0]],
            x=["predicted 0", "predicted 1"],
            y=["label 0", "label 1"],
            colorscale="Blues",
            texttemplate="%{z}",
            showscale=False,
        )
    )
    matrix.update_layout(title="held-out doctors: confusion matrix", width=420, height=360, yaxis_autorange="reversed")
    dist = go.FigureWidget()
    for label, colour in ((0, "#D55E00"), (1, "#0072B2")):
        dist.add_histogram(x=[], name=f"label {label}", marker_color=colour, opacity=0.6, nbinsx=40)
    dist.update_layout(
        barmode="overlay", title="cosine similarity by label", width=520, height=360, xaxis_title="cosine similarity"
    )
    summary = widgets.HTML()
    pairs = widgets.HTML()

    def update(*_):
        name = system.value
        valid = held[name].notna().to_numpy()
        s, y = held[name].to_numpy()[valid], labels[valid]
        cm = confusion(y, s, threshold.value)
        tn, fp, fn, tp = cm.ravel()
        acc = (tp + tn) / max(cm.sum(), 1)
        f1 = 2 * tp / max(2 * tp + fp + fn, 1)
        with matrix.batch_update():
            matrix.data[0].z = cm.tolist()
        with dist.batch_update():
            dist.data[0].x = s[y == 0]
            dist.data[1].x = s[y == 1]
            dist.layout.shapes = [
                dict(
                    type="line",
                    x0=threshold.value,
                    x1=threshold.value,
                    y0=0,
                    y1=1,
                    yref="paper",
                    line=dict(dash="dash"),
                )
            ]
        trained = thresholds["threshold"].get(name)
        summary.value = (
            f"<b>{html.escape(name)}</b>: accuracy {acc:.3f}, F1 {f1:.3f} on "
            f"{len(s)} held-out pairs at threshold {threshold.value:.2f}"
            + (f" (chosen on training doctors: {trained:.3f})" if trained is not None and np.isfinite(trained) else "")
        )
        pairs.value = "<b>held-out pairs nearest the threshold</b>" + _pairs_html(
            nearest_pairs(held[valid], name, threshold.value)
        )

    def reset_threshold(change):
        value = thresholds["threshold"].get(change["new"])
        if value is not None and np.isfinite(value):
            threshold.value = round(float(value), 2)
        update()

    system.observe(reset_threshold, names="value")
    threshold.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([system, threshold]), summary, widgets.HBox([matrix, dist]), pairs])


def explorer(root: Path | None = None):
    """The study-1 explorer, or a message saying what to run first."""
    return open_explorer(STUDY, FILES, build, root)
