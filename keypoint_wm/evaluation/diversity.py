"""Sample diversity: the paper's Figure S12 (``keypoint-wm evaluate diversity``).

For chosen test windows, the model observes the first T0 frames and samples N futures. Each
ground-truth object (``true_object_pos``) is matched to the keypoint closest to it on
average over the window's detected keypoints (as the paper matches players), and that
keypoint's N sampled trajectories are drawn over the object's true trajectory (black), one
panel per object, one row per window; trajectory ends are marked with dots. Without ground
truth, the brightest keypoints (largest mean scale) are drawn over their detected
trajectories. For a CNN-VRNN the "keypoints" are feature triples, so the picture shows
feature trajectories, not positions.

Figures per object: ``endpoint_spread`` (mean distance of the N sampled end points from their
mean: 0 for a deterministic model), ``best_error`` and ``mean_error`` (the best and mean over
samples of the mean distance to the truth over predicted steps), in keypoint units.

:func:`evaluate_diversity` returns a :class:`DiversityResult`; its ``to_json()`` is the JSON
object of ``keypoint-wm evaluate diversity`` (per run, see :mod:`keypoint_wm.evaluation.seeds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.api import WorldModel
from keypoint_wm.data.episodes import episode_metadata
from keypoint_wm.errors import UsageError
from keypoint_wm.evaluation.datasets import split_index, task_records
from keypoint_wm.evaluation.seeds import OverSeeds, as_seeds, plus_minus
from keypoint_wm.evaluation.windows import iter_windows
from keypoint_wm.viz import write_figure


@dataclass(frozen=True)
class DiversityConfig:
    """Settings of :func:`evaluate_diversity`."""

    sequences: tuple[int, ...] = (0, 1, 2)
    samples: int = 20
    max_objects: int = 6
    test_fraction: float = 0.2


def _windows(model: WorldModel, data_dir: str | Path, config: DiversityConfig) -> tuple[list, str]:
    window = model.config.model.num_steps
    _, test, how = split_index(data_dir, config.test_fraction, min_frames=window)
    wanted = sorted(set(config.sequences))
    if not wanted or wanted[0] < 0:
        raise UsageError(f"--sequences must be non-negative window numbers, got {config.sequences}")
    found, number = [], 0
    for batch in iter_windows(
        test, window, batch_size=8, action_size=model.config.model.action_size
    ):
        records = task_records(test, batch.task, window)
        for i in range(len(batch.frames)):
            if number in wanted:
                found.append((number, batch, i, records[batch.episode[i]]))
            number += 1
        if number > wanted[-1]:
            break
    if len(found) < len(wanted):
        raise UsageError(f"--sequences {wanted}: the test split holds only {number} windows")
    return found, how


@dataclass(frozen=True)
class ObjectSamples:
    """One object of a window: its true path and the matched keypoint's sampled paths.

    Positions are ``(x, y)`` in the keypoint frame ([-1, 1], y up); distances are in those
    units (>= 0).
    """

    name: str
    keypoint: int
    """The keypoint matched to the object (closest on average over the window)."""
    endpoint_spread: float
    """Mean distance of the N sampled end points from their mean (0: deterministic)."""
    best_error: float
    mean_error: float
    """Best and mean over samples of the mean distance to the truth over predicted steps."""
    true: list[list[float]]
    """``[T][2]``: the true path (the detected one without ground truth)."""
    samples: list[list[list[float]]]
    """``[N][T][2]``: the sampled paths."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "keypoint": self.keypoint,
            "endpoint_spread": self.endpoint_spread,
            "best_error": self.best_error,
            "mean_error": self.mean_error,
            "true": self.true,
            "samples": self.samples,
        }


@dataclass(frozen=True)
class WindowSamples:
    """One chosen test window."""

    index: int
    """The window's number in the test split (``--sequences``)."""
    task: str
    file: str
    """The episode file's name."""
    objects: list[ObjectSamples]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "task": self.task,
            "file": self.file,
            "objects": [o.to_json() for o in self.objects],
        }


@dataclass(frozen=True)
class DiversityResult:
    """What :func:`evaluate_diversity` drew; the three figures at the top level are means
    over every object of every chosen window (keypoint units)."""

    samples: int
    observed_steps: int
    predicted_steps: int
    split: str
    ground_truth: bool
    """Whether the data hold ``true_object_pos`` (else detected paths stand in)."""
    sequences: list[WindowSamples]

    def _mean(self, name: str) -> float:
        return float(np.mean([getattr(o, name) for s in self.sequences for o in s.objects]))

    @property
    def endpoint_spread(self) -> float:
        return self._mean("endpoint_spread")

    @property
    def best_error(self) -> float:
        return self._mean("best_error")

    @property
    def mean_error(self) -> float:
        return self._mean("mean_error")

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "observed_steps": self.observed_steps,
            "predicted_steps": self.predicted_steps,
            "split": self.split,
            "ground_truth": self.ground_truth,
            "endpoint_spread": self.endpoint_spread,
            "best_error": self.best_error,
            "mean_error": self.mean_error,
            "sequences": [s.to_json() for s in self.sequences],
        }


def evaluate_diversity(
    model: WorldModel, data_dir: str | Path, config: DiversityConfig | None = None
) -> DiversityResult:
    """Sample futures for the chosen test windows (see the module docstring)."""
    config = config or DiversityConfig()
    cfg = model.config.model
    observed, window = cfg.num_observed_steps, cfg.num_steps
    found, how = _windows(model, data_dir, config)
    sequences = []
    for number, batch, i, record in found:
        frames = batch.frames[i : i + 1]
        actions = batch.actions[i : i + 1] if cfg.action_size else None
        detected = model.observe(frames, actions).keypoints.numpy()[0]  # [T, K, 3]
        futures = model.imagine(frames[:, :observed], window - observed, config.samples, actions)
        sampled = futures.keypoints.numpy()[0]  # [N, T, K, 3]
        positions = batch.positions[i]  # [T, M, 2]
        metadata = episode_metadata(record.path)
        if positions.shape[1]:
            names = metadata.get("object_names") or metadata.get("joint_names") or []
            distance = np.linalg.norm(detected[:, None, :, :2] - positions[:, :, None], axis=-1)
            matched = distance.mean(axis=0).argmin(axis=1)  # [M]
            truth = positions
            chosen = list(range(min(config.max_objects, positions.shape[1])))
        else:
            names = []
            matched = np.argsort(-detected[..., 2].mean(axis=0))
            truth = detected[..., :2].transpose(1, 0, 2)[matched].transpose(1, 0, 2)
            chosen = list(range(min(config.max_objects, len(matched))))
        objects = []
        for j in chosen:
            k = int(matched[j])
            paths = sampled[:, :, k, :2]  # [N, T, 2]
            true_path = truth[:, j]  # [T, 2]
            ends = paths[:, -1]
            error = np.linalg.norm(paths[:, observed:] - true_path[None, observed:], axis=-1).mean(
                axis=1
            )
            objects.append(
                ObjectSamples(
                    name=names[j] if j < len(names) else f"object_{j}",
                    keypoint=k,
                    endpoint_spread=float(np.linalg.norm(ends - ends.mean(axis=0), axis=-1).mean()),
                    best_error=float(error.min()),
                    mean_error=float(error.mean()),
                    true=true_path.tolist(),
                    samples=paths.tolist(),
                )
            )
        sequences.append(WindowSamples(number, batch.task, record.path.name, objects))
    return DiversityResult(
        samples=config.samples,
        observed_steps=observed,
        predicted_steps=window - observed,
        split=how,
        ground_truth=bool(found[0][1].positions.shape[2]),
        sequences=sequences,
    )


def format_diversity(result: DiversityResult | OverSeeds[DiversityResult]) -> str:
    """The printed table: per window and object the spread and errors; over several runs
    (seeds) each is the mean ± the half-width of its 95% interval over them, and the matched
    keypoint (each run's own) is not shown."""
    summary = as_seeds(result)
    mean = summary.mean
    several = summary.count > 1
    width = 19 if several else 9
    over = f"; mean ± 95% CI over {summary.count} seeds" if several else ""
    keypoint = "" if several else f" {'keypoint':>8}"
    lines = [
        f"diversity: {mean['samples']} sampled futures per window, {mean['observed_steps']} "
        f"observed + {mean['predicted_steps']} predicted steps (keypoint units){over}",
        f"{'window':<8} {'object':<16}{keypoint} {'end spread':>{width + 2}} "
        f"{'best err':>{width}} {'mean err':>{width}}",
    ]
    keys = ("endpoint_spread", "best_error", "mean_error")
    for s, seq in enumerate(mean["sequences"]):
        for o, obj in enumerate(seq["objects"]):
            cells = [plus_minus(*summary.at("sequences", s, "objects", o, k)) for k in keys]
            shown = "" if several else f" {obj['keypoint']:>8}"
            lines.append(
                f"{seq['index']:<8} {obj['name']:<16}{shown} {cells[0]:>{width + 2}} "
                f"{cells[1]:>{width}} {cells[2]:>{width}}"
            )
    cells = [plus_minus(*summary.at(k)) for k in keys]
    blank = "" if several else f" {'':>8}"
    lines.append(
        f"{'mean':<8} {'':<16}{blank} {cells[0]:>{width + 2}} {cells[1]:>{width}} "
        f"{cells[2]:>{width}}"
    )
    return "\n".join(lines)


def plot_diversity(result: DiversityResult, path: str | Path) -> Path:
    """Figure S12 for one run: rows = windows, columns = objects; true path black, samples
    coloured (sampled paths of several runs do not average: draw each run on its own)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result.sequences
    cols = max(len(s.objects) for s in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(2.2 * cols, 2.2 * len(rows)), squeeze=False)
    observed = result.observed_steps
    colours = plt.get_cmap("viridis")
    for r, seq in enumerate(rows):
        for c in range(cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(seq.objects):
                ax.axis("off")
                continue
            obj = seq.objects[c]
            samples = np.array(obj.samples)
            for n, path_xy in enumerate(samples):
                colour = colours(n / max(1, len(samples) - 1))
                ax.plot(
                    path_xy[: observed + 1, 0],
                    path_xy[: observed + 1, 1],
                    color=colour,
                    alpha=0.3,
                    lw=0.8,
                )
                ax.plot(path_xy[observed:, 0], path_xy[observed:, 1], color=colour, lw=1.0)
                ax.plot(*path_xy[-1], "o", color=colour, ms=2.5)
            true = np.array(obj.true)
            ax.plot(true[:, 0], true[:, 1], "k-", lw=1.6)
            ax.plot(*true[-1], "ko", ms=3.5)
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.set_aspect("equal")
            if r == 0:
                ax.set_title(obj.name, fontsize=8)
            if c == 0:
                ax.set_ylabel(f"window {seq.index}", fontsize=8)
    fig.tight_layout()
    return write_figure(fig, path, dpi=110)
