"""The ``keypoint-wm`` parser and dispatch: the one module that sits on top of every layer.

Each command group registers its parser (``register(subparsers)`` in ``collect``, ``data``,
``train``, ``evaluate``, ``rewards``, ``export``, ``bench``, ``reproduce``); building the parser imports nothing heavy
(no torch, gymnasium, dm_control or stable_baselines3), and each handler imports what it
needs when it runs.

The error model (docs/design.md, "Errors"; :mod:`keypoint_wm.errors`): a
:class:`~keypoint_wm.errors.KeypointWMError` is the user's to fix and ends in one line,
``keypoint-wm <command>: error: <message>``, with its exit code (2: a flag, 1: data or a
run); argparse's own errors exit 2; Ctrl-C exits 130 and says how to resume. Any other
exception is a bug and shows its traceback (``KEYPOINT_WM_DEBUG=1`` shows one for user errors
too).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

from keypoint_wm.cli import bench, collect, data, evaluate, export, reproduce, rewards, train
from keypoint_wm.errors import KeypointWMError, Stopped, storage_cause

COMMAND_GROUPS = (collect, data, train, evaluate, rewards, export, bench, reproduce)
"""The modules that register a top-level command, in ``--help`` order."""


def build_parser() -> argparse.ArgumentParser:
    """The ``keypoint-wm`` parser with every command."""
    from keypoint_wm import __version__

    parser = argparse.ArgumentParser(
        prog="keypoint-wm",
        description="Object-structured keypoint world models (Struct-VRNN) for RL.",
    )
    parser.add_argument("--version", action="version", version=f"keypoint-wm {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(commands)
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``"train"``, ``"data info"``, ``"evaluate tracking"``, ... for error messages."""
    sub = getattr(args, f"{args.command}_command", None)
    return f"{args.command} {sub}" if sub else args.command


@contextlib.contextmanager
def _one_line_warnings(prefix: str) -> Iterator[None]:
    """Warnings print as ``<prefix>: warning: <message>``, one line (not Python's
    ``file.py:NN: UserWarning`` plus a source line); restored afterwards (tests call main)."""
    original = warnings.formatwarning

    def format_warning(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        line: str | None = None,
    ) -> str:
        return f"{prefix}: warning: {message}\n"

    warnings.formatwarning = format_warning
    try:
        yield
    finally:
        warnings.formatwarning = original


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``keypoint-wm`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    with _one_line_warnings(f"keypoint-wm {command_name(args)}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args) or 0)
    except Stopped as stop:  # on request, its work saved: not an error
        print(f"keypoint-wm {command_name(args)}: {stop}", file=sys.stderr)
        return stop.exit_code
    except KeypointWMError as error:
        if os.environ.get("KEYPOINT_WM_DEBUG"):
            raise
        print(f"keypoint-wm {command_name(args)}: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:
        cause = storage_cause(error)
        if cause is None or os.environ.get("KEYPOINT_WM_DEBUG"):
            raise  # not a storage fault: a bug, with its traceback
        where = error.filename or "a file"
        print(f"keypoint-wm {command_name(args)}: error: {where}: {cause}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        how = "the same command with --resume" if args.command == "train" else "the same command"
        print(
            f"keypoint-wm {command_name(args)}: interrupted; continue with {how}",
            file=sys.stderr,
        )
        return 130
