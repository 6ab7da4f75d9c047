"""``keypoint-wm rewards evaluate``: normalised reward-prediction error, runs side by side.

For each world-model run and task: the run's heads (``RUN/rewards/<task>``, trained by
``keypoint-wm rewards train``) predict the rewards of the held-out 20 % of the test split's
windows (the same windows and split as in training: window, stride, seed, fraction and split
are read from each head). The error is the MSE divided by that of a null model predicting the
mean training reward (paper Figure 8), per time step with a 95 % confidence interval, and
overall. Output: a table (tasks x runs), a JSON object and a plot like Figure 8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.model.device import resolve_device
from keypoint_wm.rewards.head import find_reward_head, load_reward_head
from keypoint_wm.rewards.sequences import (
    RewardSequences,
    collect_reward_sequences,
    split_sequences,
)
from keypoint_wm.rewards.train import (
    RewardTrainConfig,
    normalized_mse,
    predict,
    train_reward_heads,
)

__all__ = ["evaluate_reward_prediction", "format_reward_table", "plot_reward_prediction"]


def _run_label(run: Path, config: Any) -> str:
    names = {"keypoints": "Struct", "cnn": "CNN"}
    model = config.model
    kind = f"{names.get(model.representation, model.representation)}-{model.dynamics.upper()}"
    return f"{run.name} ({kind})"


def evaluate_reward_prediction(
    runs: list[str | Path],
    data_dir: str | Path,
    labels: list[str] | None = None,
    heads: list[str | Path] | None = None,
    tasks: list[str] | None = None,
    train_missing: bool = False,
    train_config: RewardTrainConfig | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    precision: str = "auto",
) -> dict[str, Any]:
    """Score the reward heads of one or more runs on the same data.

    Args:
        runs: run directories (e.g. a Struct-VRNN and a CNN-VRNN run).
        data_dir: the dataset the heads were trained on.
        labels: names for the runs (default: directory name and model kind).
        heads: head directories per run (default ``RUN/rewards``).
        tasks: only these tasks (default: every task with a head).
        train_missing: train heads that are missing (with ``train_config``) instead of
            raising.
        device: where the runs' models run (None: the one rule of
            :func:`keypoint_wm.model.device.resolve_device`).
        precision: the image networks' precision (``"auto"``: as in training).

    Raises:
        DataError: a run has no heads (the message says how to train them).
        UsageError: ``labels`` or ``heads`` do not match ``runs``.
    """
    import keypoint_wm

    if not runs:
        raise UsageError("--run: give at least one run directory")
    if labels and len(labels) != len(runs):
        raise UsageError(f"--label: give one label per --run ({len(runs)}), got {len(labels)}")
    if heads and len(heads) != len(runs):
        raise UsageError(f"--heads: give one directory per --run ({len(runs)}), got {len(heads)}")
    results = []
    all_tasks: list[str] = []
    for i, run in enumerate(runs):
        run = Path(run)
        model = keypoint_wm.load(run, device=resolve_device(device), precision=precision)
        # Windows by (window, stride, max_windows, seed): heads trained here are scored on
        # the windows they were trained with, collected once.
        collected: dict[tuple, dict[str, RewardSequences]] = {}
        head_root = Path(heads[i]) if heads else run / "rewards"
        wanted = _tasks_with_heads(head_root, tasks)
        if not wanted or (tasks and set(wanted) != set(tasks)):
            if not train_missing:
                find_reward_head(head_root, tasks[0] if tasks else None)  # raises with a hint
                raise DataError(
                    f"{head_root}: heads missing for some of --tasks {tasks}; train them with "
                    f"`keypoint-wm rewards train --run {run} --data {data_dir}` or pass "
                    "--train-missing"
                )
            config = train_config or RewardTrainConfig()
            key = (config.window, config.stride, config.max_windows, config.seed)
            collected[key] = _collect(model, data_dir, key, tasks, progress)
            train_reward_heads(model, data_dir, head_root, config, tasks, progress, collected[key])
            wanted = _tasks_with_heads(head_root, tasks)
        label = labels[i] if labels else _run_label(run, model.config)
        entry: dict[str, Any] = {
            "label": label,
            "run": str(run),
            "checkpoint_step": model.step,
            "representation": model.config.model.representation,
            "dynamics": model.config.model.dynamics,
            "tasks": {},
        }
        loaded = {task: load_reward_head(head_root, task, model.device) for task in wanted}
        # Heads trained together share the window settings: collect once per setting.
        groups: dict[tuple, list[str]] = {}
        for task, head in loaded.items():
            meta = head.config.metadata
            setting = tuple(meta.get(k) for k in ("window", "stride", "max_windows", "seed"))
            groups.setdefault(setting, []).append(task)
        defaults = RewardTrainConfig()
        for (window, stride, max_windows, seed), group in groups.items():
            key = (
                window or defaults.window,
                stride or defaults.stride,
                max_windows or defaults.max_windows,
                defaults.seed if seed is None else seed,
            )
            seed = key[3]
            sequences = collected.get(key, {})
            if not set(group) <= set(sequences):
                sequences = _collect(model, data_dir, key, group, progress)
            for task in group:
                head = loaded[task]
                fraction = head.config.metadata.get("train_fraction", defaults.train_fraction)
                split = head.config.metadata.get("split", "windows")
                _, test = split_sequences(sequences[task], fraction, seed, split)
                overall, per_step, ci95 = normalized_mse(
                    predict(head, test.hidden), test.reward, head.config.reward_mean
                )
                constant = bool(np.isnan(overall))
                entry["tasks"][task] = {
                    "normalized_mse": None if constant else overall,
                    "per_step": None if constant else per_step.tolist(),
                    "ci95": None if constant else ci95.tolist(),
                    "constant_rewards": constant,
                    "test_windows": len(test),
                    "split": split,
                    "mean_train_reward": head.config.reward_mean,
                }
        scores = [
            t["normalized_mse"] for t in entry["tasks"].values() if t["normalized_mse"] is not None
        ]
        entry["mean_normalized_mse"] = float(np.mean(scores)) if scores else None
        results.append(entry)
        all_tasks += [t for t in entry["tasks"] if t not in all_tasks]
    return {
        "data": str(data_dir),
        "metric": "MSE / MSE of a null model predicting the mean training reward (lower is "
        "better, 1 = no better than the null model)",
        "tasks": sorted(all_tasks),
        "note": "normalized_mse is null for a task whose test rewards all equal the "
        "training mean (constant_rewards): the null model is exact there",
        "runs": results,
    }


def _collect(
    model: Any, data_dir: str | Path, key: tuple, tasks: list[str] | None, progress: bool
) -> dict[str, RewardSequences]:
    window, stride, max_windows, seed = key
    return collect_reward_sequences(
        model,
        data_dir,
        window=window,
        stride=stride,
        max_windows=max_windows,
        tasks=tasks,
        seed=seed,
        progress=progress,
    )


def _tasks_with_heads(root: Path, tasks: list[str] | None) -> list[str]:
    if not root.is_dir():
        return []
    found = sorted(p.name for p in root.iterdir() if (p / "head.json").exists())
    return [t for t in found if not tasks or t in tasks]


def format_reward_table(result: dict[str, Any]) -> str:
    """Tasks x runs table of the overall normalised MSE."""
    labels = [r["label"] for r in result["runs"]]
    width = max([12, *(len(label) + 2 for label in labels)])
    lines = [
        "normalized reward MSE (MSE / null model's MSE; < 1 beats predicting the mean)",
        f"{'task':<20}" + "".join(f"{label:>{width}}" for label in labels),
    ]
    for task in result["tasks"]:
        row = f"{task:<20}"
        for run in result["runs"]:
            value = run["tasks"].get(task, {}).get("normalized_mse")
            row += f"{'-' if value is None else f'{value:.3f}':>{width}}"
        lines.append(row)
    row = f"{'mean':<20}"
    for run in result["runs"]:
        value = run["mean_normalized_mse"]
        row += f"{'-' if value is None else f'{value:.3f}':>{width}}"
    lines.append(row)
    return "\n".join(lines)


def plot_reward_prediction(result: dict[str, Any], path: str | Path) -> Path:
    """Figure 8 style: one panel per task, normalised MSE over time, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = result["tasks"]
    columns = min(3, max(1, len(tasks)))
    rows = (len(tasks) + columns - 1) // columns
    fig, axes = plt.subplots(
        rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False, sharex=True
    )
    for ax, task in zip(axes.flat, tasks, strict=False):
        for run in result["runs"]:
            scores = run["tasks"].get(task)
            if scores is None or scores["per_step"] is None:
                continue
            mean, ci = np.array(scores["per_step"]), np.array(scores["ci95"])
            steps = np.arange(len(mean))
            (line,) = ax.plot(steps, mean, label=run["label"])
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
