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


SEED_SUMMARY = ("seed_ci95", "per_run")
"""What a result over seeds adds to its mean object (keypoint_wm/evaluation/seeds.py)."""


def variant_over_seeds(report: dict[str, Any], label: str, seeds: int) -> dict[str, Any]:
    """The variant ``label`` of a side-by-side report (``evaluate compare``, ``rewards
    evaluate``), asserted to be written as a one-variant ``evaluate`` command over seeds
    writes its result: the mean object, ``"seed_ci95"`` (its keys, each a half-width over
    seeds; null for one run) and ``"per_run"`` (one object of the same keys per seed run)."""
    variant = report["variants"][label]
    mean = {k: v for k, v in variant.items() if k not in SEED_SUMMARY}
    assert set(variant) == set(mean) | set(SEED_SUMMARY)
    assert len(variant["per_run"]) == seeds
    assert all(set(run) == set(mean) for run in variant["per_run"])
    if seeds == 1:  # one run: its own object, no interval
        assert variant["seed_ci95"] is None and variant["per_run"] == [mean]
    else:
        assert set(variant["seed_ci95"]) == set(mean)
        assert mean["run"] == [run["run"] for run in variant["per_run"]]
    return variant
