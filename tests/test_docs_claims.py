"""Every comparative claim on a page cites the reference-record row that supports it.

``tests/test_docs_numbers.py`` checks that a number a page quotes is in ``results/``; a claim
without a number ("Lead-k is strong", "the head helps weak vectors", "takes hundreds of
chunks", "pays off only at long contexts") slipped past it while no run supported it (issue
23). This test reads ``README.md`` and every ``docs/*.md`` and fails, naming page, line and
claim, on each sentence that makes a comparative claim without a marker

    <!-- cites: <study>/<table>.md | <text that appears in one row of that table> -->

on one of the sentence's lines or right after it (before the next sentence). Every marker is
resolved: ``results/<study>/<table>.md`` must exist and one of its table rows must contain the
text. Whitespace is collapsed and spaces around ``|`` are ignored on both sides, so a marker may
quote adjacent cells: ``MiniLM-L6-v2-CLS+siamese | MiniLM-L6-v2-CLS | better``.

**Claim words** (:data:`CLAIM_WORDS`, whole words, any case): beats / beat / beating, better,
worse, strong / stronger / strongest, weak / weaker / weakest, outperforms / outperform /
outperformed, only at, faster, slower, cheaper, costlier, higher, lower, hundreds, thousands,
more than, less than, fewer than, ties / tied, matches / matched, helps, hurts, pays off,
reproduces / reproduced. A sentence with one of them is a claim about a result; cite the row,
or rewrite the sentence so it claims no more than a table shows. ("best" and "worst" are left
out: on these pages they name things, "the best press", "the best constant summary".)

**Exempt**: fenced code, code spans, headings, generated ``<!-- results:... -->`` ...
``<!-- /results -->`` blocks (they are the record), HTML comments, link targets, words in
double quotes (a word mentioned, not used: the rule's own description), a line ending in
``<!-- not a claim -->`` (for the rare sentence that compares no result, "tests that train for
more than a few seconds"; keep it rare), and ``docs/CONVENTIONS.md``, which states rules and
quotes no result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from labkit.run import reference
from labkit.text import sentence_spans

ROOT = Path(__file__).resolve().parents[1]

NOT_A_CLAIM = "<!-- not a claim -->"
CLAIM_WORDS = (
    "beats",
    "beat",
    "beating",
    "better",
    "worse",
    "strong",
    "stronger",
    "strongest",
    "weak",
    "weaker",
    "weakest",
    "outperforms",
    "outperform",
    "outperformed",
    "only at",
    "faster",
    "slower",
    "cheaper",
    "costlier",
    "higher",
    "lower",
    "hundreds",
    "thousands",
    "more than",
    "less than",
    "fewer than",
    "ties",
    "tied",
    "matches",
    "matched",
    "helps",
    "hurts",
    "pays off",
    "reproduces",
    "reproduced",
)
#: pages that state rules and quote no result
NOT_RESULT_PAGES = ("docs/CONVENTIONS.md",)
_CLAIM = re.compile(
    r"(?<![\w-])(?:" + "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in CLAIM_WORDS) + r")(?![\w-])", re.I
)
_CITE = re.compile(r"<!--\s*cites:\s*(?P<table>[^|]*?)\s*\|\s*(?P<text>.*?)\s*-->", re.S)
_FENCE = re.compile(r"^\s*(```|~~~)")
_BLOCK_START = re.compile(r"<!--\s*results:")
_BLOCK_END = re.compile(r"<!--\s*/results\s*-->")
_NEW_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_MASK = [
    re.compile(p, re.S)
    for p in (
        r"`[^`\n]*`",  # code spans
        r"<!--.*?-->",  # HTML comments (the markers are read before this)
        r"\]\([^)]*\)",  # link targets
        r"https?://\S+",  # bare URLs
        r"\"[^\"\n]*\"|“[^”\n]*”",  # words in double quotes: mentioned, not used
    )
]


@dataclass(frozen=True)
class Cite:
    line: int
    table: str
    text: str


@dataclass(frozen=True)
class Claim:
    line: int
    words: tuple[str, ...]
    sentence: str
    cited: bool


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group())


def paragraphs(text: str) -> list[list[tuple[int, str]]]:
    """Runs of prose lines ``(line number, text)``: a blank line, a list item, a table row, a
    heading, fenced code or a generated block ends a run; the exempt lines are left out."""
    out: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    fenced = in_block = False

    def close():
        nonlocal current
        if current:
            out.append(current)
        current = []

    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            close()
            continue
        if in_block:
            if _BLOCK_END.search(line):
                in_block = False
            continue
        if _BLOCK_START.search(line):
            close()
            in_block = not _BLOCK_END.search(line)
            continue
        if fenced or not line.strip() or line.lstrip().startswith("#") or line.rstrip().endswith(NOT_A_CLAIM):
            close()
            continue
        if line.lstrip().startswith("|"):
            close()
            out.append([(number, line)])  # a hand-written table row: a claim of its own
            continue
        if _NEW_ITEM.match(line):
            close()
        current.append((number, line))
    close()
    return out


def scan(text: str) -> tuple[list[Claim], list[Cite]]:
    """The claims of a page (cited or not) and every marker on it."""
    claims, cites = [], []
    for para in paragraphs(text):
        raw = "\n".join(line for _, line in para)
        starts = [0]
        for _, line in para[:-1]:
            starts.append(starts[-1] + len(line) + 1)

        def line_of(offset: int) -> int:
            i = max(k for k, s in enumerate(starts) if s <= offset)
            return para[i][0]

        markers = [
            (m.start(), Cite(line_of(m.start()), m["table"].strip(), m["text"].strip())) for m in _CITE.finditer(raw)
        ]
        cites += [c for _, c in markers]
        clean = raw
        for pattern in _MASK:  # same length, so offsets and lines stay where they were
            clean = pattern.sub(_blank, clean)
        spans = sentence_spans(clean)
        for k, (a, b) in enumerate(spans):
            words = tuple(" ".join(m.group().lower().split()) for m in _CLAIM.finditer(clean, a, b))
            if not words:
                continue
            until = spans[k + 1][0] if k + 1 < len(spans) else len(raw)
            lines = {line_of(a), line_of(max(a, b - 1))}
            lines |= set(range(min(lines), max(lines) + 1))
            cited = any(a <= pos < until or c.line in lines for pos, c in markers)
            sentence = " ".join(re.sub(r"<!--.*?-->", " ", raw[a:b], flags=re.S).split())
            claims.append(Claim(line_of(a), words, sentence, cited))
    return claims, cites


def _normal(text: str) -> str:
    return re.sub(r"\s*\|\s*", "|", " ".join(text.split())).strip("|").lower()


def resolve(cite: Cite, results: Path) -> str | None:
    """None when ``results/<table>`` has a table row containing the text, else the problem."""
    path = results / cite.table
    if not cite.table.endswith(".md") or cite.table.count("/") != 1:
        return f"cites {cite.table!r}: expected <study>/<table>.md"
    if not path.is_file():
        return f"cites {cite.table}: no such table in {results.name}/"
    want = _normal(cite.text)
    if not want:
        return f"cites {cite.table}: no row text given"
    rows = [_normal(line) for line in path.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("|")]
    if not any(want in row for row in rows):
        return f"cites {cite.table}: no row contains {cite.text!r}"
    return None


def check_page(page: Path, results: Path, root: Path = ROOT) -> list[str]:
    """One line per uncited claim and per marker that does not resolve."""
    name = page.relative_to(root).as_posix() if page.is_relative_to(root) else page.name
    claims, cites = scan(page.read_text(encoding="utf-8"))
    problems = [
        f"{name} line {c.line}: claim ({', '.join(dict.fromkeys(c.words))}) cites no row: {c.sentence[:160]}"
        for c in claims
        if not c.cited
    ]
    for cite in cites:
        problem = resolve(cite, results)
        if problem:
            problems.append(f"{name} line {cite.line}: {problem}")
    return sorted(problems, key=lambda p: (p.split(" line ")[0], int(p.split(" line ")[1].split(":")[0])))


def pages() -> list[Path]:
    return [
        ROOT / "README.md",
        *(p for p in sorted((ROOT / "docs").glob("*.md")) if p.relative_to(ROOT).as_posix() not in NOT_RESULT_PAGES),
    ]


# ------------------------------------------------------------- the rules, on synthetic pages
@pytest.fixture
def results(tmp_path) -> Path:
    folder = tmp_path / "results" / "demo"
    folder.mkdir(parents=True)
    (folder / "main.md").write_text(
        "**Caption: system A is better than B**\n\n| system | versus | verdict |\n|---|---|---|\n"
        "| head A   | base A | better |\n| head B | base B | no clear difference |\n"
    )
    return tmp_path / "results"


def _problems(tmp_path, results, text):
    page = tmp_path / "page.md"
    page.write_text(text)
    return check_page(page, results, tmp_path)


def test_an_uncited_claim_fails_naming_page_line_and_words(tmp_path, results):
    text = "# Title\n\nThe head helps weak vectors.\nIt is a plain fact.\nLead-k is strong here.\n"
    assert _problems(tmp_path, results, text) == [
        "page.md line 3: claim (helps, weak) cites no row: The head helps weak vectors.",
        "page.md line 5: claim (strong) cites no row: Lead-k is strong here.",
    ]


def test_the_issue_claims_are_caught(tmp_path, results):
    for sentence in (
        "Lead-k is strong on QMSum's general queries.",
        "Map-reduce takes hundreds of chunks.",
        "It pays off only at long contexts.",
        "The workbench reproduces every published number.",
        "It helps weak vectors but cannot rescue them.",
        "Random sentences tie it; the oracle beats both.",
    ):
        assert _problems(tmp_path, results, sentence + "\n"), sentence


def test_a_marker_on_the_line_or_after_the_sentence_supports_it(tmp_path, results):
    marker = "<!-- cites: demo/main.md | head A | base A | better -->"
    ok = [
        f"The head helps. {marker}\n",
        f"The head\nhelps its base. {marker}\nNext sentence.\n",
        f"- The head helps its base {marker} on these pairs.\n",
        f"| head A | helps | {marker} |\n",
    ]
    for text in ok:
        assert _problems(tmp_path, results, text) == [], text
    # a marker after a later sentence does not support an earlier one on another line
    assert _problems(tmp_path, results, f"The head helps.\nOther text. {marker}\n")


def test_markers_resolve_against_the_record(tmp_path, results):
    bad = {
        "<!-- cites: demo/missing.md | x -->": "no such table in results/",
        "<!-- cites: demo/main.md | head C -->": "no row contains 'head C'",
        "<!-- cites: main.md | head A -->": "expected <study>/<table>.md",
        "<!-- cites: demo/main.md | better than B -->": "no row contains",
    }  # caption, not row
    for marker, message in bad.items():
        [problem] = _problems(tmp_path, results, f"A plain sentence. {marker}\n")
        assert message in problem and problem.startswith("page.md line 1: ")
    assert _problems(tmp_path, results, "Fine. <!-- cites: demo/main.md | HEAD B|base b -->\n") == []


def test_code_headings_blocks_comments_and_quoted_words_are_exempt(tmp_path, results):
    text = "\n".join(
        [
            "# The best heading",
            "",
            "```",
            "better = faster()",
            "```",
            "Run `labkit run --faster` and see [the page](https://example.org/better).",
            "Tests that train for more than a few seconds are marked slow. <!-- not a claim -->",
            "<!-- results:demo/main.md -->",
            "| head A | better |",
            "<!-- /results -->",
            'A claim word such as "beats" or “stronger” is mentioned, not used.',
            "<!-- a comment that says better -->",
        ]
    )
    assert _problems(tmp_path, results, text) == []
    # link text is prose
    assert _problems(tmp_path, results, "See [the better system](x.md).\n")


# ----------------------------------------------------------------------- the committed pages
@pytest.mark.parametrize("page", pages(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_comparative_claim_on_the_page_cites_the_reference_record(page):
    """One test per page, so a page's owner sees its own claims (and only those) fail."""
    results = ROOT / reference.RESULTS_DIR
    if not results.is_dir():
        pytest.skip("no results/ yet: run `make figures` and `make reference` first")
    problems = check_page(page, results)
    assert not problems, (
        "comparative claims without a supporting row of the reference record "
        "(add <!-- cites: <study>/<table>.md | <row text> --> or rewrite):\n" + "\n".join(problems)
    )
