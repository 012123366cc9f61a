"""Every relative link in the README and docs/ leads somewhere: the file exists, and an #anchor
names a heading of it (GitHub's slugs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCED = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", flags=re.MULTILINE)


def prose(text: str) -> str:
    """The text without code blocks, where a `#` or a `[x](y)` is not markdown."""
    return FENCED.sub("", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a page's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(prose(page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The page's relative link targets (web and mail links are not checked here)."""
    text = INLINE_CODE.sub("", prose(page.read_text()))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def broken(page: Path, target: str) -> str | None:
    """Why the link does not resolve, or None."""
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    if not destination.exists():
        return f"{target}: no such file"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{target}: no heading with the anchor #{anchor} in {destination.name}"
    return None


@pytest.mark.parametrize(
    ("heading", "expected"),
    [
        ("Event contract", "event-contract"),
        ("Set up and run (fresh machine)", "set-up-and-run-fresh-machine"),
        ("Backtest: `segstream replay`", "backtest-segstream-replay"),
        ("Serving: Redis, HTTP API, metrics", "serving-redis-http-api-metrics"),
        ("The decoder's rules", "the-decoders-rules"),
        ("seg_members and more", "seg_members-and-more"),
        ("A [linked](x.md) heading", "a-linked-heading"),
    ],
)
def test_slug_is_githubs(heading: str, expected: str) -> None:
    assert slug(heading) == expected


def test_repeated_headings_are_numbered(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n## The `x` command\n\n```sh\n# not a heading\n```\n\n## The x command\n"
    )
    assert anchors(page) == {"title", "the-x-command", "the-x-command-1"}


def test_a_broken_link_is_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Here\n\n[a](missing.md) [b](#here) [c](#gone) `[d](code.md)`\n")
    found = [broken(page, target) for target in links(page)]
    assert found == [
        "missing.md: no such file",
        None,
        "#gone: no heading with the anchor #gone in page.md",
    ]


def test_the_docs_exist() -> None:
    names = {page.name for page in PAGES}
    assert {"operations.md", "reliability.md", "benchmarks.md", "internals.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(ROOT)) for page in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    problems = [problem for target in links(page) if (problem := broken(page, target))]
    assert problems == [], f"{page.relative_to(ROOT)}: {problems}"
