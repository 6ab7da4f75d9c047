"""Docstrings cite the design notes as ``docs/design.md, "<Section>"``: every cited section
exists, so a reader who follows a citation finds what it points to."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DESIGN = REPO / "docs" / "design.md"
SOURCES = ("keypoint_wm", "envs", "collect", "rewards", "tests", "examples")
# A citation may wrap across lines (also inside a comment: "#" continues it).
CITATION = re.compile(r'docs/design\.md,[\s#]+"([^"]+)"')


def source_files() -> list[Path]:
    """Every Python file of the package, its tests and examples (this file excepted)."""
    files = [p for folder in SOURCES for p in sorted((REPO / folder).rglob("*.py"))]
    return [p for p in files if p != Path(__file__).resolve()]


def headings() -> set[str]:
    return {line.lstrip("#").strip() for line in DESIGN.read_text().splitlines() if line[:1] == "#"}


def citations() -> list[tuple[str, str]]:
    found = []
    for path in [*source_files(), REPO / "pyproject.toml"]:
        for match in CITATION.finditer(path.read_text()):
            section = " ".join(re.sub(r"[\s#]+", " ", match.group(1)).split())
            found.append((str(path.relative_to(REPO)), section))
    return found


def test_citations_are_found() -> None:
    cited = citations()
    assert len(cited) >= 20  # the reader sees the package's citations
    assert ("keypoint_wm/model/dynamics.py", "Action conditioning") in cited  # a wrapped one


def test_every_cited_section_exists() -> None:
    missing = [(path, section) for path, section in citations() if section not in headings()]
    assert not missing, f"citations of sections docs/design.md does not have: {missing}"


def test_no_citation_of_a_design_file_outside_the_repository() -> None:
    stale = [
        str(path.relative_to(REPO))
        for path in source_files()
        if re.search(r"(?<!docs/)\bDESIGN\.md", path.read_text())
    ]
    assert not stale, f"cite docs/design.md instead of DESIGN.md in: {stale}"
