"""What ``keypoint-wm rewards evaluate`` reports: the scores per task, run and variant, their
JSON, the table (tasks x variants) and the plot like the paper's Figure 8."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.evaluation.seeds import OverSeeds, plus_minus, variants_json
from keypoint_wm.viz import write_figure

__all__ = [
    "METRIC",
    "NOTE",
    "RewardEvaluation",
    "RunRewardScores",
    "TaskRewardScore",
    "format_reward_table",
    "plot_reward_prediction",
]

METRIC = (
    "MSE / MSE of a null model predicting the mean training reward (lower is better, 1 = no "
    "better than the null model)"
)
NOTE = (
    "normalized_mse is null for a task whose test rewards all equal the training mean "
    "(constant_rewards): the null model is exact there"
)


@dataclass(frozen=True)
class TaskRewardScore:
    """One head's error on its held-out windows (normalised MSE: >= 0, 1 = the null model).

    ``normalized_mse``, ``per_step`` (one value per frame of a window) and ``ci95`` (the
    half-width of each step's 95% interval over windows) are None for constant rewards.
    """

    normalized_mse: float | None
    per_step: list[float] | None
    ci95: list[float] | None
    constant_rewards: bool
    test_windows: int
    split: str
    mean_train_reward: float
    inputs: str = "hidden"
    """What the head reads (:data:`~keypoint_wm.reward_inputs.INPUTS`; old heads:
    ``"hidden"``)."""
    validation_normalized_mse: float | None = None
    """The head's score on its own validation windows (from its training episodes): the
    figure that settings are chosen on; None for heads trained without validation."""

    def to_json(self) -> dict[str, Any]:
        return {
            "normalized_mse": self.normalized_mse,
            "per_step": self.per_step,
            "ci95": self.ci95,
            "constant_rewards": self.constant_rewards,
            "test_windows": self.test_windows,
            "split": self.split,
            "mean_train_reward": self.mean_train_reward,
            "inputs": self.inputs,
            "validation_normalized_mse": self.validation_normalized_mse,
        }


@dataclass(frozen=True)
class RunRewardScores:
    """The scores of one run's heads, per task."""

    label: str
    """The variant's name (``--label``, else the run directory and model kind)."""
    run: str
    checkpoint_step: int
    representation: str
    dynamics: str
    tasks: dict[str, TaskRewardScore]

    @property
    def mean_normalized_mse(self) -> float | None:
        """The mean over tasks with a score (None when none has one)."""
        scores = [t.normalized_mse for t in self.tasks.values() if t.normalized_mse is not None]
        return float(np.mean(scores)) if scores else None

    @property
    def mean_validation_normalized_mse(self) -> float | None:
        """The heads' validation scores, mean over tasks with one (None when none has one):
        what to compare when choosing a setting, e.g. the head's ``inputs``."""
        scores = [
            t.validation_normalized_mse
            for t in self.tasks.values()
            if t.validation_normalized_mse is not None
        ]
        return float(np.mean(scores)) if scores else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "run": self.run,
            "checkpoint_step": self.checkpoint_step,
            "representation": self.representation,
            "dynamics": self.dynamics,
            "tasks": {task: score.to_json() for task, score in self.tasks.items()},
            "mean_normalized_mse": self.mean_normalized_mse,
            "mean_validation_normalized_mse": self.mean_validation_normalized_mse,
        }


@dataclass(frozen=True)
class RewardEvaluation:
    """What :func:`evaluate_reward_prediction` measured: one entry per variant, each over
    its runs (seeds)."""

    data: str
    variants: list[OverSeeds[RunRewardScores]]

    @property
    def tasks(self) -> list[str]:
        """Every task some run has a head for, sorted."""
        return sorted({t for v in self.variants for r in v.results for t in r.tasks})

    @property
    def labels(self) -> list[str]:
        """The variants' names (``--label``, else run directory and model kind), in order."""
        return [v.results[0].label for v in self.variants]

    def to_json(self) -> dict[str, Any]:
        """``"labels"`` and ``"variants"``: ``{label: its mean entry, "seed_ci95" and
        "per_run"}`` (the layout of every ``evaluate`` command over seeds, as in
        ``evaluate compare``). Kept beside them for the scripts that read them: ``"runs"``
        (one entry per variant, its mean over seeds), ``"seed_ci95"`` (``{"runs":
        [half-widths per variant, or None for one run]}``, null when every variant is one
        run) and ``"per_run"`` (every run's own entry, all variants in one list)."""
        several = any(v.count > 1 for v in self.variants)
        return {
            "data": self.data,
            "metric": METRIC,
            "tasks": self.tasks,
            "note": NOTE,
            "runs": [v.mean for v in self.variants],
            "seed_ci95": {"runs": [v.ci for v in self.variants]} if several else None,
            "per_run": [entry for v in self.variants for entry in v.per_run],
            "labels": self.labels,
            "variants": variants_json(zip(self.labels, self.variants, strict=True)),
        }


def format_reward_table(result: RewardEvaluation) -> str:
    """Tasks x variants table of the overall normalised MSE (mean ± the half-width of its
    95% interval over seeds where a variant has several runs)."""
    labels = result.labels
    several = any(v.count > 1 for v in result.variants)
    width = max([12, *(len(label) + 2 for label in labels), *([17] if several else [])])
    title = "normalized reward MSE (MSE / null model's MSE; < 1 beats predicting the mean)"
    if several:
        counts = ", ".join(str(v.count) for v in result.variants)
        title += f"; mean ± 95% CI over seeds ({counts} runs)"
    lines = [title, f"{'task':<20}" + "".join(f"{label:>{width}}" for label in labels)]
    for task in result.tasks:
        row = f"{task:<20}"
        for variant in result.variants:
            if task in variant.mean["tasks"]:
                text = plus_minus(*variant.at("tasks", task, "normalized_mse"), ".3f")
            else:
                text = "-"
            row += f"{text:>{width}}"
        lines.append(row)
    row = f"{'mean':<20}"
    for variant in result.variants:
        row += f"{plus_minus(*variant.at('mean_normalized_mse'), '.3f'):>{width}}"
    lines.append(row)
    if any(v.mean["mean_validation_normalized_mse"] is not None for v in result.variants):
        # The heads' own validation windows: what settings are chosen on.
        row = f"{'mean (validation)':<20}"
        for variant in result.variants:
            text = plus_minus(*variant.at("mean_validation_normalized_mse"), ".3f")
            row += f"{text:>{width}}"
        lines.append(row)
    return "\n".join(lines)


def plot_reward_prediction(result: RewardEvaluation, path: str | Path) -> Path:
    """Figure 8 style: one panel per task, normalised MSE over time, one line per variant
    (its mean over seeds; band: the 95% interval over seeds, or over windows for one run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = result.tasks
    columns = min(3, max(1, len(tasks)))
    rows = (len(tasks) + columns - 1) // columns
    fig, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False, sharex=True
    )
    for ax, task in zip(axes.flat, tasks, strict=False):
        for variant in result.variants:
            if task not in variant.mean["tasks"]:
                continue
            scores, seed_half = variant.at("tasks", task)
            if scores["per_step"] is None:
                continue
            band = scores["ci95"] if seed_half is None else seed_half["per_step"]
            mean = np.array(scores["per_step"], dtype=float)
            ci = np.array([np.nan if v is None else v for v in band], dtype=float)
            steps = np.arange(len(mean))
            (line,) = ax.plot(steps, mean, label=variant.mean["label"])
            ax.fill_between(steps, mean - ci, mean + ci, alpha=0.25, color=line.get_color())
        ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.set_title(task)
        ax.set_xlabel("time step")
        ax.set_ylabel("normalized MSE")
    for ax in list(axes.flat)[len(tasks) :]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=len(names))
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return write_figure(fig, path, dpi=100)
