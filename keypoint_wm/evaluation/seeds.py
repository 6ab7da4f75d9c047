"""Several training seeds of one variant: mean and 95% confidence interval over runs.

The paper reports every figure as the mean over several initialisations with a confidence
interval (docs/design.md, "Seeds"). Every ``evaluate`` command and ``rewards evaluate``
evaluates each seed's run on its own and combines the runs' JSON objects here, recursively
over the JSON structure:

- a number (and each number of a list, elementwise) becomes the mean over the runs; its
  half-width is that of the 95% Student-t interval over runs, ``t_{0.975, n-1} s / sqrt(n)``
  (:func:`keypoint_wm.evaluation.metrics.mean_ci`). Values equal in every run (settings such
  as ``samples``, counts of the same data) stay as they are, with half-width 0. A number that
  is null in some runs is averaged over the runs that have one;
- objects and lists are combined key by key and element by element; runs whose objects
  have other keys or whose lists have other lengths are not seeds of one variant (an error);
- any other value (text, a flag, null) stays when every run has it, and becomes the list
  of the runs' values when they differ (``"run"``: the run directories); its half-width is
  null.

One run gives its own object back unchanged. :class:`OverSeeds` holds the typed results of
one variant's runs; its ``to_json()`` is the mean object plus ``"seed_ci95"`` (the same keys,
each the half-width; null for one run) and ``"per_run"`` (each run's own object). Keys named
``ci95`` inside a result keep their meaning (an interval over test windows of one run).

A folder written by ``keypoint-wm train --seeds N --out OUT`` holds one run per seed in
``OUT/seed_<s>/`` (:func:`keypoint_wm.replicas.replica_dir`); :func:`seed_runs` expands it
(:mod:`keypoint_wm.run_groups`, which also groups runs into labelled variants).

Commands that put several variants side by side (``evaluate compare``, ``rewards evaluate``)
write each variant as this same object, under ``"variants"`` (:func:`variants_json`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from keypoint_wm.differences import config_differences
from keypoint_wm.errors import UsageError
from keypoint_wm.evaluation.metrics import mean_ci
from keypoint_wm.run_groups import seed_runs  # its home; importable from here as before

__all__ = [
    "OverSeeds",
    "SeedMismatch",
    "aggregate",
    "as_seeds",
    "check_one_variant",
    "plus_minus",
    "seed_runs",
    "variants_json",
]


class SeedMismatch(UsageError):
    """Runs given as seeds of one variant gave results of different layouts."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def aggregate(values: Sequence[Any]) -> tuple[Any, Any]:
    """Mean and 95% half-width over runs of JSON values of one layout (module docstring).

    Args:
        values: one JSON value per run (objects, lists, numbers, text, booleans, null).

    Returns:
        ``(mean, half_width)``: the same layout twice; the half-width is None for one run.

    Raises:
        SeedMismatch: the values do not share one layout (keys, list lengths, kinds).

    >>> mean, half = aggregate([
    ...     {"error": 1.0, "r2": [0.5, 0.9], "samples": 50, "run": "a"},
    ...     {"error": 2.0, "r2": [0.7, 0.9], "samples": 50, "run": "b"},
    ...     {"error": 3.0, "r2": [0.6, 0.9], "samples": 50, "run": "c"},
    ... ])
    >>> mean
    {'error': 2.0, 'r2': [0.6, 0.9], 'samples': 50, 'run': ['a', 'b', 'c']}
    >>> round(half["error"], 4)  # t(0.975, 2 dof) = 4.303, s = 1: 4.303 / sqrt(3)
    2.4843
    >>> half["r2"][1], half["samples"], half["run"]
    (0.0, 0.0, None)
    >>> aggregate([{"error": 1.5}])
    ({'error': 1.5}, None)
    """
    if not values:
        raise ValueError("aggregate needs at least one run")
    if len(values) == 1:
        return values[0], None
    return _combine(list(values), "")


def _combine(values: list[Any], path: str) -> tuple[Any, Any]:
    first = values[0]
    if all(isinstance(v, dict) for v in values):
        keys = list(first)
        for other in values[1:]:
            if set(other) != set(keys):
                extra = sorted(set(other) ^ set(keys))
                raise SeedMismatch(_mismatch(path, f"keys {extra} are not in every run"))
        pairs = {k: _combine([v[k] for v in values], _join(path, k)) for k in keys}
        return {k: p[0] for k, p in pairs.items()}, {k: p[1] for k, p in pairs.items()}
    if all(isinstance(v, list) for v in values):
        lengths = sorted({len(v) for v in values})
        if len(lengths) > 1:
            raise SeedMismatch(_mismatch(path, f"lists of lengths {lengths}"))
        items = [_combine([v[i] for v in values], f"{path}[{i}]") for i in range(len(first))]
        return [m for m, _ in items], [h for _, h in items]
    if any(isinstance(v, dict | list) for v in values):
        raise SeedMismatch(_mismatch(path, "an object or list in some runs only"))
    if all(_is_number(v) or v is None for v in values) and any(_is_number(v) for v in values):
        present = [float(v) for v in values if v is not None]
        if len(present) == len(values) and all(v == first for v in values):
            return first, 0.0
        mean, half = mean_ci(np.array(present))
        half_width = float(half) if math.isfinite(float(half)) else None
        return float(mean), half_width
    if all(v == first and type(v) is type(first) for v in values):
        return first, None
    return list(values), None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mismatch(path: str, what: str) -> str:
    where = f"'{path}'" if path else "the top level"
    return (
        f"the runs given as seeds of one variant differ at {where} ({what}); seeds of one "
        "variant share their model, data and evaluation settings"
    )


def plus_minus(mean: float | None, half: float | None, spec: str = ".4f") -> str:
    """``"0.1234 ± 0.0100"`` (``"0.1234"`` without a half-width, ``"-"`` for null).

    >>> plus_minus(26.5, 0.25, ".2f"), plus_minus(26.5, None, ".2f"), plus_minus(None, None)
    ('26.50 ± 0.25', '26.50', '-')
    """
    if mean is None:
        return "-"
    text = format(mean, spec)
    return text if half is None else f"{text} ± {format(half, spec)}"


class Result(Protocol):
    """A typed evaluation result: ``to_json()`` gives its JSON object."""

    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Result)


@dataclass(frozen=True)
class OverSeeds(Generic[R]):
    """The results of one variant's runs (its training seeds), combined by :func:`aggregate`.

    Attributes:
        runs: the run directories, one per result.
        results: each run's typed result.
        context: keys added to every run's object after ``"run"`` (e.g. ``{"data": DIR}``).
    """

    runs: tuple[str, ...]
    results: tuple[R, ...]
    context: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.results or len(self.runs) != len(self.results):
            raise ValueError(f"need one run per result, got {self.runs} and {self.results}")

    @classmethod
    def single(cls, result: R, run: str | None = None) -> OverSeeds[R]:
        """One run's result (its figures exactly, no interval)."""
        return cls((str(run) if run is not None else "",), (result,))

    @property
    def count(self) -> int:
        """The number of runs (seeds)."""
        return len(self.results)

    @cached_property
    def per_run(self) -> list[dict[str, Any]]:
        """Each run's JSON object with its ``"run"`` directory (and ``context``)."""
        return [
            {**result.to_json(), **({"run": run} if run else {}), **self.context}
            for run, result in zip(self.runs, self.results, strict=True)
        ]

    @cached_property
    def _aggregated(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return aggregate(self.per_run)

    @property
    def mean(self) -> dict[str, Any]:
        """The mean object: each number the mean over runs (one run: its own object)."""
        return self._aggregated[0]

    @property
    def ci(self) -> dict[str, Any] | None:
        """The half-widths of the 95% intervals over runs, same keys; None for one run."""
        return self._aggregated[1]

    def at(self, *path: str | int) -> tuple[Any, Any]:
        """``(mean, half-width)`` of the value at ``path`` (keys or list positions)."""
        mean: Any = self.mean
        half: Any = self.ci
        for key in path:
            mean = mean[key]
            half = None if half is None else half[key]
        return mean, half

    def to_json(self) -> dict[str, Any]:
        """The mean object plus ``"seed_ci95"`` and ``"per_run"`` (module docstring)."""
        return {**self.mean, "seed_ci95": self.ci, "per_run": self.per_run}

    def __iter__(self) -> Iterator[tuple[str, R]]:
        return iter(zip(self.runs, self.results, strict=True))


def variants_json(variants: Iterable[tuple[str, OverSeeds[Any]]]) -> dict[str, Any]:
    """``{variant name: its OverSeeds.to_json()}``: each variant of a side-by-side command in
    the layout of a one-variant ``evaluate`` command (its mean object, ``"seed_ci95"`` and
    ``"per_run"``), in the order given.

    Raises:
        ValueError: two variants share a name.
    """
    out: dict[str, Any] = {}
    for name, variant in variants:
        if name in out:
            raise ValueError(f"two variants named {name!r}")
        out[name] = variant.to_json()
    return out


def as_seeds(result: R | OverSeeds[R]) -> OverSeeds[R]:
    """``result`` as an :class:`OverSeeds` (a single result becomes one run)."""
    return result if isinstance(result, OverSeeds) else OverSeeds.single(result)


def check_one_variant(
    runs: Sequence[str | Path], model_configs: Sequence[dict[str, Any]], hint: str = ""
) -> None:
    """Refuse runs that are not seeds of one variant: their model configs must be equal.

    Raises:
        UsageError: naming the first two runs that differ and the differing fields.
    """
    for run, config in zip(runs[1:], model_configs[1:], strict=True):
        differing = config_differences(model_configs[0], config)
        if differing:
            shown = ", ".join(f"model.{name}" for name in differing[:4])
            raise UsageError(
                f"--run {runs[0]} and --run {run} are not seeds of one variant: their "
                f"{shown} differ{hint}"
            )
