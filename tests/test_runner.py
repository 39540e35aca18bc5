"""The papermill runner and the command line, on real notebooks."""
import json
from pathlib import Path

import nbformat
import pytest

from labkit import cli, records, runner, studies
from labkit.errors import ParameterError

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = None\nx = 1", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("y = x * 2"), nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def test_parse_assignments_json_or_string():
    assert runner.parse_assignments(["a=1", "b=[1, 2]", "c=text", "d=null"]) == \
        {"a": 1, "b": [1, 2], "c": "text", "d": None}
    with pytest.raises(ParameterError, match="key=value"):
        runner.parse_assignments(["novalue"])


def test_default_set_is_the_registry_without_exploration_notebooks(monkeypatch):
    monkeypatch.delenv("LABKIT_STUDY_PATH", raising=False)
    entries = runner.discover()
    assert [s.id for s in entries] == studies.ids()
    names = [s.notebook.name for s in entries]
    assert "data_overview.ipynb" in names
    assert not any(n.startswith("explore_") for n in names)


def test_names_resolve_through_the_registry_and_paths_still_work(tmp_path):
    assert runner.discover(["scaling_laws"]) == [studies.get("scaling_laws")]
    assert runner.discover([str(ROOT / "notebooks" / "data_overview.ipynb")]) == \
        [studies.get("data_overview")]
    nb = make_notebook(tmp_path / "adhoc.ipynb", "print(y)")
    (adhoc,) = runner.discover([str(nb)])
    assert (adhoc.id, adhoc.notebook) == ("adhoc", nb.resolve())
    with pytest.raises(ParameterError, match=r"no notebook '.*missing.ipynb': not a file"):
        runner.discover([str(tmp_path / "missing.ipynb")])


def test_unknown_notebook_and_unknown_parameter_are_clear_errors(tmp_path, capsys):
    assert cli.main(["run", "data_overveiw"]) == 2
    assert "unknown study 'data_overveiw' (did you mean 'data_overview'?)" in capsys.readouterr().err
    nb = make_notebook(tmp_path / "tiny.ipynb", "print(y)")
    assert cli.main(["run", str(nb), "-p", "epochs=3"]) == 2
    assert "has no parameter 'epochs'" in capsys.readouterr().err


@pytest.mark.slow
def test_failing_notebook_exits_1_and_shows_the_cell_and_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path / "figs"))
    nb = make_notebook(tmp_path / "broken.ipynb", "raise ValueError(f'boom {y}')")
    code = cli.main(["run", str(nb), "--profile", "smoke", "-p", "x=21", "--no-gallery"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED broken.ipynb at cell In [4]" in out and "ValueError: boom 42" in out
    assert (tmp_path / "figs" / "broken" / "broken.failed.ipynb").is_file()
    assert not (tmp_path / "figs" / "broken" / "broken.ipynb").exists()


@pytest.mark.slow
def test_data_overview_runs_end_to_end_and_writes_every_output(tmp_path, monkeypatch, capsys):
    if not (ROOT.parent / "shared" / "data").is_dir() and "LABKIT_DATA_MIRROR" not in __import__("os").environ:
        pytest.skip("real data mirror not found")
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path))
    code = cli.main(["run", "data_overview", "--profile", "smoke", "-p", "max_meetings=3"])
    assert code == 0, capsys.readouterr().out
    folder = tmp_path / "data_overview"
    record = records.read("data_overview", tmp_path)
    assert record["parameters"]["profile"] == "smoke" and record["parameters"]["max_meetings"] == 3
    assert record["data"]["mqp"]["sha256"]["mqp.csv"].startswith("94ecd609")
    for output in record["outputs"]:
        for file in output["files"].values():
            assert (folder / file).stat().st_size > 0
    assert len([o for o in record["outputs"] if o["kind"] == "figure"]) == 4
    meetings = (folder / "qmsum_meetings.csv").read_text().splitlines()
    assert len(meetings) == 1 + 3
    assert (folder / "data_overview.ipynb").is_file()
    assert "data_overview" in (tmp_path / "README.md").read_text()


def test_cli_data_and_models_commands(capsys):
    assert cli.main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert "mqp" in listing and "qmsum" in listing and "boolq" in listing
    assert cli.main(["models", "list"]) == 0
    assert "all-MiniLM-L6-v2" in capsys.readouterr().out
