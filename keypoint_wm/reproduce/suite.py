"""``python -m keypoint_wm.reproduce.suite``: part of the repository's test suite as a unit.

A protocol unit is one command whose figures are read from a file it writes. This one runs
pytest (in this process, from the repository's root) on the given arguments and writes each
test's outcome as JSON: the counts, the failed tests, and why tests were skipped, so that a
CUDA test on a machine without CUDA is recorded as skipped with its reason, never as passed.
It exits 0 whenever the tests ran, failed ones included (their failure is the recorded
figure), and with pytest's own code when they could not run (errors while collecting, a
usage error, nothing collected, an internal error).

    python -m keypoint_wm.reproduce.suite --json PATH -- -m cuda tests/test_cuda.py

pytest is a test dependency, not the package's: it is imported when this runs.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keypoint_wm.data.episodes import atomic_write_json

__all__ = ["FIXED_ARGS", "Outcomes", "main", "run_suite"]

FIXED_ARGS = ("-q", "-p", "no:cacheprovider", "-o", "addopts=")
"""Always passed to pytest: no cache written into the repository, none of its default
options (the arguments say what runs)."""

RAN = (0, 1)
"""pytest's exit codes when the tests ran: all passed, some failed."""


class Outcomes:
    """A pytest plugin that keeps each test's outcome and each skip's reason."""

    def __init__(self) -> None:
        self.tests: dict[str, str] = {}
        self.reasons: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.skipped and report.when in ("setup", "call"):
            outcome = "xfailed" if hasattr(report, "wasxfail") else "skipped"
            if outcome == "skipped":
                reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else "skipped"
                self.reasons[str(reason).removeprefix("Skipped: ")] += 1
            self.tests[report.nodeid] = outcome
        elif report.failed:
            self.tests[report.nodeid] = "failed" if report.when == "call" else "error"
        elif report.when == "call":
            self.tests[report.nodeid] = "xpassed" if hasattr(report, "wasxfail") else "passed"

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.tests[report.nodeid or "collection"] = "error"

    def to_json(self, args: Sequence[str], exit_code: int) -> dict[str, Any]:
        counts = Counter(self.tests.values())
        return {
            "args": list(args),
            "exit_code": exit_code,
            "ran": exit_code in RAN,
            "counts": {k: counts.get(k, 0) for k in ("passed", "failed", "error", "skipped")}
            | {k: v for k, v in counts.items() if k in ("xfailed", "xpassed")},
            "failed": sorted(t for t, o in self.tests.items() if o in ("failed", "error")),
            "skip_reasons": dict(self.reasons),
            "tests": dict(sorted(self.tests.items())),
        }


def run_suite(args: Sequence[str], json_path: str | Path) -> dict[str, Any]:
    """Run pytest on ``args`` (after :data:`FIXED_ARGS`), write the outcomes to
    ``json_path`` and return them (``exit_code``: pytest's; ``ran``: it got to run them)."""
    import pytest

    outcomes = Outcomes()
    code = int(pytest.main([*FIXED_ARGS, *args], plugins=[outcomes]))
    result = outcomes.to_json(args, code)
    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """The command: 0 when the tests ran (passed or not), else pytest's exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m keypoint_wm.reproduce.suite",
        description="Run pytest on ARGS and write every test's outcome to --json.",
    )
    parser.add_argument("--json", required=True, metavar="PATH", help="where the outcomes go")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then pytest's arguments")
    options = parser.parse_args(argv)
    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    result = run_suite(args, options.json)
    print(f"{result['counts']} -> {options.json}", flush=True)
    return 0 if result["ran"] else result["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
