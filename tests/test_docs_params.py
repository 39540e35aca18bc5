"""Every ``-p key=value`` example in the docs and the README passes the parameter check.

Why: the anchor page and the README told readers to pass ``-p model=...``, a parameter no
study has (the anchor study's is ``base_model``); ``labkit run`` rejects it before any kernel
starts, so a reader's first try failed. Each example is run through :func:`labkit.params.check`
for the study it belongs to: the study named by ``labkit run <study>`` on the same line, else
the study whose page it is (``docs/<study>.md``), else (README, general pages) any registered
study with that parameter. A placeholder value (``...``, ``<name or path>``) checks the name
only; a real value is parsed as ``labkit run`` parses it and validated.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from labkit import params, studies
from labkit.errors import ParameterError
from labkit.run import plan

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
EXAMPLE = re.compile(r"-p\s+([A-Za-z_][A-Za-z0-9_]*)=((?:'[^']*'|\"[^\"]*\"|[^\s`|)])+)")
RUN = re.compile(r"labkit run\s+([a-z_]+)")
PLACEHOLDER = re.compile(r"^(\.\.\.|<[^>]*>?|…)$")


def _examples() -> list[tuple[str, int, str | None, str, str]]:
    found = []
    for page in PAGES:
        own = page.stem if page.parent.name == "docs" else None
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            named = RUN.search(line)
            for key, value in EXAMPLE.findall(line):
                if key == "key":  # the syntax itself: `-p key=value`
                    continue
                found.append((page.relative_to(ROOT).as_posix(), n, named.group(1) if named else own, key, value))
    return found


def _value(raw: str):
    text = " ".join(shlex.split(raw)) if raw[:1] in "'\"" else raw
    return None if PLACEHOLDER.match(text) else plan.parse_value("example", text)


def _known(study: str | None) -> list[str]:
    ids = studies.ids()
    if study is not None and params.schema_for(study) is not None:
        return [study]
    return [s for s in ids if params.schema_for(s) is not None]


EXAMPLES = _examples()


def test_examples_are_found():
    """The pattern finds the examples the pages do hold (a guard on the extraction)."""
    keys = {e[3] for e in EXAMPLES}
    assert {"base_model", "mixed_precision"} <= keys, keys


@pytest.mark.parametrize("page,line,study,key,raw", EXAMPLES, ids=[f"{e[0]}:{e[1]}:{e[3]}" for e in EXAMPLES])
def test_documented_example_passes_the_check(page, line, study, key, raw):
    value = _value(raw)
    errors = []
    for candidate in _known(study):
        schema = params.schema_for(candidate)
        if key not in schema.params:
            errors.append(f"{candidate} has no parameter {key!r}")
            continue
        if value is None:
            return
        try:
            params.check(candidate, {key: value})
            return
        except ParameterError as exc:
            errors.append(str(exc))
    pytest.fail(f"{page}:{line}: `-p {key}={raw}` fails the parameter check: {'; '.join(errors)}")


def test_a_wrong_example_would_fail():
    """The check can fail: the old ``-p model=...`` of the anchor page is rejected."""
    assert "model" not in params.schema_for("anchor_attention").params
    with pytest.raises(ParameterError, match="base_model"):
        params.check("anchor_attention", {"model": "x"})
