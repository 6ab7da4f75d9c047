"""Small helpers shared by the ``keypoint-wm`` sub-command modules: flag parsers and the
``--json`` writer. Imports nothing heavy."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def positive_int(flag: str) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers >= 1; errors name ``flag``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{flag} expects a positive integer, got {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} expects a positive integer, got {value}")
        return value

    return parse


def write_json(path: str | None, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically to ``path`` (no-op when ``path`` is None) and say so."""
    if path:
        from keypoint_wm.data.episodes import atomic_write_bytes

        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, (json.dumps(payload, indent=2) + "\n").encode())
        print(f"wrote {target}")
