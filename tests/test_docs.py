"""The README is a front door, not a manual: short, its links and those of docs/ lead somewhere, and every
`segkit <command>` it names is a real command."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Tuple

from segkit.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 250
# [text](target) and ![alt](target); the target ends at whitespace or ')'
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
COMMAND = re.compile(r"(?<![\w./-])segkit ([a-z][a-z0-9-]*)")


def manual_pages():
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(page: Path) -> Iterator[Tuple[str, Path]]:
    """(link as written, the file it names) for every link that is not a URL or an anchor in the page."""
    text = FENCE.sub("", page.read_text())  # a code block's brackets are code, not links
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # https:, mailto:, or a heading of this page
        yield target, (page.parent / target.split("#", 1)[0]).resolve()


def code_of(text: str) -> str:
    """The fenced blocks and inline code spans of a markdown text: where a command is spelled out."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    spans = INLINE_CODE.findall(FENCE.sub("", text))
    return "\n".join(blocks + spans)


def test_readme_is_at_most_250_lines():
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail into docs/*.md"


def test_every_relative_link_points_to_a_file():
    missing = [
        f"{page.relative_to(ROOT)}: ({link})"
        for page in manual_pages()
        for link, path in relative_links(page)
        if not path.exists()
    ]
    assert not missing, "links to files that do not exist:\n" + "\n".join(missing)


def test_the_readme_links_every_manual_page():
    linked = {path for _, path in relative_links(README)}
    pages = set((ROOT / "docs").glob("*.md"))
    assert not {p.resolve() for p in pages} - linked, "docs/*.md pages the README does not link"


def test_every_command_the_readme_names_exists():
    named = set(COMMAND.findall(code_of(README.read_text())))
    assert named, "the README names no `segkit <command>`: the pattern is out of date"
    assert not named - set(COMMANDS), f"README names commands segkit lacks: {sorted(named - set(COMMANDS))}"
    assert not set(COMMANDS) - named, f"commands the README's table leaves out: {sorted(set(COMMANDS) - named)}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "[a](gone.md) [b](https://example.org/x) [c](#here) ![d](img/x.png)\n```\n[not a link](nowhere.md)\n```\n"
    )
    assert [link for link, _ in relative_links(page)] == ["gone.md", "img/x.png"]
    assert COMMAND.findall(
        code_of("run `segkit trian X` or\n```\npython -m segkit eval b.pth\n```\nsegkit is a toolkit")
    ) == ["eval", "trian"]
