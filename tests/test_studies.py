"""The study registry: consistent with the checkout, clear errors, and a study added from outside.

The throwaway study is the proof that adding a study needs no edit to labkit: a notebook and a
``study.json`` in a temporary folder, named in ``LABKIT_STUDY_PATH``, run by ``labkit run``.
"""

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit import studies
from labkit.errors import ParameterError
from labkit.run import cli, gallery, plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_external(monkeypatch):
    monkeypatch.delenv("LABKIT_STUDY_PATH", raising=False)


# ---------------------------------------------------------------- consistency with the checkout
def test_every_entry_points_at_real_files_and_ids_are_unique(no_external):
    entries = studies.all_studies()
    assert len({s.id for s in entries}) == len(entries)
    for s in entries:
        assert s.notebook == ROOT / "notebooks" / f"{s.id}.ipynb" and s.notebook.is_file(), s.id
        if s.explorer:
            assert s.explorer_notebook.is_file(), s.explorer
            __import__(s.explorer_module)
        if s.benchmark:
            assert s.benchmark.is_file() and s.benchmark.parent == ROOT / "benchmarks", s.benchmark


def test_every_study_notebook_in_the_checkout_is_registered(no_external):
    on_disk = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.startswith("explore_")}
    assert on_disk == set(studies.ids())
    explorers = {p.stem for p in (ROOT / "notebooks").glob("explore_*.ipynb")}
    assert explorers == {s.explorer for s in studies.all_studies() if s.explorer}
    benchmarks = {p for p in (ROOT / "benchmarks").glob("*.py")}
    # every study's benchmark exists; tool benchmarks (runner overhead, training masks) need no study
    assert {s.benchmark for s in studies.all_studies() if s.benchmark} <= benchmarks


@pytest.mark.parametrize("entry", studies.BUILTIN, ids=lambda s: s.id)
def test_builtin_outputs_are_read_from_the_notebooks_end_call(entry):
    """Names are written once, in the notebook: the registry reads them from its end(...) call,
    so a parse that found nothing (an empty contract the reference check would wave through)
    fails here."""
    assert entry.figures and entry.tables
    assert studies.promised_outputs(entry.notebook)["tables"] == entry.tables
    if entry.id == "anchor_attention":  # `tables.append("fewshot")` after a data-dependent panel
        assert entry.optional_tables == ("fewshot",)


def test_notebooks_begin_with_their_registry_id(no_external):
    """The id a notebook passes to ``notebook.begin`` is its registry id (= output folder)."""
    for s in studies.all_studies():
        text = s.notebook.read_text(encoding="utf-8")
        if "STUDY = study.STUDY" in text:
            assert importlib.import_module(f"{s.package}.study").STUDY == s.id
        else:
            assert f'STUDY = \\"{s.id}\\"' in text, s.id


def test_conventions_table_is_the_registry():
    assert studies.markdown_table() in (ROOT / "docs" / "CONVENTIONS.md").read_text()


def test_consumers_read_the_registry(no_external):
    from labkit.explore import STUDIES, anchor, embeddings, summaries

    assert STUDIES == {
        "embeddings": "embeddings_medical",
        "anchor": "anchor_attention",
        "summaries": "meeting_summarization",
        "scaling": "scaling_laws",
    }
    assert (embeddings.STUDY, anchor.STUDY, summaries.STUDY) == (
        "embeddings_medical",
        "anchor_attention",
        "meeting_summarization",
    )
    assert studies.for_benchmark(ROOT / "benchmarks" / "scaling_fit.py").id == "scaling_laws"
    assert [s.id for s in plan.discover()] == studies.ids()
    assert plan.discover(["notebooks/scaling_laws.ipynb"])[0] is studies.get("scaling_laws")


def test_gallery_follows_registry_order_and_titles(tmp_path, no_external):
    for study_id in ("scaling_laws", "zz_adhoc", "data_overview"):
        (tmp_path / study_id).mkdir()
        (tmp_path / study_id / "run_record.json").write_text(json.dumps({"study": study_id}))
    page = gallery.write(tmp_path).read_text()
    first, second = studies.get("data_overview").title, studies.get("scaling_laws").title
    assert (
        page.index(f"## {first} (`data_overview`)")
        < page.index(f"## {second} (`scaling_laws`)")
        < page.index("## zz_adhoc")
    )


def test_cli_lists_the_studies(capsys, no_external):
    assert cli.main(["studies"]) == 0
    out = capsys.readouterr().out
    for s in studies.all_studies():
        assert s.id in out and s.title in out
    assert "notebooks/explore_anchor.ipynb" in out and "benchmarks/anchor_inference.py" in out


# ------------------------------------------------------------------------------------ errors
def test_unknown_id_suggests_the_close_one_and_lists_all(no_external):
    with pytest.raises(
        ParameterError,
        match=r"unknown study 'scaling_law' \(did you mean "
        r"'scaling_laws'\?\).*data_overview",
    ):
        studies.get("scaling_law")
    with pytest.raises(ParameterError) as err:
        studies.get("zzz")
    assert "did you mean" not in str(err.value) and "embeddings_medical" in str(err.value)


def test_register_adds_a_study_and_refuses_a_taken_id(tmp_path, no_external):
    nb = tmp_path / "extra.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), nb)
    entry = studies.Study("extra", "Extra", None, nb)
    try:
        studies.register(entry)
        assert studies.get("extra") is entry and studies.ids()[-1] == "extra"
        with pytest.raises(ParameterError, match="'data_overview' is already registered"):
            studies.register(studies.Study("data_overview", "Other", None, nb))
    finally:
        studies.unregister("extra")
    assert "extra" not in studies.ids()


def write_study(folder: Path, spec: dict | str, notebooks=("demo.ipynb",)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import labkit.notebook\nrecord = None\n"
            "tables = ['t1']\ntables.append('t2')\n"
            "labkit.notebook.end(record, figures=['f1'], tables=tables)"
        )
    ]
    for name in notebooks:
        nbformat.write(nb, folder / name)
    (folder / "study.json").write_text(json.dumps(spec) if isinstance(spec, dict) else spec)
    return folder / "study.json"


@pytest.mark.parametrize(
    "spec, field",
    [
        ('{"id": "demo", "title": ', "not valid JSON"),
        ('["demo"]', "must hold a JSON object"),
        ({"title": "Demo", "notebook": "demo.ipynb"}, "missing field 'id'"),
        ({"id": "demo", "notebook": "demo.ipynb"}, "missing field 'title'"),
        ({"id": "demo", "title": "Demo"}, "missing field 'notebook'"),
        ({"id": "demo", "title": "", "notebook": "demo.ipynb"}, "field 'title' must be a non-empty"),
        ({"id": "de mo", "title": "Demo", "notebook": "demo.ipynb"}, "field 'id' 'de mo'"),
        ({"id": "demo", "title": "Demo", "notebook": "nope.ipynb"}, "field 'notebook'.*nope.ipynb"),
        ({"id": "other", "title": "Demo", "notebook": "demo.ipynb"}, "field 'notebook'.*other.ipynb"),
        ({"id": "demo", "title": "Demo", "notebook": "demo.ipynb", "tables": "t1"}, "field 'tables'"),
        ({"id": "demo", "title": "Demo", "notebook": "demo.ipynb", "figure": []}, "unknown field 'figure'"),
        ({"id": "demo", "title": "Demo", "notebook": "demo.ipynb", "benchmark": "b.py"}, "field 'benchmark'"),
        (
            {"id": "data_overview", "title": "D", "notebook": "data_overview.ipynb"},
            "field 'id': 'data_overview' is already the id of the built-in study",
        ),
    ],
)
def test_bad_study_json_names_the_file_and_field(tmp_path, monkeypatch, spec, field):
    path = write_study(tmp_path / "ext", spec, ("demo.ipynb", "data_overview.ipynb"))
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(tmp_path / "ext"))
    with pytest.raises(ParameterError, match=field) as err:
        studies.all_studies()
    assert str(path) in str(err.value)


def test_study_path_reads_nested_folders_and_rejects_a_missing_one(tmp_path, monkeypatch):
    write_study(tmp_path / "many" / "demo", {"id": "demo", "title": "Demo", "notebook": "demo.ipynb"})
    monkeypatch.setenv("LABKIT_STUDY_PATH", os.pathsep.join(["", str(tmp_path / "many")]))
    demo = studies.get("demo")
    assert demo.source.endswith("study.json") and demo.title == "Demo"
    assert (demo.figures, demo.tables) == (("f1",), ("t1",))  # read from the end(...) call
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(tmp_path / "absent"))
    with pytest.raises(ParameterError, match="LABKIT_STUDY_PATH lists .*absent"):
        studies.all_studies()


# ------------------------------------------------------------------------ a throwaway study
THROWAWAY_CELLS = [
    "import pandas as pd\nimport labkit.figures\nimport labkit.notebook",
    'cfg, record = labkit.notebook.begin("throwaway", {"smoke": {"n": 2}, "default": {"n": 3}, '
    '"paper": {"n": 4}}, profile)',
    'labkit.figures.save_table(pd.DataFrame({"i": range(cfg["n"])}), record, "numbers", "The first n integers.")',
    'labkit.notebook.end(record, tables=["numbers"])',
]


def write_throwaway_study(tmp: Path, cells=THROWAWAY_CELLS, **entry) -> Path:
    """A study folder outside labkit: a notebook of ``cells`` after a parameters cell, and its
    ``study.json`` (``entry`` adds fields such as ``figures``). Returns the folder."""
    folder = tmp / "throwaway_study"
    folder.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "throwaway.ipynb")
    (folder / "study.json").write_text(
        json.dumps(
            {
                "id": "throwaway",
                "title": "A throwaway study",
                "notebook": "throwaway.ipynb",
                "tables": ["numbers"],
                **entry,
            }
        )
    )
    return folder


@pytest.mark.slow
def test_a_throwaway_study_runs_through_labkit_run_without_editing_labkit(tmp_path):
    folder = write_throwaway_study(tmp_path)
    figs = tmp_path / "figs"
    env = {**os.environ, "LABKIT_STUDY_PATH": str(folder), "LABKIT_FIGURES_DIR": str(figs)}
    listed = subprocess.run(
        [sys.executable, "-m", "labkit.run.cli", "studies"], env=env, capture_output=True, text=True, cwd=tmp_path
    )
    assert listed.returncode == 0 and "A throwaway study" in listed.stdout, listed.stderr
    done = subprocess.run(
        [sys.executable, "-m", "labkit.run.cli", "run", "throwaway", "--profile", "smoke"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = figs / "throwaway"
    assert (out / "numbers.csv").read_text().splitlines() == ["i", "0", "1"]
    assert (out / "numbers.md").is_file() and (out / "throwaway.ipynb").is_file()
    record = json.loads((out / "run_record.json").read_text())
    assert record["study"] == "throwaway" and record["parameters"]["profile"] == "smoke"
    assert "A throwaway study (`throwaway`)" in (figs / "README.md").read_text()
