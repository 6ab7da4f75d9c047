"""The ``keypoint-wm`` command line (``python -m keypoint_wm.cli`` works the same way).

:func:`main` is the console script's entry point; :mod:`keypoint_wm.cli.main` builds the
parser from one module per command group.
"""

from __future__ import annotations

from keypoint_wm.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
