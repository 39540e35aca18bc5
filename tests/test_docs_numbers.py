"""Every result a study page quotes is in the committed reference record (``results/``).

Pages used to quote numbers from runs nobody could find again (issue 12, item 4). This test
reads each ``docs/<study>.md`` of a registered study, extracts the numbers a reader would take
for results, and looks each up in ``results/<study>/`` (its Markdown tables and
``record.json``), numerically at the precision the page displays: "1.34" is quoted correctly
when the record holds 1.3412, "97.9%" when it holds 0.979 or 97.9, "1.68M" when it holds
1,680,000.

Not counted as results: code spans and fenced code, headings, list markers, years, citations
("Fu et al. 2024", arXiv ids), confidence levels ("95% CI", "95% bootstrap interval"), link
targets and URLs, numbers that are part of a name
("ROUGE-1", "all-MiniLM-L6-v2", "4D"), version numbers, generated blocks' source lines, and
lines ending in ``<!-- not a result -->`` (the escape hatch for the rare constant that is not a
parameter in the record; keep it rare). Signs are ignored: "−1.9" and "1.9" both look up 1.9.
"""

from __future__ import annotations

import bisect
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit import studies
from labkit.run import docs_blocks, reference

ROOT = Path(__file__).resolve().parents[1]
NOT_A_RESULT = "<!-- not a result -->"
_NUMBER = re.compile(r"(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_MAGNITUDE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_RATIO = ("x", "×")
_FENCE = re.compile(r"^\s*(```|~~~)")
_STRIP = [
    re.compile(p)
    for p in (
        r"`[^`]*`",  # code spans
        r"<!--.*?-->",  # HTML comments (incl. block markers)
        r"\]\([^)]*\)",  # link targets
        r"https?://\S+",  # bare URLs
        r"\(([^()]*\bet al\.?[^()]*)\)",  # citations: (Fu et al. 2024)
        r"\barXiv:? ?\d{4}\.\d{4,5}(?:v\d+)?",  # arXiv ids
        r"\b\d+(?:\.\d+)?% (?:[\w-]+ ){0,2}(?:CIs?|confidence|intervals?|bootstrap)\b",  # a confidence level
        r"^\*From \[.*$",  # a generated block's source line
    )
]
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*+])\s+")


@dataclass(frozen=True)
class Quoted:
    """One number as a page displays it, with the tolerance its precision implies."""

    line: int
    raw: str
    value: float
    tol: float
    percent: bool = False


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of the lines whose numbers count, with non-result parts removed."""
    out, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith("#") or line.rstrip().endswith(NOT_A_RESULT):
            continue
        line = _LIST_MARKER.sub(" ", line)
        for pattern in _STRIP:
            line = pattern.sub(" ", line)
        out.append((number, line))
    return out


def numbers_in(text: str, line: int = 0) -> list[Quoted]:
    """The result-like numbers in one line of prose (see the module docstring for the rules)."""
    found = []
    for match in _NUMBER.finditer(text):
        raw, start, end = match.group(), match.start(), match.end()
        before = text[start - 1] if start else " "
        before2 = text[start - 2] if start > 1 else " "
        after, after2 = text[end : end + 1], text[end + 1 : end + 2]
        if before.isalnum() or before in "_.^/\\" or (before == "-" and before2.isalpha()):
            continue  # part of a name (ROUGE-1, L6-v2, x2), a version's tail or a fraction
        if after == "." and after2.isdigit():
            continue  # a version number (2.13.0)
        scale, percent = 1.0, False
        if after in _MAGNITUDE and not after2.isalpha():
            scale = _MAGNITUDE[after]
        elif after in _RATIO and not after2.isalpha():
            pass
        elif after == "%":
            percent = True
        elif after.isalpha() or after == "_":
            continue  # 4D, 16ms, 1st: a name or a unit glued to it
        mantissa, _, exponent = raw.replace(",", "").lower().partition("e")
        decimals = len(mantissa.partition(".")[2])
        value = float(mantissa) * 10 ** int(exponent or 0) * scale
        if "," not in raw and "." not in raw and not exponent and scale == 1 and not percent and 1900 <= value <= 2100:
            continue  # a year
        tol = 0.5 * 10 ** (-decimals) * 10 ** int(exponent or 0) * scale
        found.append(Quoted(line, raw + (after if scale != 1 or percent else ""), value, tol, percent))
    return found


def page_numbers(text: str) -> list[Quoted]:
    return [q for number, line in prose_lines(text) for q in numbers_in(line, number)]


def record_values(folder: Path) -> list[float]:
    """Every number in a study's reference record: its tables' text and record.json, sorted."""
    values: list[float] = []

    def add_text(text: str) -> None:
        for q in numbers_in(text):
            values.append(q.value)
            if q.percent:
                values.append(q.value / 100)

    def walk(node) -> None:
        if isinstance(node, bool) or node is None:
            return
        if isinstance(node, (int, float)):
            values.append(abs(float(node)))
        elif isinstance(node, str):
            add_text(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                add_text(str(key))
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in sorted(folder.glob("*.md")):
        for line in path.read_text(encoding="utf-8").splitlines():
            add_text(line)
    for record in sorted(folder.glob("*.json")):  # record.json and any benchmark_*.json
        walk(json.loads(record.read_text(encoding="utf-8")))
    return sorted(v for v in values if v == v)  # drop NaN


def in_record(quoted: Quoted, values: list[float]) -> bool:
    """True when some record value rounds to what the page shows."""
    candidates = [(quoted.value, quoted.tol)]
    if quoted.percent:
        candidates.append((quoted.value / 100, quoted.tol / 100))
    for value, tol in candidates:
        slack = tol * (1 + 1e-9) + 1e-12 * max(1.0, value)
        i = bisect.bisect_left(values, value - slack)
        if i < len(values) and values[i] <= value + slack:
            return True
    return False


def unquoted(text: str, values: list[float]) -> list[Quoted]:
    return [q for q in page_numbers(text) if not in_record(q, values)]


def check_page(page: Path, results: Path) -> list[str]:
    """One line per number on ``page`` that ``results/<page stem>/`` does not hold."""
    folder = results / page.stem
    if not folder.is_dir():
        return [f"docs/{page.name}: no {results.name}/{page.stem}/ to quote from"]
    values = record_values(folder)
    return [
        f"docs/{page.name} line {q.line}: {q.raw} is not in {results.name}/{page.stem}/"
        for q in unquoted(page.read_text(encoding="utf-8"), values)
    ]


# -------------------------------------------------------------- the rules, on synthetic pages
def raws(text: str) -> list[str]:
    return [q.raw for q in page_numbers(text)]


def test_skips_code_headings_lists_years_citations_names_and_marked_lines():
    page = "\n".join(
        [
            "# Study 3 — 42 things",
            "Seed: Fu et al. 2024 (arXiv 2402.00841), see (Pang et al. 2024) and Bingi & Yin 2023.",
            "Run `labkit run -p epochs=3` with all-MiniLM-L6-v2 and ROUGE-1 on a 4D mask in 16ms.",
            "```",
            "accuracy = 0.999",
            "```",
            "1. first step [link](https://arxiv.org/abs/2402.07616) torch 2.13.0",
            "A constant of the code, 0.10. <!-- not a result -->",
            "<!-- results:x/y2.md -->",
            "*From [`results/x/y2.md`](../results/x/y2.md), the reference run.*",
            "Accuracy 0.826 [0.800, 0.853] (95% CI; 90% percentile-bootstrap interval), 1,000 resamples, −1.9 in 2023.",
        ]
    )
    assert raws(page) == ["0.826", "0.800", "0.853", "1,000", "1.9"]
    assert [q.line for q in page_numbers(page)] == [11] * 5


def test_suffixes_percent_ratio_and_magnitude():
    found = {q.raw: q for q in page_numbers("97.9% smaller, 1.34x faster, 1.68M 4-grams, 16k params, 5.76e23 FLOP")}
    assert set(found) == {"97.9%", "1.34", "1.68M", "4", "16k", "5.76e23"}
    assert found["1.68M"].value == pytest.approx(1.68e6) and found["1.68M"].tol == pytest.approx(5e3)
    assert found["16k"].value == 16000 and found["97.9%"].percent
    assert found["5.76e23"].tol == pytest.approx(0.005e23)


def test_displayed_precision_decides_a_match():
    values = sorted([1.3412, 0.97896, 3048.0, 1680400.0, 48.93])

    def ok(text):
        return in_record(page_numbers(text)[0], values)

    assert ok("1.34") and ok("1.3") and ok("1.341") and not ok("1.35") and not ok("1.3413")
    assert ok("97.9%") and ok("98%") and not ok("97.8%")  # as a share of 1
    assert ok("48.9%")  # as written (ROUGE in percent)
    assert ok("3,048") and not ok("3,049") and ok("1.68M") and ok("1.7M") and not ok("1.6M")
    assert not ok("2.5")


def test_record_values_read_tables_and_record_json(tmp_path):
    (tmp_path / "main.md").write_text(
        "**Caption with 37 items.**\n\n| system | R-1 |\n|---|---|\n"
        "| Lead-k | 23.8 [21.8, 25.9] |\n| shrink | 97.9% |\n"
    )
    (tmp_path / "record.json").write_text(
        json.dumps(
            {
                "results": {"speedup": {"median": 1.3412, "ci": [-0.98, 1.6]}, "ok": True},
                "warnings": ["kept 1.2% of the transcript"],
                "parameters": {"profile": "default"},
            }
        )
    )
    values = record_values(tmp_path)
    for number in (37, 23.8, 21.8, 25.9, 97.9, 0.979, 1.3412, 0.98, 1.6, 1.2, 0.012):
        assert any(abs(v - number) < 1e-9 for v in values), number
    assert 1.0 not in values  # booleans are not numbers


def test_a_missing_number_is_named_with_page_and_line(tmp_path):
    results = tmp_path / "results"
    (results / "demo").mkdir(parents=True)
    (results / "demo" / "record.json").write_text(json.dumps({"results": {"acc": 0.9091}}))
    page = tmp_path / "demo.md"
    page.write_text("# Demo\n\nAccuracy 0.909.\nSpeed-up 1.34x.\n")
    assert check_page(page, results) == ["docs/demo.md line 4: 1.34 is not in results/demo/"]
    page.write_text("# Demo\n\nAccuracy 0.909.\n")
    assert check_page(page, results) == []
    assert check_page(tmp_path / "other.md", results) == ["docs/other.md: no results/other/ to quote from"]


# --------------------------------------------------------------------- the committed pages
def study_pages() -> list[Path]:
    return [ROOT / "docs" / f"{s.id}.md" for s in studies.BUILTIN if (ROOT / "docs" / f"{s.id}.md").is_file()]


def test_every_builtin_study_has_a_page():
    assert {p.stem for p in study_pages()} == {s.id for s in studies.BUILTIN}


def test_study_pages_quote_only_numbers_in_the_reference_record():
    results = ROOT / reference.RESULTS_DIR
    if not results.is_dir():
        pytest.skip(
            "no results/ yet: run `make figures` (default profile), `make reference` and "
            "`python -m labkit.run.reference --update-docs`, then commit results/ and docs/"
        )
    problems = [p for page in study_pages() for p in check_page(page, results)]
    assert not problems, "numbers on study pages that the reference record lacks:\n" + "\n".join(problems)


def test_generated_blocks_match_the_reference_record(tmp_path):
    results = ROOT / reference.RESULTS_DIR
    if not results.is_dir():
        pytest.skip(
            "no results/ yet: the generated blocks are filled by "
            "`python -m labkit.run.reference --update-docs` once it exists"
        )
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    stale = docs_blocks.update_docs(docs, results)
    assert not stale, (
        "generated blocks out of date (run `python -m labkit.run.reference "
        f"--update-docs`): {', '.join('docs/' + p.name for p in stale)}"
    )
