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


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces -> -."""
    kept = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return kept.replace(" ", "-")


def headings_outside_code(text: str) -> list[str]:
    """Markdown headings, not the `# comment` lines inside fenced code blocks."""
    found, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#{1,6} (.+)", line)):
            found.append(m.group(1))
    return found


def test_slugs_and_headings_follow_githubs_rules() -> None:
    text = "# Top\n```bash\n# a comment\n```\n## The shipped model (model card)\n"
    assert headings_outside_code(text) == ["Top", "The shipped model (model card)"]
    slug = github_slug("The shipped model (model card)")
    assert slug == "the-shipped-model-model-card"
    assert github_slug("Bars, tempo and notation") == "bars-tempo-and-notation"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_links_within_a_page_name_one_of_its_headings(doc: Path) -> None:
    """The README's contents line and `see [Transcribe](#transcribe)` stay live."""
    text = doc.read_text(encoding="utf-8")
    slugs = {github_slug(h) for h in headings_outside_code(text)}
    dead = [a for a in re.findall(r"\]\(#([^)\s]+)\)", text) if a not in slugs]
    assert not dead, f"{doc.relative_to(REPO)} links to missing headings: {dead}"
