"""The docstring examples of the installed package run, and say what they show.

Every module of ``keypoint_wm`` (with ``envs/``, ``collect/`` and ``rewards/`` as
``keypoint_wm.envs``, ``keypoint_wm.collect`` and ``keypoint_wm.rewards``) is imported by its
installed name and its doctests are run. No example may be skipped: one that needs what a
test cannot have (a trained run, a MuJoCo render) is written as a plain code block instead.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The installed packages and the source folders they come from (pyproject's package-dir).
ROOTS = {
    "keypoint_wm": REPO / "keypoint_wm",
    "keypoint_wm.envs": REPO / "envs",
    "keypoint_wm.collect": REPO / "collect",
    "keypoint_wm.rewards": REPO / "rewards",
}
FLAGS = doctest.ELLIPSIS


def installed_modules() -> list[str]:
    """Every module importable under the roots, as the installed package lays them out."""
    names: set[str] = set()
    for root in ROOTS:
        package = importlib.import_module(root)
        names.add(root)
        names.update(info.name for info in pkgutil.walk_packages(package.__path__, root + "."))
    return sorted(names)


def source_modules() -> list[str]:
    """The module name of every ``.py`` file in the source folders."""
    names = set()
    for root, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.add(".".join([root, *parts]))
    return sorted(names)


MODULES = installed_modules()


def test_every_source_file_is_an_installed_module() -> None:
    assert MODULES == source_modules()


def _doctests(name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(name)
    return [test for test in doctest.DocTestFinder().find(module, name) if test.examples]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=FLAGS, verbose=False)  # not "-v" in sys.argv
    examples = 0
    for test in _doctests(name):
        skipped = [ex.source.strip() for ex in test.examples if ex.options.get(doctest.SKIP)]
        assert not skipped, f"{test.name}: skipped examples (make them run, or a code block)"
        examples += len(test.examples)
        runner.run(test, out=lambda text: print(text, end=""))
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
    assert result.attempted == examples


def test_the_examples_are_found() -> None:
    # Guards the test above against passing on modules whose examples it cannot see.
    with_examples = {name for name in MODULES if _doctests(name)}
    for name in ("keypoint_wm.api", "keypoint_wm.conventions", "keypoint_wm.rewards.head"):
        assert name in with_examples
