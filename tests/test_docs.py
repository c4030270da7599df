"""The documentation's links and cross-references lead somewhere.

The README sends readers to files (`docs/model-history.md`, the data manifest, images)
and to named paragraphs of the model history; a moved or renamed target should fail
here, not leave a reader at a dead end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "drumtx" / "models").glob("*.md")),
]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
HISTORY = "docs/model-history.md"


def relative_links(text: str) -> list[str]:
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_link_pattern_finds_relative_targets_only() -> None:
    text = "see [a](docs/a.md), ![b](docs/b.png) and [c](https://x.org/c) [d](e.md#f)"
    assert relative_links(text) == ["docs/a.md", "docs/b.png", "e.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_files(doc: Path) -> None:
    missing = [
        t
        for t in relative_links(doc.read_text(encoding="utf-8"))
        if not (doc.parent / t).exists()
    ]
    assert not missing, f"{doc.relative_to(REPO)} links to missing files: {missing}"


def test_named_history_paragraphs_exist() -> None:
    """``*Snare buzz* in [`docs/model-history.md`](...)`` needs that paragraph there."""
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    names = re.findall(r"\*([^*]+)\* in \[`" + re.escape(HISTORY) + r"`\]", readme)
    assert names, "the README no longer names a paragraph of the model history"
    history = (REPO / HISTORY).read_text(encoding="utf-8")
    headings = [" ".join(h.split()) for h in re.findall(r"^\*\*([^*]+)", history, re.M)]
    for name in names:
        assert any(h.startswith(name) for h in headings), f"no paragraph {name!r}"
