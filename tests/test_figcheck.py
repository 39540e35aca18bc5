"""The figure check: each rule fires on a figure that breaks it and stays quiet on a good one."""

import plotly.graph_objects as go
import pytest

from labkit import figcheck, figures, png
from labkit.errors import LabkitError

pytestmark = pytest.mark.skipif(
    png.browser_path() is None, reason="the figure check lays figures out in kaleido's Chromium"
)


@pytest.fixture(scope="module", autouse=True)
def _browser():
    assert png.png_server()


def test_good_figure_has_no_problems():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[10, 12, 11], name="a"))
    fig.add_trace(go.Scatter(x=[1, 2, 3], y=[9, 13, 12], name="b"))
    assert figcheck.check_figure(figcheck.readable(fig)) == []


def test_log_axis_given_linear_bounds_is_caught():
    # the prompt_lengths bug: a log axis with a range written in data units
    fig = go.Figure(go.Scatter(x=[200, 900, 4000], y=[1, 2, 3], mode="markers"))
    fig.update_xaxes(type="log", range=[0, 270])
    problems = figcheck.check_figure(fig)
    assert any("wider than the data" in p for p in problems), problems


def test_range_that_misses_data_is_caught():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[5, 6, 7]))
    fig.update_yaxes(range=[0, 6])
    assert any("does not contain" in p for p in figcheck.check_figure(fig))


def test_error_bars_count_as_data():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[5, 6], error_y=dict(type="data", array=[3, 3])))
    fig.update_yaxes(range=[4.5, 6.5])
    assert any("does not contain" in p for p in figcheck.check_figure(fig))


def test_decades_on_a_linear_axis_and_a_log_axis_over_too_little():
    wide = go.Figure(go.Bar(x=["siamese", "fine-tune"], y=[0.02, 11.0]))
    assert any("decades on a linear axis" in p for p in figcheck.check_figure(wide))
    wide.update_yaxes(type="log")
    assert figcheck.check_figure(wide) == []
    narrow = go.Figure(go.Scatter(x=[1, 2, 3], y=[2.0, 2.5, 3.0]))
    narrow.update_yaxes(type="log")
    assert any("log axis over" in p for p in figcheck.check_figure(narrow))


def test_legend_over_colourbar_is_caught_and_horizontal_legend_is_not():
    fig = go.Figure(go.Contour(z=[[1, 2], [3, 4]], x=[1, 2], y=[1, 2]))
    fig.add_trace(go.Scatter(x=[1.2, 1.8], y=[1.5, 1.5], name="optimum"))
    fig.add_trace(go.Scatter(x=[1.3, 1.7], y=[1.2, 1.8], name="frontier"))
    assert any("colourbar" in p for p in figcheck.check_figure(fig))
    fig.update_layout(legend=dict(orientation="h", y=-0.2))
    assert not any("colourbar" in p for p in figcheck.check_figure(fig))


def test_text_labels_are_unclipped_by_readable():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[1, 2], text=["a long label", "b"], mode="markers+text"))
    assert any("clipped" in p for p in figcheck.check_figure(fig))
    assert not any("clipped" in p for p in figcheck.check_figure(figcheck.readable(fig)))
    assert fig.layout.xaxis.automargin is True


def test_save_figure_raises_in_strict_mode_and_warns_otherwise(tmp_path, monkeypatch):
    from labkit import records

    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    bad = go.Figure(go.Scatter(x=[1, 2, 3], y=[5, 6, 7]))
    bad.update_yaxes(range=[0, 6])
    monkeypatch.setenv("LABKIT_STRICT_FIGURES", "1")
    with pytest.raises(LabkitError, match="figcheck_study/bad does not read right"):
        figures.save_figure(bad, "figcheck_study", "bad", "caption", show=False)
    assert not (tmp_path / "figcheck_study" / "bad.html").exists()
    monkeypatch.setenv("LABKIT_STRICT_FIGURES", "0")
    record = records.start("figcheck_study", {})
    figures.save_figure(bad, record, "bad", "caption", show=False)
    assert record.warnings and "does not contain" in record.warnings[0]
    html = (tmp_path / "figcheck_study" / "bad.html").read_text()
    assert 'src="../plotly.min.js"' in html
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert not (tmp_path / "figcheck_study" / "plotly.min.js").exists()


def test_title_pinned_to_the_canvas_top_is_caught_and_readable_anchors_it():
    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[10, 12, 11]))
    fig.update_layout(title="A title", title_automargin=True)  # the template's old placement
    assert any("cut at the top" in p for p in figcheck.check_figure(fig))
    figcheck.readable(fig)
    assert fig.layout.title.yref == "paper" and fig.layout.title.yanchor == "bottom"
    assert figcheck.check_figure(fig) == []


def test_axis_type_for_agrees_with_the_figure_check():
    """The helper every study uses picks the axis type the check accepts, on both sides."""
    for values in ([0.02, 0.4, 11.0], [2.9, 3.4, 5.1], [130.0, 180.0, 240.0], [1e6, 1e9, 1e12]):
        fig = go.Bar(x=["a", "b", "c"], y=values)
        fig = go.Figure(fig)
        fig.update_yaxes(type=figures.axis_type_for(values))
        assert figcheck.check_figure(figcheck.readable(fig)) == [], values
    assert figures.axis_type_for([0.0, 1.0, 1000.0]) == "linear"  # zero cannot go on a log axis
    assert figures.axis_type_for([300, 9000]) == "linear"
    assert figures.axis_type_for([300, 9000], log_above=1.0) == "log"
    with pytest.raises(LabkitError, match="log_above"):
        figures.axis_type_for([1, 10], log_above=0.5)


def test_tables_print_plain_numbers(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    split = pd.DataFrame(
        {
            "split": ["test", "train"],
            "pairs": [np.int64(260), np.int64(2788)],
            "doctors": [[np.int64(5)], [np.int64(1), np.int64(2)]],
        }
    )
    paths = figures.save_table(split, "figcheck_study", "split", "Doctor-wise split")
    text = paths["md"].read_text() + paths["csv"].read_text()
    assert "np.int64" not in text and "[" not in text
    assert "| 1, 2 " in paths["md"].read_text()
    assert isinstance(split["doctors"][1], list)  # the caller's frame is left as it was


def test_device_caption_names_the_device():
    assert (
        figures.device_caption({"device": "cuda", "name": "NVIDIA H100", "dtype": "bfloat16"})
        == "Measured on cuda (NVIDIA H100, bfloat16)."
    )
    cpu = figures.device_caption({"device": "cpu", "name": "CPU", "dtype": "float32"})
    assert cpu.startswith("Measured on cpu (") and "float32" in cpu


def test_readable_title_clears_subplot_titles():
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("left panel", "right panel"))
    fig.add_scatter(x=[1, 2], y=[1, 2], row=1, col=1)
    fig.update_layout(title="Overall title")
    figcheck.readable(fig)
    assert fig.layout.title.pad.b > figcheck.TITLE_GAP  # room for the subplot titles' line
    plain = figcheck.readable(go.Figure(go.Scatter(x=[1, 2], y=[1, 2]), layout=dict(title="t")))
    assert plain.layout.title.pad.b == figcheck.TITLE_GAP


def test_study_figures_pick_their_axis_from_the_data():
    """The figures named in issue 12: epoch energy goes log when a fine-tune sits beside
    Siamese heads (linear otherwise), decoding time goes linear over a fraction of a decade,
    and each passes the check."""
    import pandas as pd

    from labkit.anchor.figures import latency_figure
    from labkit.embeddings.figures import epoch_figure

    heads = pd.DataFrame(
        {
            "system": ["a+siamese"] * 3,
            "epoch": [1, 2, 3],
            "energy_kwh": [1.4e-6, 1.2e-6, 1.5e-6],
            "emissions_g": [5e-4] * 3,
        }
    )
    tuned = pd.DataFrame(
        {
            "system": ["a-finetuned"] * 2,
            "epoch": [1, 2],
            "energy_kwh": [3.0e-3, 2.8e-3],
            "emissions_g": [1.0, 1.0],
        }
    )
    for epochs, kind in ((heads, "linear"), (pd.concat([heads, tuned]), "log")):
        fig = figcheck.readable(epoch_figure(epochs, "estimated"))
        assert (fig.layout.yaxis.type or "linear") == kind
        assert figcheck.check_figure(fig) == []
    latency = pd.DataFrame(
        [
            {"method": m, "context": c, "ms_per_token": base * (1 + c / 500) + r}
            for m, base in (("no_cache", 2.0), ("full_cache", 0.8), ("anchor_cache", 1.0))
            for c in (64, 128, 240)
            for r in (0.0, 0.1, 0.3)
        ]
    )
    fig = figcheck.readable(latency_figure(latency))
    assert fig.layout.yaxis.type == "linear" and figcheck.check_figure(fig) == []
