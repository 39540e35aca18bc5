"""The papermill runner and the command line, on real notebooks."""

import json
import re
from pathlib import Path

import nbformat
import pytest

from labkit import records, studies
from labkit.errors import ParameterError
from labkit.run import cli, plan, runner, summary

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("profile = None\nx = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("y = x * 2"),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def test_parse_assignments_json_or_string():
    assert plan.parse_assignments(["a=1", "b=[1, 2]", "c=text", "d=null"]) == {
        "a": 1,
        "b": [1, 2],
        "c": "text",
        "d": None,
    }
    with pytest.raises(ParameterError, match="key=value"):
        plan.parse_assignments(["novalue"])


def test_default_set_is_the_registry_without_exploration_notebooks(monkeypatch):
    monkeypatch.delenv("LABKIT_STUDY_PATH", raising=False)
    entries = plan.discover()
    assert [s.id for s in entries] == studies.ids()
    names = [s.notebook.name for s in entries]
    assert "data_overview.ipynb" in names
    assert not any(n.startswith("explore_") for n in names)


def test_names_resolve_through_the_registry_and_paths_still_work(tmp_path):
    assert plan.discover(["scaling_laws"]) == [studies.get("scaling_laws")]
    assert plan.discover([str(ROOT / "notebooks" / "data_overview.ipynb")]) == [studies.get("data_overview")]
    nb = make_notebook(tmp_path / "adhoc.ipynb", "print(y)")
    (adhoc,) = plan.discover([str(nb)])
    assert (adhoc.id, adhoc.notebook) == ("adhoc", nb.resolve())
    with pytest.raises(ParameterError, match=r"no notebook '.*missing.ipynb': not a file"):
        plan.discover([str(tmp_path / "missing.ipynb")])


def test_a_notebook_named_like_a_seed_staging_folder_is_refused(tmp_path):
    """seed-0.ipynb would stage into .staging/seed-0/, seed 0's staging root: refused by name."""
    for stem in ("seed-0", ".staging"):
        nb = make_notebook(tmp_path / f"{stem}.ipynb", "pass")
        with pytest.raises(ParameterError, match=rf"study '{re.escape(stem)}': that name is reserved"):
            plan.discover([str(nb)])
    assert plan.discover([str(make_notebook(tmp_path / "seed-study.ipynb", "pass"))])


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


# ------------------------------------------------------- Dask engine, staging, seeds (issue 16/14)
def light_study(folder: Path, study: str, body: str) -> Path:
    """A registered throwaway study whose notebook writes a table and a run record by hand
    (no labkit import in the kernel, so each run takes a kernel start, not a labkit import)."""
    folder.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("profile = None\nseed = 0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, os, pathlib\n"
            f"out = pathlib.Path(os.environ['LABKIT_FIGURES_DIR']) / {study!r}\n"
            "out.mkdir(parents=True, exist_ok=True)\n"
            "record = {'study': %r, 'parameters': {'profile': profile, 'seed': seed},\n"
            "          'results': {'score': 0.5 + seed / 10}, 'warnings': [],\n"
            "          'device': {'device': 'cpu', 'name': 'CPU', 'dtype': 'float32',\n"
            "                     'mixed_precision': False}}" % study
        ),
        nbformat.v4.new_code_cell(body),
        nbformat.v4.new_code_cell(
            "(out / 'numbers.csv').write_text('i,seed\\n0,%d\\n1,%d\\n' % (seed, seed))\n"
            "(out / 'numbers.md').write_text('| i |\\n|---|\\n| 0 |\\n')\n"
            "(out / 'run_record.json').write_text(json.dumps(record))\n"
            "print('wrote', out)"
        ),
        # the registry reads a study's promised outputs from this call (never run here)
        nbformat.v4.new_code_cell("if False:\n    labkit.notebook.end(None, tables=['numbers'])"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, folder / f"{study}.ipynb")
    (folder / "study.json").write_text(
        json.dumps(
            {
                "id": study,
                "title": f"Throwaway {study}",
                "notebook": f"{study}.ipynb",
                "tables": ["numbers"],
            }
        )
    )
    return folder


def test_parse_seeds_and_exit_codes():
    assert plan.parse_seeds("0,1, 2") == [0, 1, 2] and plan.parse_seeds(None) is None
    for bad in ("a", "1,,2", "-1", "1,1", "0.5"):
        with pytest.raises(ParameterError, match="--seeds"):
            plan.parse_seeds(bad)
    rows = [summary.NotebookResult("a.ipynb", "a", status, 1.0) for status in ("ok", "partial", "failed")]
    assert summary.exit_code(rows[:1]) == 0 and summary.exit_code(rows[:2]) == 3
    assert summary.exit_code(rows) == 1 and summary.exit_code(rows[::2]) == 1


def test_summary_table_shows_device_seed_and_why_partial():
    from labkit.run import staging

    record = {
        "device": {
            "device": "cuda",
            "name": "NVIDIA H100",
            "dtype": "bfloat16",
            "mixed_precision": True,
        }
    }
    device = staging.device_text(record)
    assert "cuda" in device and "H100" in device
    assert staging.device_text({}) == ""
    rows = [
        summary.NotebookResult("a.ipynb", "a", "ok", 1.0, seed=0, device=device),
        summary.NotebookResult(
            "a.ipynb",
            "a",
            "partial",
            2.0,
            seed=1,
            device=device,
            warnings=["failed: openai: no network", "truncated 3 inputs"],
        ),
    ]
    table = summary.summary_table(rows)
    header = table.splitlines()[0].split()
    assert header[:4] == ["notebook", "seed", "status", "device"]
    assert "PARTIAL a.ipynb (seed 1)" in table and "failed: openai: no network" in table
    assert "truncated 3 inputs" not in table


def test_a_notebook_that_failed_before_its_first_cell_names_no_executed_notebook(tmp_path):
    """abandon() keeps nothing when no cell ran; the table must not point at a file that is not there."""
    from labkit.run import staging

    assert staging.abandon(tmp_path / "figs", "never") is None
    row = summary.NotebookResult("never.ipynb", "never", "failed", 0.4, error="kernel did not start")
    table = summary.summary_table([row])
    assert "failed.ipynb" not in table and "FAILED never.ipynb:" in table
    assert table.splitlines()[2].split()[-1] == "—"


def test_bad_jobs_threads_and_seed_conflicts_fail_before_anything_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(light_study(tmp_path / "s", "lite", "pass")))
    figs = tmp_path / "figs"
    with pytest.raises(ParameterError, match="threads"):
        runner.run(["lite"], threads=0, out_root=figs)
    with pytest.raises(ParameterError, match="jobs"):
        runner.run(["lite"], jobs=0, out_root=figs)
    with pytest.raises(ParameterError, match="--seeds or -p seed"):
        runner.run(["lite"], overrides={"seed": 3}, seeds=[0, 1], out_root=figs)
    nb = make_notebook(tmp_path / "noseed.ipynb", "pass")
    with pytest.raises(ParameterError, match="has no parameter 'seed'"):
        runner.run([str(nb)], seeds=[0, 1], out_root=figs)
    with pytest.raises(ParameterError, match="tcp://127.0.0.1:1'"):
        runner.run(["lite"], scheduler="tcp://127.0.0.1:1", out_root=figs)
    assert not figs.exists()


def test_promote_swaps_the_study_folder_and_keeps_its_seeds(tmp_path):
    from labkit.run import staging

    root, stage, final = staging.locations(tmp_path, "st", None)
    final.mkdir(parents=True)
    (final / "old.csv").write_text("old")
    (final / "seeds" / "seed-0").mkdir(parents=True)
    (final / "seeds" / "seed-0" / "x.csv").write_text("seed 0")
    stage.mkdir(parents=True)
    (stage / "new.csv").write_text("new")
    (root / "plotly.min.js").write_text("js")
    staging.promote(stage, final, root)
    assert sorted(p.name for p in final.iterdir()) == ["new.csv", "seeds"]
    assert (final / "seeds" / "seed-0" / "x.csv").read_text() == "seed 0"
    assert (tmp_path / "plotly.min.js").read_text() == "js" and not stage.exists()
    staging.tidy(tmp_path)
    assert not (tmp_path / staging.STAGING).exists()


def test_the_second_study_to_promote_leaves_no_plotly_js_in_staging(tmp_path):
    """Two studies staged at once both write .staging/plotly.min.js; the second to land finds the
    shared copy current. Its staged copy must go, or .staging is never tidied away (it lingered)."""
    from labkit.run import staging

    for study in ("first", "second"):
        root, stage, final = staging.locations(tmp_path, study, None)
        stage.mkdir(parents=True)
        (stage / "t.csv").write_text(study)
        (root / "plotly.min.js").write_text("js")
        staging.promote(stage, final, root)
    staging.tidy(tmp_path)
    assert (tmp_path / "plotly.min.js").read_text() == "js"
    assert not (tmp_path / staging.STAGING).exists()


def test_promote_of_a_first_seed_creates_its_seeds_folder_for_the_shared_plotly_js(tmp_path):
    """A seed's final folder is <study>/seeds/seed-N; before the first seed lands, <study>/seeds/
    does not exist, and moving the shared plotly.min.js there must not fail (it did: every
    seed of a fresh --seeds run was reported failed and its outputs lost)."""
    from labkit.run import staging

    root, stage, final = staging.locations(tmp_path, "st", 0)
    stage.mkdir(parents=True)
    (stage / "t.csv").write_text("seed 0")
    (root / "plotly.min.js").write_text("js")
    staging.promote(stage, final, root)
    assert (final / "t.csv").read_text() == "seed 0"
    assert (tmp_path / "st" / "seeds" / "plotly.min.js").read_text() == "js"  # ../ of each seed


def test_executed_notebooks_carry_no_absolute_paths(tmp_path, monkeypatch):
    from labkit.run import staging

    monkeypatch.setenv("LABKIT_STUDY_PATH", str(tmp_path / "ext"))
    _, stage, final = staging.locations(tmp_path / "figs", "st", 2)
    stage.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    params = {
        "profile": "smoke",
        "pairs": str(Path.home() / "data" / "pairs.csv"),
        "models": [str(ROOT / "notebooks"), "all-MiniLM-L6-v2"],
    }
    nb.cells = [
        nbformat.v4.new_code_cell(f"pairs = {params['pairs']!r}", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell(
            "print(out)",
            outputs=[
                nbformat.v4.new_output("stream", name="stdout", text=f"wrote {stage}/t.csv\nfrom {ROOT}/labkit/io.py\n")
            ],
        ),
    ]
    nb.metadata["papermill"] = {
        "input_path": str(tmp_path / "ext" / "st" / "st.ipynb"),
        "output_path": str(stage / ".st.executing.ipynb"),
        "cwd": str(ROOT / "notebooks"),
        "parameters": params,
    }
    executing = stage / ".st.executing.ipynb"
    nbformat.write(nb, executing)
    staging.write_portable(executing, stage / "st.ipynb", tmp_path / "figs", final)
    text = (stage / "st.ipynb").read_text()
    for absolute in (str(tmp_path), str(ROOT), str(Path.home())):
        assert absolute not in text
    meta = json.loads(text)["metadata"]["papermill"]
    assert meta["input_path"] == "$LABKIT_STUDY_PATH/st/st.ipynb"
    assert meta["output_path"] == "<figures>/st/seeds/seed-2/st.ipynb"
    assert meta["cwd"] == "notebooks"
    assert meta["parameters"] == {
        "profile": "smoke",
        "pairs": "~/data/pairs.csv",
        "models": ["notebooks", "all-MiniLM-L6-v2"],
    }
    assert "wrote <figures>/st/seeds/seed-2/t.csv" in text and "<project>/labkit/io.py" in text


@pytest.mark.slow
def test_dask_run_stages_outputs_isolates_failures_and_survives_a_dead_worker(tmp_path, monkeypatch, capsys):
    """2-worker LocalCluster: ok, partial, failing (previous outputs kept) and worker-killing
    notebooks; the others complete, the summary says what happened, the exit code is 1."""
    ext = tmp_path / "ext"
    light_study(ext / "good", "good", "pass")
    light_study(ext / "part", "part", "record['warnings'].append('failed: provider x: no network')")
    light_study(ext / "bad", "bad", "raise ValueError(f'boom {seed}')")
    light_study(
        ext / "dies",
        "dies",
        "import os, signal, time\nprint('last words', flush=True)\n"
        "time.sleep(0.3)\nos.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(30)",
    )
    figs = tmp_path / "figs"
    (figs / "bad").mkdir(parents=True)
    (figs / "bad" / "numbers.csv").write_text("previous good run\n")
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(ext))
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(figs))
    code = cli.main(["run", "good", "part", "bad", "dies", "--profile", "smoke", "--jobs", "2", "--no-gallery"])
    out = capsys.readouterr().out
    assert code == 1, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if ".ipynb " in line[:12]}
    assert rows["good.ipynb"][1:3] == ["ok", "cpu"] and rows["part.ipynb"][1] == "partial"
    assert rows["bad.ipynb"][1] == "failed" and rows["dies.ipynb"][1] == "failed"
    assert "FAILED bad.ipynb at cell In [4]" in out and "ValueError: boom 0" in out
    assert "the worker running this notebook died: KilledWorker" in out and "last words" in out
    assert "PARTIAL part.ipynb" in out and "failed: provider x: no network" in out
    assert (figs / "bad" / "numbers.csv").read_text() == "previous good run\n"
    assert sorted(p.name for p in (figs / "bad").iterdir()) == ["bad.failed.ipynb", "numbers.csv"]
    assert (figs / "dies" / "dies.failed.ipynb").is_file()
    assert sorted(p.name for p in (figs / "good").iterdir()) == [
        "good.ipynb",
        "numbers.csv",
        "numbers.md",
        "run_record.json",
    ]
    assert not (figs / ".staging").exists()
    executed = (figs / "good" / "good.ipynb").read_text()
    assert str(tmp_path) not in executed and "<figures>/good" in executed


@pytest.mark.slow
def test_seeds_run_per_seed_folders_then_aggregate_then_come_from_the_run_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(light_study(tmp_path / "ext", "lite", "pass")))
    figs = tmp_path / "dask"
    (figs / "lite").mkdir(parents=True)
    (figs / "lite" / "numbers.csv").write_text("unseeded run\n")
    results = runner.run(["lite"], profile="smoke", seeds=[0, 1], jobs=2, out_root=figs)
    assert [(r.seed, r.status) for r in results] == [(0, "ok"), (1, "ok"), (None, "ok")]
    for seed in (0, 1):
        folder = figs / "lite" / "seeds" / f"seed-{seed}"
        assert (folder / "numbers.csv").read_text() == f"i,seed\n0,{seed}\n1,{seed}\n"
        assert json.loads((folder / "run_record.json").read_text())["parameters"]["seed"] == seed
    from labkit.run import seeds

    summary_csv = (figs / "lite" / f"{seeds.TABLE}.csv").read_text()
    assert "score" in summary_csv and "0.55" in summary_csv  # mean of 0.5 and 0.6
    assert (figs / "lite" / "numbers.csv").read_text() == "unseeded run\n"
    again = runner.run(["lite"], profile="smoke", seeds=[0, 1], jobs=2, out_root=figs)
    assert [(r.seed, r.status) for r in again] == [(0, "cached"), (1, "cached"), (None, "ok")]


def test_outputs_equivalence_compares_results_within_tolerance_and_leaves_out_timings(tmp_path):
    """benchmarks/outputs_equivalence.py: the check behind issue 16's 'same outputs' target."""
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from outputs_equivalence import compare_tables

    a, b = tmp_path / "a" / "st", tmp_path / "b" / "st"
    a.mkdir(parents=True), b.mkdir(parents=True)
    tables = {  # name: (run a, run b)
        "same.csv": (
            "system,accuracy,wall_s,energy_kwh\nx,0.8,1.0,0.1\n",
            "system,accuracy,wall_s,energy_kwh\nx,0.8000000001,9.0,0.7\n",
        ),
        "moved.csv": ("system,accuracy\nx,0.8\ny,0.7\n", "system,accuracy\nx,0.8\ny,0.71\n"),
        "renamed.csv": ("system,accuracy\nx,0.8\n", "system,accuracy\nz,0.8\n"),
        "shorter.csv": ("n\n1\n2\n", "n\n1\n"),
        "latency.csv": ("seconds\n1\n", "seconds\n2\n"),
        "fig.data.csv": (
            "trace,x,y\nkv,1,2\nspeed-up vs cache,1,1.9\n",
            "trace,x,y\nkv,1,2\nspeed-up vs cache,1,2.4\n",
        ),
    }
    for name, (x, y) in tables.items():
        (a / name).write_text(x)
        (b / name).write_text(y)
    (a / "only.csv").write_text("n\n1\n")
    rows = {r.table: r for r in compare_tables(tmp_path / "a", tmp_path / "b")}
    assert {k: r.verdict for k, r in rows.items()} == {
        "st/same.csv": "equal",
        "st/moved.csv": "differs",
        "st/renamed.csv": "differs",
        "st/shorter.csv": "differs",
        "st/latency.csv": "excluded",
        "st/only.csv": "only_in_a",
        "st/fig.data.csv": "equal",
    }
    assert rows["st/fig.data.csv"].excluded_rows == 1 and rows["st/same.csv"].excluded_rows == 0
    assert rows["st/same.csv"].excluded_columns == ["wall_s", "energy_kwh"]
    moved = rows["st/moved.csv"]
    assert moved.differing_columns == ["accuracy"] and moved.differing_cells == 1
    assert abs(moved.max_abs_diff - 0.01) < 1e-12
    assert rows["st/renamed.csv"].differing_columns == ["system"]


def test_longest_first_orders_by_the_previous_wall_time_of_the_same_profile(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no committed results/ here: only the figures folder counts
    tasks = plan.plan(["data_overview", "embeddings_medical", "anchor_attention"], "smoke", {}, None)
    for study, wall, profile in [("embeddings_medical", 50.0, "smoke"), ("anchor_attention", 900.0, "default")]:
        (tmp_path / "figs" / study).mkdir(parents=True)
        (tmp_path / "figs" / study / records.RECORD_NAME).write_text(
            json.dumps({"profile": profile, "wall_time_s": wall}), encoding="utf-8"
        )
    order = [t.entry.id for t in runner.longest_first(tasks, tmp_path / "figs")]
    # embeddings ran 50 s on this profile; anchor's 900 s were another profile's: unknown (0)
    assert order == ["embeddings_medical", "data_overview", "anchor_attention"]
    assert runner.expected_seconds(tasks[1], tmp_path / "figs") == 50.0


def test_longest_first_falls_back_to_the_committed_reference_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results" / "data_overview").mkdir(parents=True)
    (tmp_path / "results" / "data_overview" / "record.json").write_text(
        json.dumps({"profile": "smoke", "wall_time_s": 7.0}), encoding="utf-8"
    )
    tasks = plan.plan(["embeddings_medical", "data_overview"], "smoke", {}, None)
    assert [t.entry.id for t in runner.longest_first(tasks, tmp_path / "figs")] == [
        "data_overview",
        "embeddings_medical",
    ]
