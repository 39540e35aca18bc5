"""Typed parameter schemas: coverage of every notebook, messages, normalisation, `labkit params`."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import papermill as pm
import pytest

from labkit import config, params, studies
from labkit.errors import ParameterError
from labkit.params import Param
from labkit.run import cli, plan

BUILTIN = [s.id for s in studies.BUILTIN]


@pytest.mark.parametrize("study", BUILTIN)
def test_schema_declares_exactly_the_notebook_parameters(study):
    declared = pm.inspect_notebook(str(studies.get(study).notebook))
    schema = params.schema_for(study)
    assert schema is not None, f"{study} declares no schema"
    assert list(schema.params) != [] and set(schema.params) == set(declared)


@pytest.mark.parametrize("study", BUILTIN)
def test_profile_values_and_notebook_defaults_pass_their_own_schema(study):
    schema = params.schema_for(study)
    for profile, table in schema.profiles.items():
        for name, param in schema.params.items():
            if name in table:
                params.validate(param, table[name], f"{profile}.{name}")
    for name, info in pm.inspect_notebook(str(studies.get(study).notebook)).items():
        params.validate(schema.params[name], ast.literal_eval(info["default"]))


@pytest.mark.parametrize(
    "study, given, message",
    [
        ("scaling_laws", {"bootstrap": "abc"}, "bootstrap: expected an integer >= 1, got 'abc'"),
        ("scaling_laws", {"bootstrap": -5}, "bootstrap: expected an integer >= 1, got -5"),
        ("scaling_laws", {"bootstrap": True}, "bootstrap: expected an integer >= 1, got True"),
        ("scaling_laws", {"n_jobs": 1.5}, "n_jobs: expected an integer >= 1, got 1.5"),
        (
            "scaling_laws",
            {"sweep_budgets": [1000, 0]},
            "sweep_budgets[1]: expected an integer >= 1, got 0",
        ),
        (
            "scaling_laws",
            {"sweep_base": {"learning_rate": float("nan")}},
            "sweep_base.learning_rate: expected a finite number > 0, got nan",
        ),
        (
            "scaling_laws",
            {"sweep_base": {"vocab": 3}},
            "sweep_base: unknown key 'vocab'; did you mean 'vocab_size'?",
        ),
        (
            "scaling_laws",
            {"sweep_sizes": [{"hidden_size": 30, "num_layers": 1, "num_heads": 4}]},
            "sweep_sizes[0]: must have hidden_size divisible by num_heads (30 % 4 != 0)",
        ),
        ("scaling_laws", {"country": None}, "country: expected a string, got None"),
        (
            "embeddings_medical",
            {"models": 5},
            "models: expected a non-empty list of strings, got 5",
        ),
        (
            "embeddings_medical",
            {"models": ["st:all-MiniLM-L6-v2", "st2:x"]},
            "models[1]: unknown embedder spec 'st2:x'; did you mean 'st:x'?",
        ),
        (
            "embeddings_medical",
            {"finetune_epochs": "two"},
            "finetune_epochs: expected an integer >= 1, got 'two'",
        ),
        ("embeddings_medical", {"max_pairs": -3}, "max_pairs: expected an integer >= 0, got -3"),
        (
            "meeting_summarization",
            {"instructions": ["lnog"]},
            "instructions[0]: expected one of 'long', 'medium', 'short', got 'lnog'; did you mean 'long'?",
        ),
        (
            "meeting_summarization",
            {"price_table": {"default": {"usd_per_hour": -1}}},
            "price_table['default'].usd_per_hour: expected a number >= 0, got -1",
        ),
        ("anchor_attention", {"mode": "AC"}, "mode: expected one of 'ac', 'ep', got 'AC'"),
        (
            "data_overview",
            {"qmsum_splits": []},
            "qmsum_splits: expected a non-empty list of each one of",
        ),
        (
            "data_overview",
            {"profile": "fast"},
            "profile: expected one of 'smoke', 'default', 'paper', got 'fast'",
        ),
        (
            "data_overview",
            {"max_meeting": 3},
            "data_overview has no parameter 'max_meeting'; did you mean 'max_meetings'?",
        ),
    ],
)
def test_bad_values_name_the_parameter_and_the_accepted_form(study, given, message):
    with pytest.raises(ParameterError) as info:
        params.check(study, given)
    assert str(info.value).startswith(message)


def test_check_normalises_what_the_kernel_needs(tmp_path, monkeypatch):
    points = tmp_path / "runs.csv"
    points.write_text("N,D,loss\n1,2,3\n")
    monkeypatch.chdir(tmp_path)
    out = params.check(
        "scaling_laws",
        {"points_csv": "runs.csv", "sweep_budgets": [1e6], "bootstrap": None, "profile": "smoke"},
    )
    assert out == {
        "points_csv": str(points.resolve()),
        "sweep_budgets": [1_000_000],
        "bootstrap": None,
        "profile": "smoke",
    }
    assert isinstance(out["sweep_budgets"][0], int)
    with pytest.raises(
        ParameterError,
        match="points_csv: expected the path of an existing file, got 'gone.csv', which does not exist",
    ):
        params.check("scaling_laws", {"points_csv": "gone.csv"})
    with pytest.raises(ParameterError, match="which is a folder"):
        params.check("scaling_laws", {"points_csv": str(tmp_path)})


def test_resolve_checks_overrides_against_the_schema_of_that_table():
    from labkit.scaling.profiles import PROFILES

    with pytest.raises(ParameterError, match="^fit_starts: expected an integer >= 0, got -1$"):
        config.resolve(PROFILES, "smoke", fit_starts=-1)
    assert config.resolve(PROFILES, "smoke", fit_starts=3.0)["fit_starts"] == 3
    # a table without a declared schema is merged as before
    assert config.resolve({"smoke": {"n": 1}}, "smoke", n="anything")["n"] == "anything"


def test_resolve_keeps_a_path_as_written(tmp_path, monkeypatch):
    from labkit.embeddings.profiles import PROFILES

    (tmp_path / "pairs.csv").write_text("question_1,question_2,label\na,b,1\n")
    monkeypatch.chdir(tmp_path)
    assert config.resolve(PROFILES, "smoke", pairs_csv="pairs.csv")["pairs_csv"] == "pairs.csv"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("3", 3),
        ("-5", -5),
        ("1e6", 1e6),
        ("minilm", "minilm"),
        ('["a", "b"]', ["a", "b"]),
        ("null", None),
        ("01-ai/Yi-6B", "01-ai/Yi-6B"),
        ("../x.csv", "../x.csv"),
    ],
)
def test_parse_value_json_or_plain_string(raw, expected):
    assert plan.parse_value("k", raw) == expected


@pytest.mark.parametrize(
    "raw, message",
    [
        (
            "[not json",
            "sweep_sizes: value '[not json' looks like JSON but does not parse: Expecting value",
        ),
        ('{"a": 1,}', "sweep_sizes: value '{\"a\": 1,}' looks like JSON but does not parse"),
        ("1_000", "sweep_sizes: value '1_000' looks like JSON but does not parse"),
        ("NaN", "NaN is not a JSON number"),
        ("None", "sweep_sizes: value 'None' is Python, not JSON; write sweep_sizes=null"),
    ],
)
def test_parse_value_broken_json_is_an_error(raw, message):
    with pytest.raises(ParameterError) as info:
        plan.parse_value("sweep_sizes", raw)
    assert message in str(info.value)


def test_tiny_lm_fields_follow_the_config_dataclass():
    from labkit.lm.train import TinyLMConfig
    from labkit.scaling.profiles import TINY_LM_FIELDS

    assert set(TINY_LM_FIELDS) == {f.name for f in dataclasses.fields(TinyLMConfig)}


def test_param_describes_its_form():
    assert Param("x", int, min=1).expected() == "an integer >= 1"
    assert Param("x", float, min=0, max=1).expected() == "a number between 0 and 1"
    assert Param("x", list[int], min=1, min_items=1).expected() == "a non-empty list of integers >= 1"
    assert Param("x", list[str], none_means="profile").type_label() == "list[str] | None"


def test_external_study_without_schema_is_passed_through():
    assert params.schema_for("no_such_study") is None
    assert params.check("no_such_study", {"x": "anything"}) == {"x": "anything"}


def test_check_needs_no_heavy_import():
    """The pre-run check reads profiles modules alone: no torch in the runner's process."""
    code = (
        "import sys; from labkit import params\n"
        "for s in ('anchor_attention', 'scaling_laws', 'meeting_summarization', 'data_overview'):\n"
        "    params.check(s, {'profile': 'smoke'})\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_labkit_params_lists_types_defaults_per_profile_and_help(capsys):
    assert cli.main(["params", "scaling_laws"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("bootstrap "))
    assert row.split()[1:5] == ["int", ">=", "1", "|"] and row.split()[6:9] == [
        "60",
        "1000",
        "4000",
    ]
    for name in params.schema_for("scaling_laws").params:
        assert any(line.startswith(name + " ") for line in out.splitlines()), name
    assert "bootstrap resamples of the fit" in out
    assert cli.main(["params", "anchor_attention"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("mode "))
    assert row.split()[5:8] == ["ac", "ac", "ac"]  # the notebook's own default, in every profile
    assert cli.main(["params", "scaling_law"]) == 2
    assert "unknown study 'scaling_law'" in capsys.readouterr().err


def test_labkit_params_as_a_command():
    done = subprocess.run(
        [sys.executable, "-m", "labkit.run.cli", "params", "embeddings_medical"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert "finetune_epochs" in done.stdout and "int >= 1 | None" in done.stdout
