"""The reference record (``results/``): what it keeps, what it refuses, and the docs it fills.

The figures folders here are written by the test in the run-record format (one per registered
study, promising what the registry promises); ``tests/test_portable_outputs.py`` builds one
from a real ``labkit run`` of a throwaway study.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import studies
from labkit.errors import DataError, ParameterError
from labkit.records import RECORD_NAME
from labkit.run import docs_blocks, portable, reference


@pytest.fixture(autouse=True)
def builtin_only(monkeypatch):
    monkeypatch.delenv("LABKIT_STUDY_PATH", raising=False)


def write_run(root: Path, profile: str = "default", skip: tuple[str, ...] = (), edit=None) -> Path:
    """A finished run of every registered study, as ``labkit run`` leaves it."""
    for i, study in enumerate(studies.all_studies()):
        if study.id in skip:
            continue
        folder = root / study.id
        folder.mkdir(parents=True)
        params = dict(reference.default_parameters(study) or {"profile": "default"})
        params.update(profile=profile, seed=0)
        if "tokenizer" in params:  # records.redact hides values under secret-looking names
            params["tokenizer"] = "<redacted>"
        outputs = []
        for name in study.figures:
            for ext in ("png", "html"):
                (folder / f"{name}.{ext}").write_bytes(b"\x89PNG binary" if ext == "png" else b"<html>")
            outputs.append(
                {
                    "kind": "figure",
                    "name": name,
                    "caption": f"Figure {name}.",
                    "files": {"png": f"{name}.png", "html": f"{name}.html"},
                }
            )
        for name in study.tables:
            (folder / f"{name}.csv").write_text("a,b\n1,2.5\n")
            (folder / f"{name}.md").write_text(f"**Table {name}.**\n\n| a | b |\n|--:|--:|\n| {i} | 0.{i}25 |\n")
            outputs.append(
                {
                    "kind": "table",
                    "name": name,
                    "caption": f"Table {name}.",
                    "files": {"csv": f"{name}.csv", "md": f"{name}.md"},
                }
            )
        (folder / f"{study.id}.ipynb").write_text("{}")
        record = {
            "study": study.id,
            "labkit_version": "0.1.0",
            "git": {"commit": "0123456789abcdef", "dirty": False},
            "started_utc": f"2026-01-01T10:0{i}:00+00:00",
            "finished_utc": f"2026-01-01T10:0{i}:30+00:00",
            "wall_time_s": 60.0 * (i + 1),
            "parameters": params,
            "seeds": {"python": 0},
            "data": {
                "mqp": {
                    "origin": "mirror",
                    "location": "/somewhere/data/mqp",
                    "sha256": {"mqp.csv": "ab" * 32},
                    "verified_against_registry": True,
                }
            },
            "packages": {"torch": "2.13.0"},
            "hardware": {"platform": "Linux", "cpu_count": 2},
            "device": {
                "device": "cpu",
                "name": "CPU",
                "dtype": "float32",
                "mixed_precision": False,
            },
            "energy": {"train": {"energy_kwh": 0.0031}},
            "results": {"headline": {"median": 1.2345, "ci95": [1.1, 1.4]}},
            "warnings": ["few-shot panel: piqa skipped, data unavailable"],
            "outputs": outputs,
        }
        if edit:
            edit(study, record)
        (folder / RECORD_NAME).write_text(json.dumps(record))
    return root


def test_a_complete_default_run_becomes_a_small_portable_record(tmp_path):
    figs = write_run(tmp_path / "figs")
    (figs / "scaling_laws" / "benchmark_scaling_fit.json").write_text('{"refits_s": 16.2}')
    row = "| What is the dose of a drug for a cough? | 0.5 |\n"
    (figs / "embeddings_medical" / "pair_scores.md").write_text(
        "**Every pair**\n\n| q | s |\n|--|--|\n" + row * (reference.MAX_TABLE_BYTES // len(row))
    )
    out = reference.build(figs, tmp_path / "results")
    for study in studies.all_studies():
        folder = out / study.id
        bench = ["benchmark_scaling_fit.json"] if study.id == "scaling_laws" else []
        big = ["pair_scores"] if study.id == "embeddings_medical" else []
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [f"{t}.md" for t in study.tables if t not in big] + ["record.json"] + bench
        ), study.id
        record = json.loads((folder / "record.json").read_text())
        assert record["profile"] == "default" and record["device"]["device"] == "cpu"
        assert record["results"]["headline"]["median"] == 1.2345
        assert record["packages"] == {"torch": "2.13.0"} and record["git"]["commit"] == "0123456789abcdef"
        assert record["warnings"] == ["few-shot panel: piqa skipped, data unavailable"]
        assert [o["name"] for o in record["outputs"]] == [*study.figures, *study.tables]
        assert all(set(o) == {"kind", "name", "caption"} for o in record["outputs"])
        assert record["data"]["mqp"]["files"] == 1 and "location" not in record["data"]["mqp"]
    assert not list(out.rglob("*.png")) and not list(out.rglob("*.html")) and not list(out.rglob("*.csv"))
    readme = (out / "README.md").read_text()
    assert reference.GENERATED_MARK in readme and "Partial" not in readme
    assert "| [scaling_laws](scaling_laws/record.json) | default | 5.0 min | cpu (CPU, float32) |" in readme
    assert "`figs/`" in readme and "0123456789ab" in readme
    assert "Left out" in readme and "`embeddings_medical/pair_scores.md`" in readme
    assert "[pair_scores](embeddings_medical/pair_scores.md)" not in readme
    # a second build replaces the first (its own earlier output)
    assert reference.build(figs, out) == out


@pytest.mark.parametrize(
    "profile, skip, edit, reason",
    [
        ("smoke", (), None, "profile 'smoke', not 'default'"),
        (
            "default",
            ("anchor_attention",),
            None,
            "anchor_attention: no figs/anchor_attention/run_record.json",
        ),
        (
            "default",
            (),
            lambda s, r: r["outputs"].pop() if s.id == "scaling_laws" else None,
            "scaling_laws: promised outputs not in its record",
        ),
        (
            "default",
            (),
            lambda s, r: r["parameters"].update(repeats=99) if s.id == "anchor_attention" else None,
            "anchor_attention: parameters differ from the default profile: repeats=99",
        ),
        (
            "default",
            (),
            lambda s, r: r["git"].update(commit="fedcba") if s.id == "data_overview" else None,
            "records come from 2 different commits",
        ),
    ],
)
def test_an_incomplete_or_non_default_run_is_refused_with_the_reason(tmp_path, profile, skip, edit, reason):
    if "repeats" in reason:
        assert "repeats" in reference.default_parameters(studies.get("anchor_attention"))
    figs = write_run(tmp_path / "figs", profile, skip, edit)
    with pytest.raises(DataError, match="--allow-partial") as err:
        reference.build(figs, tmp_path / "results")
    assert reason in str(err.value)
    assert not (tmp_path / "results").exists()
    out = reference.build(figs, tmp_path / "results", allow_partial=True)
    readme = (out / "README.md").read_text()
    assert "**Partial record**" in readme and reason in readme
    assert f"profile: `{profile}`" in readme


def test_a_machine_path_anywhere_stops_the_build_naming_file_and_path(tmp_path, monkeypatch):
    leak = str(tmp_path / "cache" / "x.bin")
    figs = write_run(
        tmp_path / "figs",
        edit=lambda s, r: r["warnings"].append(f"read {leak}") if s.id == "embeddings_medical" else None,
    )
    with pytest.raises(DataError) as err:
        reference.build(figs, tmp_path / "results")
    message = str(err.value)
    assert "embeddings_medical/record.json" in message and "/tmp" in message
    assert not (tmp_path / "results").exists()
    home = tmp_path / "home" / "ann"
    monkeypatch.setenv("HOME", str(home))
    figs2 = write_run(tmp_path / "figs2")
    (figs2 / "scaling_laws" / "fit_params.md").write_text(f"**t**\n\n| p |\n|--|\n| {home}/x |\n")
    with pytest.raises(DataError, match=r"scaling_laws/fit_params\.md holds .*home/ann"):
        reference.build(figs2, tmp_path / "results")


def test_path_leaks_match_whole_components_only():
    assert portable.path_leaks("/work/main/figures and /work/mainline", ["/work/main"]) == ["/work/main"]
    assert portable.path_leaks("/work/mainline /work/main_x", ["/work/main"]) == []
    assert "/tmp" in portable.machine_paths() and str(studies.CHECKOUT) in portable.machine_paths()


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    figs = write_run(tmp_path / "figs")
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.md").write_text("my notes")
    with pytest.raises(ParameterError, match="not a reference record"):
        reference.build(figs, mine)
    assert (mine / "thesis.md").read_text() == "my notes"


def test_bad_figures_folders_are_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        reference.build(tmp_path / "nope", tmp_path / "results")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no \\*/run_record.json"):
        reference.build(tmp_path / "empty", tmp_path / "results")
    (tmp_path / "bad" / "x").mkdir(parents=True)
    (tmp_path / "bad" / "x" / RECORD_NAME).write_text("{")
    with pytest.raises(DataError, match=r"x/run_record.json: not valid JSON"):
        reference.build(tmp_path / "bad", tmp_path / "results")
    figs = write_run(tmp_path / "figs")
    (figs / "scaling_laws" / "kausik.md").unlink()
    with pytest.raises(DataError, match=r"scaling_laws/run_record.json lists table kausik.md"):
        reference.build(figs, tmp_path / "results")


def test_update_docs_fills_blocks_from_the_record_and_is_idempotent(tmp_path):
    results = reference.build(write_run(tmp_path / "figs"), tmp_path / "results")
    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "scaling_laws.md"
    page.write_text(
        "# S\n\nBefore.\n\n<!-- results:scaling_laws/fit_params.md -->\nstale 9.99\n<!-- /results -->\n\nAfter.\n"
    )
    assert docs_blocks.update_docs(docs, results) == [page]
    text = page.read_text()
    assert "stale" not in text and "**Table fit_params.**" in text and "| 4 | 0.425 |" in text
    assert "(../results/scaling_laws/fit_params.md)" in text and text.endswith("<!-- /results -->\n\nAfter.\n")
    assert docs_blocks.update_docs(docs, results) == []
    page.write_text("# S\n\n\n<!-- results:scaling_laws/nope.md -->\n<!-- /results -->\n")
    with pytest.raises(DataError, match=r"scaling_laws.md line 4: block names scaling_laws/nope.md"):
        docs_blocks.update_docs(docs, results)


def test_command_line(tmp_path, capsys):
    figs = write_run(tmp_path / "figs", profile="smoke")
    assert reference.main(["--figures", str(figs), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("labkit.run.reference: error:") and err.count("\n") == 1
    assert reference.main(["--figures", str(figs), "--out", str(tmp_path / "r"), "--allow-partial"]) == 0
    assert (tmp_path / "r" / "data_overview" / "record.json").is_file()


# ------------------------------------------- the gallery shows what the records say, in full
def test_gallery_notes_are_never_cut_mid_word():
    from labkit.run.gallery import shorten

    text = (
        "few-shot panel: piqa skipped, data unavailable (DataUnavailableError: piqa is not in "
        "the mirror and the hub is offline. Supply it under <mirror>/piqa/)"
    )
    assert shorten(text) == text
    for width in range(10, len(text), 7):
        short = shorten(text, width)
        assert short.endswith(" …") and len(short) <= width + 1
        kept = short[:-2]
        assert text.startswith(kept) and text[len(kept)] in " ,;:", (width, short)
    assert shorten("x" * 50, 10) == "x" * 50  # one long word: whole, never cut


def test_gallery_shows_device_skipped_panels_and_warnings_in_full(tmp_path):
    from labkit.run import gallery

    caption = "Held-out accuracy against training energy " + "with a long explanation " * 20
    record = {
        "study": "embeddings_medical",
        "parameters": {"profile": "default"},
        "wall_time_s": 12.0,
        "device": {
            "device": "cuda",
            "name": "NVIDIA H100",
            "dtype": "bfloat16",
            "mixed_precision": True,
        },
        "warnings": [
            "BIOSSES panel skipped: DataUnavailableError: biosses is not in the "
            "mirror (Supply it under <mirror>/biosses/)",
            "provider openai-3-small skipped: OPENAI_API_KEY is not set",
            "truncated 3 transcripts\nto the context",
        ],
        "outputs": [
            {
                "kind": "figure",
                "name": "accuracy_energy",
                "caption": caption,
                "files": {"png": "accuracy_energy.png", "html": "accuracy_energy.html"},
            }
        ],
    }
    (tmp_path / "embeddings_medical").mkdir()
    (tmp_path / "embeddings_medical" / RECORD_NAME).write_text(json.dumps(record))
    page = gallery.write(tmp_path).read_text()
    assert "NVIDIA H100" in page and "bfloat16" in page
    skipped = page.index("Skipped (from the run record):")
    assert (
        page.index(
            "- BIOSSES panel skipped: DataUnavailableError: biosses is not in the mirror "
            "(Supply it under <mirror>/biosses/)"
        )
        > skipped
    )
    assert page.index("- provider openai-3-small skipped: OPENAI_API_KEY is not set") > skipped
    assert page.index("- truncated 3 transcripts to the context") > page.index("Warnings (from the run record):")
    assert " ".join(caption.split()) in page


def test_a_default_seeds_run_enters_the_record_and_another_profile_is_refused(tmp_path):
    from labkit.run.reference import seeds_spread

    folder = tmp_path / "st"
    assert seeds_spread(folder) is None
    for seed in (0, 1, 2):
        sub = folder / "seeds" / f"seed-{seed}"
        sub.mkdir(parents=True)
        (sub / "run_record.json").write_text(
            json.dumps({"parameters": {"profile": "default", "seed": seed}, "git": {"commit": "abc"}})
        )
    (folder / "seeds_summary.md").write_text("| quantity | mean |\n|---|---|\n| r | 1 |\n")
    assert seeds_spread(folder) == {"seeds": [0, 1, 2], "profile": "default", "commits": ["abc"]}
    (folder / "seeds" / "seed-1" / "run_record.json").write_text(
        json.dumps({"parameters": {"profile": "smoke", "seed": 1}})
    )
    with pytest.raises(DataError, match="not 'default'"):
        seeds_spread(folder)
