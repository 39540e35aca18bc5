"""Exploration widgets: built from a results folder, they respond to their controls, and a
missing or outdated folder gives a message with the command to run instead of a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ipywidgets")
import ipywidgets as widgets  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

from labkit.explore import MAIN_CONTROL_CLASS, ResultsMissing, results_folder  # noqa: E402
from labkit.records import RECORD_NAME, RECORD_VERSION  # noqa: E402


def write_record(root: Path, study: str, version: int = RECORD_VERSION) -> Path:
    folder = root / study
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORD_NAME).write_text(
        json.dumps({"record_version": version, "study": study, "labkit_version": "0.0.test"})
    )
    return folder


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def main_control(ui):
    found = [w for w in walk(ui) if MAIN_CONTROL_CLASS in getattr(w, "_dom_classes", ())]
    assert len(found) == 1, "exactly one main control"
    return found[0]


def figure_state(ui) -> str:
    return "|".join(
        json.dumps(w.to_dict()["data"], default=str, sort_keys=True) for w in walk(ui) if isinstance(w, go.FigureWidget)
    )


def html_state(ui) -> str:
    return "|".join(w.value for w in walk(ui) if isinstance(w, widgets.HTML))


def move(control) -> None:
    if isinstance(control, widgets.FloatSlider):
        control.value = round(min(control.max, control.value + 0.15), 2)
    elif isinstance(control, widgets.SelectionSlider):
        control.index = len(control.options) - 1
    else:
        control.value = control.options[-1] if not isinstance(control.options[-1], tuple) else control.options[-1][1]


# ------------------------------------------------------------------- results fixtures
@pytest.fixture
def embeddings_results(tmp_path):
    rng = np.random.default_rng(0)
    folder = write_record(tmp_path, "embeddings_medical")
    n = 120
    label = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "row": np.arange(n),
            "dr_id": rng.integers(1, 12, n),
            "split": np.where(np.arange(n) < 60, "train", "test"),
            "label": label,
            "model a": 0.5 + 0.3 * label + rng.normal(0, 0.15, n),
            "model b": 0.4 + 0.1 * label + rng.normal(0, 0.2, n),
        }
    )
    frame.to_csv(folder / "pair_scores.csv", index=False)
    pd.DataFrame({"system": ["model a", "model b"], "threshold": [0.62, 0.45], "heldout_accuracy": [0.8, 0.6]}).to_csv(
        folder / "thresholds.csv", index=False
    )
    return tmp_path


@pytest.fixture
def anchor_results(tmp_path):
    folder = write_record(tmp_path, "anchor_attention")
    examples = []
    for k in (1, 2, 3):
        tokens = ["The", " cat", " sat", "."] * k + [" It"]
        anchors = [t == "." for t in tokens]
        kept = [a or i == len(tokens) - 1 for i, a in enumerate(anchors)]
        examples.append(
            {
                "demonstrations": k,
                "context_tokens": len(tokens),
                "tokens": tokens,
                "is_anchor": anchors,
                "kept": kept,
                "kv_bytes_full": 1024 * len(tokens),
                "kv_bytes_anchor": 1024 * sum(kept),
            }
        )
    (folder / "kept_anchors.json").write_text(json.dumps({"model": "tiny", "mode": "ep", "examples": examples}))
    return tmp_path


@pytest.fixture
def summaries_results(tmp_path):
    folder = write_record(tmp_path, "meeting_summarization")
    lines = []
    for meeting, base in (("m1", 0.2), ("m2", 0.5)):
        for system, bonus in (("lead-3", 0.0), ("centroid", 0.1)):
            lines.append(
                json.dumps(
                    {
                        "meeting_id": meeting,
                        "query": "Summarize the meeting",
                        "instruction": "long",
                        "system": system,
                        "summary": f"{system} on {meeting}",
                        "reference": "ref",
                        "rouge1": base + bonus,
                        "rouge2": base / 2,
                        "rougeL": base,
                        "latency_s": 0.1,
                    }
                )
            )
    (folder / "summaries.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


# ------------------------------------------------------------------------ the tests
@pytest.mark.parametrize(
    "name,fixture",
    [("embeddings", "embeddings_results"), ("anchor", "anchor_results"), ("summaries", "summaries_results")],
)
def test_moving_the_main_control_changes_the_figure(name, fixture, request):
    import importlib

    root = request.getfixturevalue(fixture)
    module = importlib.import_module(f"labkit.explore.{name}")
    ui = module.explorer(root)
    before, text_before = figure_state(ui), html_state(ui)
    move(main_control(ui))
    assert figure_state(ui) != before
    assert html_state(ui) != text_before


def test_scaling_explorer_tracks_beta_without_results(tmp_path):
    from labkit.explore import scaling

    ui = scaling.explorer(tmp_path)  # no batch results: formulas only, plus a note
    assert "labkit run scaling_laws" in html_state(ui)
    control = main_control(ui)
    control.value = 0.28
    assert "gamma in [0.44, 0.72] (midpoint 0.58)" in html_state(ui)
    assert "2.6x to 4.8x" in html_state(ui)
    before = figure_state(ui)
    control.value = 0.35
    assert figure_state(ui) != before


def test_scaling_explorer_uses_the_bootstrap_betas(tmp_path):
    from labkit.explore import scaling

    folder = write_record(tmp_path, "scaling_laws")
    pd.DataFrame({"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": np.linspace(0.26, 0.30, 50)}).to_csv(
        folder / "bootstrap_params.csv", index=False
    )
    ui = scaling.explorer(tmp_path)
    assert main_control(ui).value == pytest.approx(0.28, abs=0.01)
    assert "bootstrap refits" in html_state(ui)


def test_embeddings_explorer_confusion_counts_match_a_hand_count(embeddings_results):
    from labkit.explore.embeddings import confusion

    frame = pd.read_csv(embeddings_results / "embeddings_medical" / "pair_scores.csv")
    held = frame[frame.split == "test"]
    cm = confusion(held.label.to_numpy(), held["model a"].to_numpy(), 0.62)
    assert cm.sum() == len(held)
    assert cm[1, 1] == ((held.label == 1) & (held["model a"] >= 0.62)).sum()
    assert cm[0, 1] == ((held.label == 0) & (held["model a"] >= 0.62)).sum()


@pytest.mark.parametrize(
    "name,study",
    [("embeddings", "embeddings_medical"), ("anchor", "anchor_attention"), ("summaries", "meeting_summarization")],
)
def test_missing_results_say_what_to_run(name, study, tmp_path):
    import importlib

    ui = importlib.import_module(f"labkit.explore.{name}").explorer(tmp_path)
    assert isinstance(ui, widgets.HTML)
    assert f"labkit run {study}" in ui.value and str(tmp_path) in ui.value


def test_results_from_another_record_format_are_refused(tmp_path):
    write_record(tmp_path, "anchor_attention", version=RECORD_VERSION + 99)
    with pytest.raises(ResultsMissing, match="re-run `labkit run anchor_attention`"):
        results_folder("anchor_attention", (), tmp_path)


def test_missing_result_file_is_named(tmp_path):
    write_record(tmp_path, "meeting_summarization")
    with pytest.raises(ResultsMissing, match="summaries.jsonl"):
        results_folder("meeting_summarization", ("summaries.jsonl",), tmp_path)


def test_malformed_summaries_line_is_named(summaries_results):
    from labkit.errors import DataError
    from labkit.explore.summaries import load_summaries

    path = summaries_results / "meeting_summarization" / "summaries.jsonl"
    path.write_text(path.read_text() + '{"meeting_id": "m3"}\n')
    with pytest.raises(DataError, match=r"line 5: missing field"):
        load_summaries(path)


def test_embeddings_explorer_reads_what_the_study_writes(tmp_path):
    """The contract end to end: labkit.embeddings.study's tables, with question texts."""
    from labkit.embeddings import study, tables
    from labkit.explore import embeddings

    rng = np.random.default_rng(1)
    n = 40
    pairs = pd.DataFrame(
        {
            "row": np.arange(1, n + 1),
            "dr_id": np.repeat([1, 2, 3, 4], 10),
            "split": np.repeat(["train", "val", "test", "test"], 10),
            "label": np.tile([1, 0], n // 2),
            "question_1": [f"q{i} first" for i in range(n)],
            "question_2": [f"q{i} second" for i in range(n)],
        }
    )
    systems = study.Systems(
        scores={"MiniLM": rng.random(n), "MiniLM+siamese": rng.random(n)},
        kind={"MiniLM": "zero-shot cosine", "MiniLM+siamese": "Siamese head"},
    )
    results = tables.results_table(systems, pairs, n_resamples=20)
    folder = write_record(tmp_path, "embeddings_medical")
    tables.pair_scores(pairs, systems).to_csv(folder / "pair_scores.csv", index=False)
    tables.thresholds(results).to_csv(folder / "thresholds.csv", index=False)
    ui = embeddings.explorer(tmp_path)
    dropdown = [w for w in walk(ui) if isinstance(w, widgets.Dropdown)]
    assert list(dropdown[0].options) == ["MiniLM", "MiniLM+siamese"]  # texts are not systems
    import re

    assert re.search(r"<td>q(\d+) first</td><td>q\1 second</td>", html_state(ui))
