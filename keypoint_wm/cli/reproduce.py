"""``keypoint-wm reproduce NAME``: run (or continue) the protocol behind a published result.

Building this parser imports nothing heavy: the NAMEs and their costs come from the
registry in :mod:`keypoint_wm.reproduce`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from keypoint_wm.cli.common import add_quiet, positive_int
from keypoint_wm.reproduce import TARGETS

DEFAULT_RESULTS = Path("docs") / "results"


def run_reproduce(args: argparse.Namespace) -> int:
    """Run the missing units of one protocol, then regenerate its page."""
    from keypoint_wm.reproduce import build
    from keypoint_wm.reproduce.runner import reproduce

    protocol = build(args.name, smoke=args.smoke)
    out = Path(args.out)
    if args.results:
        results = Path(args.results)
    else:  # a smoke run never writes into the published results
        results = out / "results" if args.smoke else DEFAULT_RESULTS
    if args.status:
        from keypoint_wm.reproduce.protocol import load_results
        from keypoint_wm.reproduce.status import format_status, unit_states

        states = unit_states(protocol, load_results(results / protocol.name), out)
        print(format_status(protocol, states))
        return 0
    summary = reproduce(
        protocol,
        out,
        results,
        jobs=args.jobs,
        threads=args.threads,
        only=args.only or (),
        report_only=args.report_only,
        commit=args.commit,
        quiet=args.quiet,
    )
    if not args.quiet:
        print(f"ran {len(summary.ran)} unit(s); page {summary.page}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``keypoint-wm reproduce``."""
    targets = "\n".join(f"  {t.help_line()}" for t in TARGETS.values())
    p = commands.add_parser(
        "reproduce",
        help="run (or continue) the protocol behind a published result: " + ", ".join(TARGETS),
        description="Run the units of a published result that are not recorded yet (each "
        "unit's result is a small JSON under RESULTS/NAME/; a re-run skips recorded units and "
        "re-creates the datasets and models the remaining ones need), then regenerate "
        f"RESULTS/NAME.md and its plots.\n\nNAMEs:\n{targets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "name", choices=tuple(TARGETS), metavar="NAME", help="the result: " + ", ".join(TARGETS)
    )
    p.add_argument(
        "--out",
        required=True,
        help="folder for the large files (datasets, runs, logs); never the repository",
    )
    p.add_argument(
        "--jobs",
        type=positive_int("--jobs"),
        help="units side by side (default: one per core on a CPU, one on a GPU); the cores "
        "are shared among them",
    )
    p.add_argument(
        "--threads",
        type=positive_int("--threads"),
        help="threads (or collection workers) per unit (default: the cores shared among the "
        "units running); set it when other work shares the machine, e.g. a second reproduce",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="UNIT",
        help="run only these units (names or name prefixes, e.g. probe-struct) and what they need",
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="regenerate the page from the recorded unit results; run nothing",
    )
    p.add_argument(
        "--status",
        action="store_true",
        help="list each unit as recorded, running (another process holds it in --out), to "
        "run, made or to make; run nothing",
    )
    p.add_argument(
        "--results",
        help=f"folder of unit results and pages (default {DEFAULT_RESULTS}, or OUT/results "
        "with --smoke)",
    )
    p.add_argument(
        "--commit",
        action="store_true",
        help="git-commit each unit's result and the page as the unit finishes",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="the same units on a seconds-long setting (a few tiny episodes, two-step "
        "models): checks the protocol end to end; never the published figures",
    )
    add_quiet(p)
    p.set_defaults(handler=run_reproduce)
