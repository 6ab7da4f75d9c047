"""The README's results table: one row per ``reproduce`` page, written by ``reproduce``.

The README lists each published result with a headline figure and a link to its page
(``docs/results/<NAME>.md``). The rows of ``reproduce`` pages are not written by hand: every
time a page is regenerated, its row is rewritten from the same records (the protocol's
:attr:`~keypoint_wm.reproduce.protocol.Protocol.headline`, figures the page itself shows),
so that the README and the page cannot disagree. Rows of older results, measured before
``reproduce`` existed, stay as they are.
"""

from __future__ import annotations

from pathlib import Path

from keypoint_wm.data.episodes import atomic_write_bytes
from keypoint_wm.reproduce.protocol import Protocol, UnitResult

__all__ = ["README_BEGIN", "README_END", "readme_of", "readme_row", "update_readme"]

README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


def readme_of(results_root: Path) -> Path | None:
    """The README whose results table lists ``results_root``'s pages: the repository's,
    when ``results_root`` is its ``docs/results`` folder; else None."""
    root = results_root.resolve()
    if root.name != "results" or root.parent.name != "docs":
        return None
    readme = root.parent.parent / "README.md"
    return readme if readme.is_file() else None


def readme_row(protocol: Protocol, results: dict[str, UnitResult]) -> str:
    """The README's row for ``protocol``'s page: title, headline, link, command."""
    headline = protocol.headline(results) if protocol.headline else "see the page"
    return (
        f"| {protocol.title or protocol.summary} | {headline} | "
        f"[{protocol.name}](docs/results/{protocol.name}.md) | "
        f"`keypoint-wm reproduce {protocol.name}` |"
    )


def update_readme(protocol: Protocol, results: dict[str, UnitResult], results_root: Path) -> None:
    """Put ``protocol``'s row into the README's results table (between ``README_BEGIN`` and
    ``README_END``): replace the row that links its page, or add one after the last row of
    a ``reproduce`` page. Nothing happens without such a README."""
    readme = readme_of(results_root)
    if readme is None:
        return
    text = readme.read_text()
    if text.count(README_BEGIN) != 1 or text.count(README_END) != 1:
        return
    head, rest = text.split(README_BEGIN)
    block, tail = rest.split(README_END)
    lines = block.strip("\n").splitlines()
    row = readme_row(protocol, results)
    link = f"(docs/results/{protocol.name}.md)"
    mine = [i for i, line in enumerate(lines) if link in line]
    if mine:
        lines[mine[0]] = row
    else:
        ours = [i for i, line in enumerate(lines) if "(docs/results/" in line]
        lines.insert((ours[-1] + 1) if ours else min(2, len(lines)), row)
    new = f"{head}{README_BEGIN}\n" + "\n".join(lines) + f"\n{README_END}{tail}"
    if new != text:
        atomic_write_bytes(readme, new.encode())
