"""Helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any

from keypoint_wm.presets import SMOKE_OVERRIDES

TINY_OVERRIDES = SMOKE_OVERRIDES


def tiny_config(steps: int, preset: str = "basketball-cpu", **extra):
    """A seconds-to-train config of the real model on 32x32 frames."""
    from keypoint_wm.presets import get_preset

    overrides = {**TINY_OVERRIDES, "train.steps": steps, **extra}
    return get_preset(preset).build(seed=3).with_overrides(overrides)


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key of a JSON value as a dotted path (``[]`` marks a list's elements)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            paths |= {path} | key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
    return paths
