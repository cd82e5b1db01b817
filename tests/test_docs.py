"""README.md and docs/: a short front door whose links resolve, pages that speak to users about
the tool (not about how it is developed), and never the unrelated `stemsplit` on the index.

The full link and anchor check of docs/ is `make docs` (mkdocs build --strict); these tests
cover the README, which mkdocs does not build, and the wording of every page."""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MAX_README_LINES = 300

# Wording about how stemsplit is developed, which no user page should carry.
FORBIDDEN = {
    "lent machine": r"\blent\b",
    "device call/time": r"\bdevice (call|time|budget|tool)s?\b",
    "GPU round/loan": r"\bGPU (round|loan|session)s?\b",
    "numbered round": r"\b(first|second|third|fourth|fifth|sixth) round\b",
    "shared folder": r"\.\./shared\b",
    "/work path": r"/work/",
    "issue number": r"\bissues? #?\d+",
    "named issue": r"\bthe [\w-]+ issue('s)?\b",
    "session": r"(?<!inference )\bsession\b",
    "closing note": r"\bclosing note",
    "stop N": r"\bstop \d+\b",
    "the lead": r"\bthe lead\b",
}
# `pip install stemsplit`, `pip install "stemsplit[train]"`: a stranger's package on the index.
UNRELATED_PACKAGE = re.compile(r"pip3? install\s+[\"']?stemsplit(?=[\s\[\])\"'`]|$)", re.MULTILINE)
LINK = re.compile(r"(?<!\\)!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def without_code_blocks(text: str) -> str:
    """The text outside ``` fences (links and headings inside them are examples, not structure)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def heading_text(line: str) -> str:
    """A heading's visible text: inline code ticks, emphasis and link syntax removed."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line.lstrip("#").strip())
    return re.sub(r"[`*_](?=\S)|(?<=\S)[`*_]", "", text)


def slug_mkdocs(text: str) -> str:
    """Python-Markdown's toc slug (what mkdocs builds)."""
    value = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def slug_github(text: str) -> str:
    """GitHub's heading anchor (what the README's readers follow)."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> tuple[set[str], set[str]]:
    headings = [heading_text(line) for line in without_code_blocks(page.read_text()).splitlines()
                if re.match(r"#{1,6} ", line)]
    return {slug_mkdocs(h) for h in headings}, {slug_github(h) for h in headings}


def test_the_readme_is_a_front_door_of_at_most_300_lines():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"
    assert any(line.startswith("## ") for line in lines)


def test_every_relative_link_in_the_readme_resolves_to_a_file_and_heading():
    links = [m.group(1) for m in LINK.finditer(without_code_blocks(README.read_text()))]
    relative = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in relative), "the README links into docs/"
    for link in relative:
        path, _, anchor = link.partition("#")
        target = (ROOT / path) if path else README
        assert target.is_file(), f"README.md links to {link!r}: {target} does not exist"
        if anchor:
            mkdocs_slugs, github_slugs = anchors(target)
            assert anchor in mkdocs_slugs and anchor in github_slugs, \
                f"README.md links to {link!r}: no such heading in {target.name}"


def test_every_docs_page_is_in_the_mkdocs_nav_and_every_nav_entry_exists():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert config["docs_dir"] == "docs" and config["strict"] is True

    def entries(nav) -> list[str]:
        out = []
        for item in nav:
            value = next(iter(item.values())) if isinstance(item, dict) else item
            out += entries(value) if isinstance(value, list) else [value]
        return out

    in_nav = entries(config["nav"])
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(in_nav) == on_disk


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_speaks_about_how_stemsplit_is_developed(page: Path):
    text = page.read_text()
    found = [f"{name}: {m.group(0)!r}" for name, pattern in FORBIDDEN.items()
             for m in re.finditer(pattern, text, flags=re.IGNORECASE)]
    assert not found, f"{page.relative_to(ROOT)}: {found}"


@pytest.mark.parametrize("sentence", [
    "measured on the lent H100 (device call)", "two device calls on one H200", "the fifth GPU round",
    "the third round", "the data in ../shared/data/multitracks", "--out /work/data/musdb7",
    "what was done about it (issue 16)", "the quality issue's bars", "stopped by the session's end",
    "see the closing note", "after stop 3", "the lead fills it in"])
def test_the_forbidden_wording_is_recognised(sentence: str):
    assert any(re.search(p, sentence, flags=re.IGNORECASE) for p in FORBIDDEN.values())


@pytest.mark.parametrize("sentence", [
    "a silent stem", "its inference session", "on a GPU", "the second training run", "one H100 GPU"])
def test_user_wording_is_not_taken_for_development_wording(sentence: str):
    assert not any(re.search(p, sentence, flags=re.IGNORECASE) for p in FORBIDDEN.values())


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_tells_users_to_install_the_unrelated_stemsplit_from_the_index(page: Path):
    assert not UNRELATED_PACKAGE.findall(page.read_text())


@pytest.mark.parametrize("line, unrelated", [
    ("pip install stemsplit", True), ("pip install stemsplit  # no", True),
    ('pip install "stemsplit[train]"', True), ("`pip install stemsplit`", True),
    ("pip install stemsplit-audio", False), ("pip install .", False), ('pip install ".[train]"', False)])
def test_the_unrelated_package_pattern(line: str, unrelated: bool):
    assert bool(UNRELATED_PACKAGE.search(line)) is unrelated
