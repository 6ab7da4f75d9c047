"""A dataset's manifest (``manifest.json`` in its folder): what was collected or written,
with which settings."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from keypoint_wm.data.atomic import atomic_write_json
from keypoint_wm.data.episode_format import EpisodeFormatError
from keypoint_wm.errors import DataError

__all__ = [
    "MANIFEST_NAME",
    "manifest_action_repeat",
    "manifest_episode_count",
    "positive_int_or_none",
    "read_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"


def read_manifest(root: str | os.PathLike) -> dict[str, Any] | None:
    """The dataset manifest (``manifest.json``) of ``root``, or ``None`` if there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise EpisodeFormatError(f"{path}: manifest is not valid JSON ({error})") from error


def manifest_episode_count(manifest: dict[str, Any] | None) -> int | None:
    """How many episode files a finished dataset of ``manifest`` holds: a DMCS collection's
    ``spec.episodes`` per task times its tasks, a written dataset's ``requested_sequences``;
    None when the manifest does not say (or there is none).

    >>> manifest_episode_count({"spec": {"episodes": 5, "tasks": ["a-b", "c-d"]}})
    10
    """
    if not isinstance(manifest, dict):
        return None
    spec = manifest.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("tasks"), list):
        per_task = positive_int_or_none(spec.get("episodes"))
        return per_task * len(spec["tasks"]) if per_task else None
    return positive_int_or_none(manifest.get("requested_sequences"))


def manifest_action_repeat(root: Any) -> int | None:
    """The ``spec.action_repeat`` of the manifest in the dataset folder ``root``: a positive
    int, or None when there is no folder, manifest or such entry (or it is unreadable)."""
    if not isinstance(root, (str, os.PathLike)) or not str(root):
        return None
    try:
        manifest = read_manifest(root)
    except (OSError, DataError):
        return None
    spec = manifest.get("spec") if isinstance(manifest, dict) else None
    return positive_int_or_none(spec.get("action_repeat") if isinstance(spec, dict) else None)


def positive_int_or_none(value: Any) -> int | None:
    """``value`` when it is an int >= 1 (not a bool), else None: a recorded action repeat."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def write_manifest(root: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Atomically write ``manifest.json`` into ``root``."""
    path = Path(root) / MANIFEST_NAME
    atomic_write_json(path, manifest, sort_keys=True)
    return path
