"""The run cache (issue 25): unchanged inputs + complete outputs -> ``cached``; a changed
parameter, code file, data file or missing output re-runs exactly what depends on it."""

import json
import shutil
import time
from pathlib import Path

import pytest
from test_runner import light_study

from labkit.run import cache, cli, plan, runner

ROOT = Path(__file__).resolve().parents[1]


def statuses(results):
    return {r.study: r.status for r in results}


@pytest.mark.slow
def test_second_run_is_cached_and_a_changed_parameter_or_missing_output_reruns(tmp_path, monkeypatch):
    ext = tmp_path / "ext"
    light_study(ext / "one", "one", "pass")
    light_study(ext / "two", "two", "pass")
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(ext))
    figs = tmp_path / "figs"
    first = runner.run(["one", "two"], profile="smoke", out_root=figs)
    assert statuses(first) == {"one": "ok", "two": "ok"}
    key = json.loads((figs / "one" / "run_record.json").read_text())["run_key"]
    assert key["parts"]["parameters"] == {"profile": "smoke"} and len(key["digest"]) == 64

    t0 = time.perf_counter()
    again = runner.run(["one", "two"], profile="smoke", out_root=figs)
    assert statuses(again) == {"one": "cached", "two": "cached"}
    assert time.perf_counter() - t0 < 5, "a fully cached run must not start a cluster"
    assert all(r.note == "unchanged" for r in again)

    # another parameter: both re-run (the same -p goes to every named study)
    assert statuses(runner.run(["one", "two"], profile="default", out_root=figs)) == {
        "one": "ok",
        "two": "ok",
    }
    # one study's output gone: only that study re-runs
    (figs / "two" / "numbers.csv").unlink()
    assert statuses(runner.run(["one", "two"], profile="default", out_root=figs)) == {
        "one": "cached",
        "two": "ok",
    }
    # --force re-runs even what is cached
    assert statuses(runner.run(["one"], profile="default", out_root=figs, force=True)) == {"one": "ok"}
    # a partial run is never reused
    record = figs / "one" / "run_record.json"
    data = json.loads(record.read_text())
    data["warnings"] = ["failed: provider x"]
    record.write_text(json.dumps(data))
    assert statuses(runner.run(["one"], profile="default", out_root=figs)) == {"one": "ok"}


@pytest.mark.slow
def test_cli_summary_says_cached_and_the_notebook_edit_reruns(tmp_path, monkeypatch, capsys):
    ext = light_study(tmp_path / "ext", "lite", "pass")
    monkeypatch.setenv("LABKIT_STUDY_PATH", str(ext))
    monkeypatch.setenv("LABKIT_FIGURES_DIR", str(tmp_path / "figs"))
    assert cli.main(["run", "lite", "--profile", "smoke", "--no-gallery"]) == 0
    capsys.readouterr()
    assert cli.main(["run", "lite", "--profile", "smoke", "--no-gallery"]) == 0
    out = capsys.readouterr().out
    assert " cached " in out and "1 cached: inputs unchanged" in out
    nb = ext / "lite.ipynb"
    nb.write_text(nb.read_text().replace("print('wrote', out)", "print('wrote!', out)"))
    assert cli.main(["run", "lite", "--profile", "smoke", "--no-gallery"]) == 0
    assert " cached " not in capsys.readouterr().out


def _fake_labkit(root: Path) -> Path:
    """A tiny package tree standing in for labkit's sources: a imports b, c stands alone."""
    pkg = root / "labkit"
    (pkg / "study").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from labkit import b\n")
    (pkg / "b.py").write_text("X = 1\n")
    (pkg / "c.py").write_text("def f():\n    from labkit.b import X  # function-local counts\n")
    (pkg / "d.py").write_text("Y = 2\n")
    (pkg / "study" / "__init__.py").write_text("")
    (pkg / "study" / "core.py").write_text("Z = 3\n")
    return pkg


def _notebook(path: Path, code: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(code),
    ]
    nbformat.write(nb, path)
    return path


def test_a_changed_code_file_changes_exactly_the_keys_of_the_notebooks_that_can_run_it(tmp_path, monkeypatch):
    pkg = _fake_labkit(tmp_path / "src")
    monkeypatch.setattr(cache, "LABKIT", pkg)
    cache._module_imports.cache_clear()
    from labkit.studies import Study

    tasks = {
        "uses_a": plan.Task(
            Study("uses_a", "a", None, _notebook(tmp_path / "a.ipynb", "import labkit.a")),
            {"profile": "smoke"},
        ),
        "uses_c": plan.Task(
            Study("uses_c", "c", None, _notebook(tmp_path / "c.ipynb", "from labkit import c")),
            {"profile": "smoke"},
        ),
        "uses_d": plan.Task(
            Study("uses_d", "d", None, _notebook(tmp_path / "d.ipynb", "from labkit.d import Y")),
            {"profile": "smoke"},
        ),
        "package": plan.Task(
            Study("package", "p", "labkit.study", _notebook(tmp_path / "p.ipynb", "x = 1")),
            {"profile": "smoke"},
        ),
    }

    def keys():
        cache._module_imports.cache_clear()
        return {name: cache.key_for(task)["digest"] for name, task in tasks.items()}

    before = keys()
    (pkg / "b.py").write_text("X = 2\n")  # a -> b and c -> b (inside a function)
    after_b = keys()
    assert {n for n in before if before[n] != after_b[n]} == {"uses_a", "uses_c"}
    (pkg / "study" / "core.py").write_text("Z = 4\n")  # in the study's package, never imported
    after_core = keys()
    assert {n for n in after_b if after_b[n] != after_core[n]} == {"package"}
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-value")  # presence matters, the value is not kept
    with_key = keys()
    assert all(with_key[n] != after_core[n] for n in tasks)
    assert "sk-test-value" not in json.dumps(cache.key_for(tasks["uses_a"]))


def test_a_user_file_named_by_a_parameter_is_part_of_the_key(tmp_path):
    from labkit.studies import Study

    data = tmp_path / "pairs.csv"
    data.write_text("question_1,question_2,label\na,b,1\n")
    task = plan.Task(
        Study("s", "s", None, _notebook(tmp_path / "s.ipynb", "x = 1")),
        {"profile": "smoke", "pairs_csv": str(data)},
    )
    before = cache.key_for(task)
    data.write_text("question_1,question_2,label\na,b,0\n")
    assert cache.key_for(task)["digest"] != before["digest"]
    assert list(before["parts"]["files"]) == ["pairs_csv"]


def test_changed_mirror_data_invalidates_a_cached_run(tmp_path, monkeypatch):
    source = Path(__import__("os").environ.get("LABKIT_DATA_MIRROR", ROOT.parent / "shared" / "data"))
    if not (source / "tinyshakespeare" / "input.txt").is_file():
        pytest.skip("real data mirror not found")
    mirror = tmp_path / "mirror"
    shutil.copytree(source / "tinyshakespeare", mirror / "tinyshakespeare")
    monkeypatch.setenv("LABKIT_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("LABKIT_DATA_DIR", str(tmp_path / "empty-cache"))
    from labkit.data import registry

    resolved = registry.resolve("tinyshakespeare", download=False)
    record = {"data": {"tinyshakespeare": {"origin": "mirror", "sha256": resolved.sha256}}}
    assert cache._data_unchanged(record) is None
    with open(mirror / "tinyshakespeare" / "input.txt", "a") as f:
        f.write("one more line\n")
    assert "tinyshakespeare changed" in cache._data_unchanged(record)
