"""Explore study 3's summaries: pick a meeting and instruction, read the systems side by side.

Reads ``summaries.jsonl`` written by ``notebooks/meeting_summarization.ipynb``: one line per
(item, instruction, system) with the summary, the reference, ROUGE F1 scores, latency and the
query kind (general / specific), shown in the item's label.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from labkit import studies
from labkit.errors import DataError
from labkit.explore import main_control, open_explorer

STUDY = studies.for_explorer(__name__).id  # the registry entry whose explorer this is
FILES = ("summaries.jsonl",)
FIELDS = ("meeting_id", "query", "instruction", "system", "summary", "reference", "rouge1", "rouge2", "rougeL")
METRICS = ("rouge1", "rouge2", "rougeL")


def load_summaries(path: Path) -> pd.DataFrame:
    """Read the JSONL; a malformed line is a :class:`DataError` naming its line number."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}, line {number}: not JSON ({err.msg})") from None
        missing = [f for f in FIELDS if f not in row]
        if missing:
            raise DataError(f"{path}, line {number}: missing field(s) {', '.join(missing)}")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no summaries")
    frame = pd.DataFrame(rows)
    kind = (
        frame["query_kind"].astype(str) + ": " if "query_kind" in frame else pd.Series("", index=frame.index)
    )  # older files have no query kind
    frame["item"] = frame["meeting_id"].astype(str) + " | " + kind + frame["query"].astype(str).str[:70]
    return frame


def _column(row: pd.Series) -> str:
    scores = " ".join(f"{m.upper().replace('ROUGE', 'R-')} {row[m]:.3f}" for m in METRICS)
    latency = f", {row['latency_s']:.2f} s" if pd.notna(row.get("latency_s")) else ""
    body = html.escape(str(row["summary"])).replace("\n", "<br>")
    return (
        f"<div style='flex:1;min-width:220px;border:1px solid #ddd;padding:6px;"
        f"font-size:12px'><b>{html.escape(str(row['system']))}</b><br><i>{scores}"
        f"{latency}</i><hr>{body}</div>"
    )


def build(folder: Path):
    import ipywidgets as widgets
    import plotly.graph_objects as go

    frame = load_summaries(folder / "summaries.jsonl")
    items = list(dict.fromkeys(frame["item"]))
    systems = list(dict.fromkeys(frame["system"]))
    item = main_control(
        widgets.Dropdown(options=items, value=items[0], description="meeting", layout=widgets.Layout(width="640px"))
    )
    instruction = widgets.Dropdown(options=list(dict.fromkeys(frame["instruction"])), description="instruction")
    chosen = widgets.SelectMultiple(
        options=systems, value=tuple(systems[:4]), description="systems", rows=min(6, len(systems))
    )
    bars = go.FigureWidget()
    for metric, colour in zip(METRICS, ("#0072B2", "#E69F00", "#009E73")):
        bars.add_bar(x=[], y=[], name=metric.replace("rouge", "ROUGE-"), marker_color=colour)
    bars.update_layout(title="ROUGE F1 on this meeting", barmode="group", width=900, height=340, yaxis_title="F1")
    side = widgets.HTML()
    reference = widgets.HTML()

    def update(*_):
        here = frame[(frame["item"] == item.value) & (frame["instruction"] == instruction.value)]
        here = here[here["system"].isin(chosen.value)]
        with bars.batch_update():
            for trace, metric in zip(bars.data, METRICS):
                trace.x = here["system"].tolist()
                trace.y = here[metric].tolist()
        if here.empty:
            side.value = "<i>no summary of this meeting with this instruction by these systems</i>"
            reference.value = ""
            return
        side.value = (
            "<div style='display:flex;gap:8px;flex-wrap:wrap'>"
            + "".join(_column(r) for _, r in here.iterrows())
            + "</div>"
        )
        ref = html.escape(str(here.iloc[0]["reference"])).replace("\n", "<br>")
        reference.value = f"<b>reference</b><div style='font-size:12px'>{ref}</div>"

    for control in (item, instruction, chosen):
        control.observe(update, names="value")
    update()
    return widgets.VBox([item, widgets.HBox([instruction, chosen]), bars, side, reference])


def explorer(root: Path | None = None):
    """The study-3 explorer, or a message saying what to run first."""
    return open_explorer(STUDY, FILES, build, root)
