"""The docs quote the reference record by construction: every ``<!-- results:<study>/<table>.md
-->`` block of a ``docs/*.md`` page is refilled from ``results/`` (``python -m
labkit.run.reference --update-docs``), so a page's tables are never typed by hand."""

from __future__ import annotations

import re
from pathlib import Path

from labkit import io
from labkit.errors import DataError

BLOCK = re.compile(r"(<!-- results:(?P<ref>[\w.-]+/[\w.-]+\.md) -->\n)(?P<body>.*?)(<!-- /results -->)", re.S)


def update_docs(docs: Path, results: Path) -> list[Path]:
    """Refill every ``<!-- results:<study>/<table>.md -->`` block in ``docs/*.md``.

    Returns the pages that changed. A block naming a table that ``results/<study>/`` lacks is
    an error naming the page and line; blocks of a study with no folder in ``results`` (a
    partial record) are left as they are, and the docs test names that page.
    """
    changed = []
    for page in sorted(Path(docs).glob("*.md")):
        text = page.read_text(encoding="utf-8")

        def fill(match: re.Match, text: str = text, page: Path = page) -> str:
            ref = match.group("ref")
            table = Path(results) / ref
            if not table.parent.is_dir():
                return match.group(0)
            if not table.is_file():
                line = text.count("\n", 0, match.start()) + 1
                raise DataError(
                    f"{page.name} line {line}: block names {ref}, which {Path(results).name}/ does not have"
                )
            body = table.read_text(encoding="utf-8").strip()
            source = f"*From [`results/{ref}`](../results/{ref}), the reference run.*"
            return f"{match.group(1)}{body}\n\n{source}\n{match.group(4)}"

        new = BLOCK.sub(fill, text)
        if new != text:
            io.write_text(page, new)
            changed.append(page)
    return changed
