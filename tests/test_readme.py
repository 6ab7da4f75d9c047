"""The README is a user's document whose figures each come from one source.

- The results summary (between ``<!-- results:begin -->`` and ``<!-- results:end -->``):
  every number and every "quoted phrase" of a row's headline appears in the page or the
  section its row links (a ``docs/results/<NAME>.md`` page that ``keypoint-wm reproduce``
  writes, or a section of docs/measurements.md for results not re-run by ``reproduce`` yet),
  and every published page has a row.
- The preset tables of the README and docs/guide.md (between ``<!-- presets:begin -->`` and
  ``<!-- presets:end -->``) agree with :data:`keypoint_wm.presets.PRESETS`: each row names the
  settings it shows in backticks (``model.num_keypoints``), each cell shows their values.
- Every relative link of the README and the docs leads to a file, and to a heading there.
- The README stays short, its ``keypoint-wm`` commands parse, its test command is the one
  .ci/run calls (``make test``), and its Python blocks run, in order, on a tiny run laid out
  as the quick start lays out its own (``runs/quick``, ``data/quick``).
- Citations of docs/measurements.md in the code name one of its sections.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
GUIDE = REPO / "docs" / "guide.md"
MEASUREMENTS = REPO / "docs" / "measurements.md"
RESULTS = REPO / "docs" / "results"
OWN_ENV = REPO / "docs" / "your-own-environment.md"
DOCS = (README, GUIDE, MEASUREMENTS, REPO / "docs" / "design.md", OWN_ENV)
MAX_LINES = 220
HISTORY = "history (before reproduce)"
IN_PROGRESS = "in progress"

NUMBER = re.compile(r"(?<![\w.,])-?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?(?![\w])")
QUOTED = re.compile(r'"([^"]+)"')
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


# --- Markdown -------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str, int]]:
    """(level, text, line index) of every heading outside code blocks."""
    found, fenced = [], False
    for index, line in enumerate(path.read_text().splitlines()):
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.+)", line)):
            found.append((len(match.group(1)), match.group(2).strip(), index))
    return found


def anchors(path: Path) -> dict[str, str]:
    """Each anchor of ``path`` -> the text of its section (down to the next heading of the
    same or a higher level, subsections included). Repeated headings get -1, -2, ..."""
    lines = path.read_text().splitlines()
    marks = headings(path)
    out: dict[str, str] = {}
    for i, (level, text, start) in enumerate(marks):
        end = next((line for lv, _, line in marks[i + 1 :] if lv <= level), len(lines))
        key, n = slug(text), 1
        while key in out:
            key, n = f"{slug(text)}-{n}", n + 1
        out[key] = "\n".join(lines[start:end])
    return out


def source_text(target: str, base: Path) -> str | None:
    """The text a link points to: a whole file, or the section of its anchor (None: missing)."""
    path_part, _, anchor = target.partition("#")
    path = (base / path_part).resolve() if path_part else base
    if path.is_dir() and not anchor:
        return ""  # a folder: it exists, no text of its own
    if not path.is_file():
        return None
    if not anchor:
        return path.read_text()
    return anchors(path).get(anchor)


def between(text: str, name: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    assert text.count(begin) == 1 and text.count(end) == 1, f"one {begin} ... {end} wanted"
    return text.split(begin)[1].split(end)[0]


def table(text: str) -> list[list[str]]:
    """The rows of the Markdown table in ``text`` (header first, the rule left out)."""
    rows = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    return rows


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def numbers(text: str) -> list[str]:
    return NUMBER.findall(text)


def mentions(number: str, text: str) -> bool:
    return re.search(rf"(?<![\w.,]){re.escape(number)}(?![\w]|[.,]\d)", text) is not None


def squash(text: str) -> str:
    return " ".join(text.replace("`", "").split())


# --- The results summary --------------------------------------------------------------------


def results_rows() -> list[dict[str, str]]:
    header, *rows = table(between(README.read_text(), "results"))
    assert [h.lower() for h in header] == ["result", "headline", "source", "status"], header
    out = []
    for cells in rows:
        assert len(cells) == 4, cells
        links = LINK.findall(cells[2])
        assert len(links) == 1, f"one link per source cell: {cells[2]!r}"
        out.append(dict(zip(("result", "headline", "source", "status"), cells, strict=True)))
        out[-1]["target"] = links[0]
    return out


def test_the_results_summary_has_rows() -> None:
    rows = results_rows()
    assert len(rows) >= 5
    assert any(r["target"].startswith("docs/results/") for r in rows)
    assert any(r["status"] == HISTORY for r in rows)


@pytest.mark.parametrize("row", results_rows(), ids=lambda r: r["result"][:40])
def test_each_headline_figure_is_in_its_source(row: dict[str, str]) -> None:
    target, headline = row["target"], row["headline"]
    text = source_text(target, REPO)
    if target.startswith("docs/results/"):
        assert row["status"].startswith("`keypoint-wm reproduce"), row["status"]
        name = Path(target.partition("#")[0]).stem
        assert row["status"] == f"`keypoint-wm reproduce {name}`", row["status"]
        if text is None:  # not published yet
            assert headline.lower().startswith(IN_PROGRESS), (
                f"{target} does not exist: the row's headline must say {IN_PROGRESS!r}"
            )
            return
    else:
        assert target.startswith("docs/measurements.md#"), target
        assert row["status"] == HISTORY, row["status"]
        assert text is not None, f"{target}: no such section"
    figures, quotes = numbers(headline), QUOTED.findall(headline)
    assert figures or quotes, f"{row['result']}: a headline quotes a figure or a phrase"
    missing = [n for n in figures if not mentions(n, text)]
    missing += [q for q in quotes if squash(q) not in squash(text)]
    assert not missing, (
        f"{row['result']}: {missing} of the headline {headline!r} are not in {target}: "
        "take the figures from there"
    )


def test_every_published_page_has_a_row() -> None:
    linked = {r["target"].partition("#")[0] for r in results_rows()}
    pages = {f"docs/results/{p.name}" for p in RESULTS.glob("*.md")}
    assert not pages - linked, f"published results without a row in the README: {pages - linked}"


# --- The preset tables ----------------------------------------------------------------------


def render(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    return f"{float(value):g}"


def cell_values(cell: str) -> list[str]:
    """What a cell shows, in order: `names`, yes/no, numbers (thousands' commas dropped)."""
    values = []
    for match in re.finditer(rf"`([^`]+)`|\b(yes|no)\b|({NUMBER.pattern})", cell):
        code, word, number = match.groups()
        if number is not None:
            values.append(f"{float(number.replace(',', '')):g}")
        else:
            values.append(code if code is not None else word)
    return values


def preset_table_mismatches(path: Path) -> list[str]:
    from keypoint_wm.presets import PRESETS

    header, *rows = table(between(path.read_text(), "presets"))
    names = [h.strip("`") for h in header[1:]]
    assert names and set(names) <= set(PRESETS), f"{path.name}: columns {names}"
    configs = {name: PRESETS[name].build() for name in names}
    problems = []
    for cells in rows:
        fields = re.findall(r"`((?:model|train)\.\w+)`", cells[0])
        assert fields, f"{path.name}: the row {cells[0]!r} names no setting"
        for name, cell in zip(names, cells[1:], strict=True):
            config = configs[name]
            wanted = [
                render(getattr(getattr(config, f.split(".")[0]), f.split(".")[1])) for f in fields
            ]
            if cell_values(cell) != wanted:
                problems.append(f"{path.name}: {cells[0]} / {name}: {cell!r}, the preset: {wanted}")
    return problems


@pytest.mark.parametrize("path", [README, GUIDE], ids=lambda p: p.name)
def test_preset_tables_agree_with_the_presets(path: Path) -> None:
    problems = preset_table_mismatches(path)
    assert not problems, "\n".join(problems)


def test_the_guide_shows_every_preset() -> None:
    from keypoint_wm.presets import PRESETS

    header = table(between(GUIDE.read_text(), "presets"))[0]
    assert [h.strip("`") for h in header[1:]] == list(PRESETS)


# --- Links, length, commands ----------------------------------------------------------------


def broken_links(path: Path, allowed: set[str]) -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target in allowed:
            continue
        if source_text(target if not target.startswith("#") else f"{path.name}{target}",
                       path.parent) is None:  # fmt: skip
            broken.append(target)
    return broken


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_lead_somewhere(path: Path) -> None:
    unpublished = {r["target"] for r in results_rows() if r["headline"].startswith(IN_PROGRESS)}
    broken = broken_links(path, unpublished if path == README else set())
    assert not broken, f"{path.name}: links to nothing: {broken}"


def test_anchors_follow_github() -> None:
    assert slug("2026-12-01 (night): agents at 10,000 env steps, and why") == (
        "2026-12-01-night-agents-at-10000-env-steps-and-why"
    )
    assert slug("reacher-easy (`--held-out-data`)") == "reacher-easy---held-out-data"
    assert "the-training-loop-against-the-bench-on-a-cpu" in anchors(MEASUREMENTS)


def test_the_readme_is_short() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move detail to docs/guide.md"


def test_the_readme_test_command_is_the_one_ci_runs() -> None:
    assert "make test" in "".join(code_blocks(README.read_text(), "bash"))
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), flags=re.M)


def commands(path: Path) -> list[list[str]]:
    """Every complete ``keypoint-wm`` command of the file's bash blocks (placeholders with
    ``...`` left out), as argv without the program name."""
    found = []
    for block in code_blocks(path.read_text(), "bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if not line.startswith("keypoint-wm ") or "..." in line:
                continue
            found.append(shlex.split(line)[1:])
    return found


@pytest.mark.parametrize("path", [README, GUIDE, OWN_ENV], ids=lambda p: p.name)
def test_the_commands_parse(path: Path) -> None:
    from keypoint_wm.cli.main import build_parser

    argvs = commands(path)
    assert len(argvs) >= 5
    parser = build_parser()
    for argv in argvs:
        try:
            parser.parse_args(argv)
        except SystemExit as error:  # argparse's way of refusing
            raise AssertionError(f"{path.name}: keypoint-wm {shlex.join(argv)}") from error


def test_code_cites_sections_of_the_measurements() -> None:
    titles = [squash(text).lower() for _, text, _ in headings(MEASUREMENTS)]
    cited = re.compile(r'docs/measurements\.md,[\s#]+"([^"]+)"')
    missing = []
    for folder in ("keypoint_wm", "envs", "collect", "rewards"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for match in cited.finditer(path.read_text()):
                section = squash(re.sub(r"[\s#]+", " ", match.group(1))).lower()
                if not any(section in title for title in titles):
                    missing.append((str(path.relative_to(REPO)), match.group(1)))
    assert not missing, f"citations of sections docs/measurements.md does not have: {missing}"


# --- The README's Python blocks -------------------------------------------------------------

SMALL_BUDGET = 120  # agent steps for total_timesteps=..., enough for a few SAC updates


@pytest.mark.integration
def test_the_readme_python_runs(tmp_path_factory, monkeypatch) -> None:
    """The README's Python blocks, in order, as one script, on the tiny DMCS run and data of
    latent_testing laid out as the quick start's ``runs/quick`` and ``data/quick``, with the
    heads ``keypoint-wm rewards train`` writes; the agents' budgets are cut to SMALL_BUDGET."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch
    from latent_testing import tiny_dmc_data, tiny_dmc_run

    from keypoint_wm.cli.main import main as cli_main

    base = tmp_path_factory.getbasetemp()
    work = tmp_path_factory.mktemp("readme")
    (work / "runs").mkdir()
    (work / "data").mkdir()
    run = work / "runs" / "quick"
    shutil.copytree(tiny_dmc_run(base), run, ignore=shutil.ignore_patterns("tensorboard"))
    (work / "data" / "quick").symlink_to(tiny_dmc_data(base))
    argv = ["rewards", "train", "--run", str(run), "--data", str(work / "data" / "quick"),
            "--tasks", "cartpole-balance", "--steps", "2", "--device", "cpu", "--quiet"]  # fmt: skip
    assert cli_main(argv) == 0

    blocks = code_blocks(README.read_text(), "python")
    assert len(blocks) >= 3
    script = "\n".join(blocks)
    script, cut = re.subn(r"total_timesteps=[\d_]+", f"total_timesteps={SMALL_BUDGET}", script)
    assert cut >= 2  # a latent agent and a dream agent
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": "__readme__"}
    threads = torch.get_num_threads()  # the README sets one thread for SB3: not for the suite
    try:
        exec(compile(script, str(README), "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    assert {"agent", "dreamer", "futures"} <= set(namespace)
