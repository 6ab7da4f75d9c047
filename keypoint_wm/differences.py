"""Which settings differ between two dicts: the one comparison every re-run makes.

A re-run compares the settings it was given with the ones recorded when the work started (a
run's ``config.json``, a dataset's ``manifest.json``, an agent unit's result) and refuses, or
redoes, what differs. Values are compared in their JSON form, the form they are recorded in:
a tuple equals the list it is saved as, ``1`` differs from ``1.0`` and ``True``; a key missing
on one side counts as ``None``; nested dicts are compared key by key (``"train.steps"``).

Torch-free and importing only the standard library, so that every layer may use it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["config_differences", "describe_differences"]


def _same(left: Any, right: Any) -> bool:
    """Whether two values are recorded alike (their JSON forms, keys sorted, are equal)."""
    return json.dumps(left, sort_keys=True, default=str) == json.dumps(
        right, sort_keys=True, default=str
    )


def _differing(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str
) -> Iterator[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` of every difference, keys sorted."""
    for key in sorted(set(old) | set(new)):
        name = f"{prefix}{key}"
        left, right = old.get(key), new.get(key)
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            yield from _differing(left, right, name + ".")
        elif not _same(left, right):
            yield name, left, right


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts, sorted.

    >>> config_differences({"train": {"steps": 1, "lr": 0.1}}, {"train": {"steps": 2, "lr": 0.1}})
    ['train.steps']
    >>> config_differences({"size": (64, 64), "extra": None}, {"size": [64, 64]})
    []
    """
    return [name for name, _, _ in _differing(a, b, prefix)]


def describe_differences(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    template: str = "{key}: {old!r} now {new!r}",
) -> str:
    """The differences of :func:`config_differences` as one line of text ("" if none).

    ``template`` is filled in per differing key with ``key``, ``old`` and ``new``; the
    pieces are joined with ``", "``.

    >>> describe_differences({"seed": 0, "size": 64}, {"seed": 1, "size": 64})
    'seed: 0 now 1'
    >>> describe_differences({"seed": 0}, {"seed": 1}, "{key}: {old!r} there, {new!r} now")
    'seed: 0 there, 1 now'
    """
    return ", ".join(
        template.format(key=name, old=left, new=right)
        for name, left, right in _differing(old, new, "")
    )
