"""Atomic io, config/profiles, carbon, figures, tables, run records, gallery, notebook checks."""

import json

import pandas as pd
import plotly.graph_objects as go
import pytest

from labkit import carbon, config, figures, io, notebook, png, records
from labkit.errors import LabkitError, ParameterError
from labkit.run import gallery


@pytest.fixture
def out(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    return tmp_path


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "result.json"
    io.write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_profiles_resolve_overrides_and_reject_unknowns(monkeypatch):
    table = {
        "smoke": {"n": 1, "m": 2},
        "default": {"n": 10, "m": 20},
        "paper": {"n": 100, "m": 200},
    }
    assert config.resolve(table, "smoke", n=None, m=5) == {"n": 1, "m": 5, "profile": "smoke"}
    monkeypatch.setenv("LABKIT_PROFILE", "paper")
    assert config.resolve(table)["n"] == 100
    with pytest.raises(ParameterError, match="did you mean 'n'"):
        config.resolve(table, "smoke", nn=3)
    with pytest.raises(ParameterError, match="unknown profile 'tiny'"):
        config.resolve(table, "tiny")


def test_carbon_measures_each_task_and_says_how():
    with carbon.CarbonSession("FRA") as session:
        for epoch in range(2):
            with session.task(f"epoch_{epoch}"):
                sum(i * i for i in range(200_000))
    assert [m.task for m in session.measurements] == ["epoch_0", "epoch_1"]
    for m in session.measurements:
        assert m.energy_kwh > 0 and m.emissions_g > 0 and m.duration_s > 0 and m.country == "FRA"
        assert "CPU" in m.power_method
    assert session.total()["tasks"] == 2


def test_figure_and_table_are_written_and_recorded(out):
    record = records.start("unit", {"profile": "smoke", "hf_token": "hf_abcdefghijklmnopqrstuvwxyz"}, {"python": 0})
    fig = go.Figure(go.Scatter(x=[1, 2], y=[2, 1]))
    paths = figures.save_figure(fig, record, "line", "A line.", show=False)
    figures.save_table(pd.DataFrame({"a": [1.5, 2.25]}), record, "numbers", "Two numbers.")
    assert paths["html"].read_text().count("<html") == 1
    if png.browser_path():
        assert paths["png"].read_bytes()[:8] == notebook.PNG_MAGIC
    assert (out / "unit" / "numbers.md").read_text().startswith("**Two numbers.**")
    saved = json.loads(record.finish().read_text())
    assert saved["parameters"]["hf_token"] == records.REDACTED
    assert {o["name"] for o in saved["outputs"]} == {"line", "numbers"}
    assert saved["packages"]["torch"] and saved["record_version"] == records.RECORD_VERSION
    assert "cpu_count" in saved["hardware"] and saved["wall_time_s"] >= 0
    data = pd.read_csv(paths["data"])
    assert data.to_dict("list") == {"trace": ["trace 0", "trace 0"], "x": [1, 2], "y": [2, 1]}
    page = gallery.write(out).read_text()
    assert "line" in page and "[plotted data](unit/line.data.csv)" in page
    assert "[run record](unit/run_record.json)" in page


def test_markdown_tables_keep_integers_whole_beside_floats(out):
    frame = pd.DataFrame({"context": [512, 32768], "share": [0.004310344, 0.99]})
    markdown = figures.save_table(frame, "unit", "mixed", "Mixed.")["md"].read_text()
    assert "|     32768 | 0.99" in markdown and "e+04" not in markdown and "0.00431" in markdown


def test_figure_data_flattens_heatmaps_and_names_traces():
    heat = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]], x=["a", "b"], y=["r", "s"]))
    frame = figures.figure_data(heat)
    assert frame[["x", "y", "z"]].values.tolist() == [
        ["a", "r", 1],
        ["b", "r", 2],
        ["a", "s", 3],
        ["b", "s", 4],
    ]
    hist = go.Figure(go.Histogram(x=[0.1, 0.2, 0.2], name="scores"))
    assert figures.figure_data(hist).to_dict("list") == {
        "trace": ["scores"] * 3,
        "x": [0.1, 0.2, 0.2],
    }


def test_secrets_from_the_environment_never_reach_a_record(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-123")
    assert records.redact({"note": "called with s3cr3t-value-123"}) == {"note": records.REDACTED}
    assert records.redact({"model": "gpt", "api_key": "x"}) == {
        "model": "gpt",
        "api_key": records.REDACTED,
    }


def test_notebook_end_fails_when_a_promised_output_is_missing(out, monkeypatch):
    from labkit import device

    monkeypatch.setenv("LABKIT_DEVICE", "")  # begin() sets it for the kernel; undo after the test
    monkeypatch.setenv("LABKIT_MIXED_PRECISION", "1")
    cfg, record = notebook.begin("unit2", {"smoke": {"k": 1}, "default": {"k": 2}, "paper": {"k": 3}}, "smoke", 7)
    assert {k: cfg[k] for k in ("k", "profile", "seed")} == {"k": 1, "profile": "smoke", "seed": 7}
    assert cfg["device"] == device.resolve_device()
    with pytest.raises(LabkitError, match="missing or empty figure file .*ghost.html"):
        notebook.end(record, figures=["ghost"])
    assert (out / "unit2" / records.RECORD_NAME).is_file()


def test_end_checks_what_the_notebook_registered_and_refuses_a_notebook_that_wrote_nothing(tmp_path, monkeypatch):
    import pandas as pd

    from labkit.errors import LabkitError
    from labkit.figures import save_table

    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    empty = records.RunRecord("unit_nothing", {"profile": "smoke"})
    with pytest.raises(LabkitError, match="wrote no figure or table"):
        notebook.end(empty)
    record = records.RunRecord("unit_registered", {"profile": "smoke"})
    paths = save_table(pd.DataFrame({"a": [1, 2]}), record, "numbers", "Two numbers")
    assert [o["name"] for o in record.outputs] == ["numbers"]
    notebook.end(record)  # no list needed: it checks what was registered
    paths["md"].write_text("")
    with pytest.raises(LabkitError, match="missing or empty table file"):
        notebook.end(record)
