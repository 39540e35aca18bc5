"""The figure check: each rule fires on a figure that breaks it and stays quiet on a good one."""
import plotly.graph_objects as go
import pytest

from labkit import figcheck, figures
from labkit.errors import LabkitError

pytestmark = pytest.mark.skipif(figures.browser_path() is None,
                                reason="the figure check lays figures out in kaleido's Chromium")


@pytest.fixture(scope="module", autouse=True)
def _browser():
    assert figures._png_server()


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
    figures.save_figure(bad, "figcheck_study", "bad", "caption", show=False)
    assert record.warnings and "does not contain" in record.warnings[0]
    html = (tmp_path / "figcheck_study" / "bad.html").read_text()
    assert 'src="../plotly.min.js"' in html
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000
    assert not (tmp_path / "figcheck_study" / "plotly.min.js").exists()
