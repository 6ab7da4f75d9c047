"""Object tracking from keypoints: the paper's Figure 4 measure.

A linear regression (with intercept, and a tiny ridge term for numerical stability) from
all K x 3 keypoint values of a frame to the
ground-truth object positions is fitted on the training split and scored on held-out
sequences. Observed steps use the detector's keypoints; predicted steps the keypoints the
dynamics decode, best of N samples (chosen per object for Basketball, as the paper does,
otherwise over all objects), the sample being chosen by its mean error over the predicted
steps. Baselines: the training-mean position of each object, and the last observed
keypoints held constant. Errors are mean Euclidean distances in the keypoint frame.

:func:`evaluate_tracking` returns a :class:`TrackingResult`; its ``to_json()`` is the JSON
object of ``keypoint-wm evaluate tracking`` (per run, see :mod:`keypoint_wm.evaluation.seeds`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.data.sequences import EpisodeIndex
from keypoint_wm.errors import DataError
from keypoint_wm.evaluation.seeds import OverSeeds, as_seeds, plus_minus
from keypoint_wm.evaluation.windows import iter_windows
from keypoint_wm.viz import write_figure


def fit_linear(features: np.ndarray, targets: np.ndarray, ridge: float = 1e-4) -> np.ndarray:
    """Linear regression with intercept: ``[n, F]`` -> ``[n, D]``; returns ``[F + 1, D]``.

    A small ridge term (``ridge * n`` on the centred normal equations, intercept not
    penalised) keeps the fit finite when keypoints are nearly constant (dark or static
    keypoints make the design rank-deficient; plain least squares then returns huge weights
    that explode on predicted keypoints). ``ridge=0`` is ordinary least squares.
    """
    x = features.astype(np.float64)
    y = targets.astype(np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + ridge * len(x) * np.eye(x.shape[1])
    weights = np.linalg.lstsq(gram, xc.T @ yc, rcond=None)[0]
    intercept = y_mean - x_mean @ weights
    return np.concatenate([weights, intercept[None]], axis=0)


def apply_linear(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """``[..., F]`` -> ``[..., D]``."""
    return features @ weights[:-1] + weights[-1]


def r2_per_object(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``[n, N, 2]`` -> ``[N]``: 1 - SSE/SST over each object's x and y."""
    sse = ((pred - true) ** 2).sum(axis=(0, 2))
    sst = ((true - true.mean(axis=0, keepdims=True)) ** 2).sum(axis=(0, 2))
    return 1.0 - sse / np.maximum(sst, 1e-12)


_NO_POSITIONS = (
    "has no true object positions (true_object_pos) to track; "
    "`keypoint-wm evaluate state-probe` scores a model on the stored state instead"
)


def no_positions(*indexes: EpisodeIndex) -> None:
    """Raise one DataError line when some task of ``indexes`` has no ``true_object_pos``
    (data from ``collect --env``), pointing to ``evaluate state-probe``."""
    missing = sorted({r.task for index in indexes for r in index.records if not r.num_objects})
    if not missing:
        return
    root = indexes[0].root
    if len(missing) == len({r.task for index in indexes for r in index.records}):
        raise DataError(f"{root}: the dataset {_NO_POSITIONS}")
    raise DataError(f"{root}: task(s) {', '.join(missing)} {_NO_POSITIONS}")


@dataclass
class _Split:
    """Keypoint features and positions collected over a split of one task."""

    detected: list = field(default_factory=list)  # [B, T, K*3]
    positions: list = field(default_factory=list)  # [B, T, N, 2]
    futures: list = field(default_factory=list)  # [B, S, F, K*3]

    def cat(self, name: str) -> np.ndarray:
        return np.concatenate(getattr(self, name))


def _collect(
    model: WorldModel,
    index: EpisodeIndex,
    samples: int,
    predict: bool,
    max_windows: int,
    desc: str,
    progress: bool = True,
) -> dict[str, _Split]:
    cfg = model.config.model
    observed, window = cfg.num_observed_steps, cfg.num_steps
    splits: dict[str, _Split] = {}
    batches = iter_windows(
        index, window, batch_size=16, max_windows=max_windows, action_size=cfg.action_size
    )
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=not progress):
        if batch.positions.shape[2] == 0:
            raise DataError(f"{index.root}: task {batch.task} {_NO_POSITIONS}")
        split = splits.setdefault(batch.task, _Split())
        actions = batch.actions if cfg.action_size else None
        detected = model.observe(batch.frames, actions).keypoints.numpy()
        split.detected.append(detected.reshape(*detected.shape[:2], -1))
        split.positions.append(batch.positions)
        if predict:
            futures = model.imagine(
                batch.frames[:, :observed], window - observed, samples, actions
            ).keypoints.numpy()[:, :, observed:]
            split.futures.append(futures.reshape(*futures.shape[:3], -1))
    return splits


@dataclass(frozen=True)
class PerStepErrors:
    """Tracking error per time step (mean Euclidean distance in keypoint units, >= 0), over
    the observed steps and then the predicted ones."""

    model: list[float]
    """Observed steps: the detected keypoints' regression; predicted: the best sample's."""
    last_observed_baseline: list[float | None]
    """The last observed frame's regression held constant (None for the observed steps)."""
    mean_baseline: list[float]
    """Each object's training-mean position."""

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "last_observed_baseline": self.last_observed_baseline,
            "mean_baseline": self.mean_baseline,
        }


@dataclass(frozen=True)
class TaskTracking:
    """The tracking figures of one task (errors in keypoint units, x and y in [-1, 1])."""

    r2_observed: list[float]
    """Held-out R^2 per object on the observed steps (<= 1; 0 = the mean position)."""
    error_observed: float
    error_predicted: float
    """Best of N sampled futures (per object or over all objects, see ``best_sample``)."""
    error_predicted_last_observed_baseline: float
    error_mean_baseline: float
    """Over the predicted steps."""
    per_step: PerStepErrors
    train_windows: int
    test_windows: int
    objects: int

    def to_json(self) -> dict[str, Any]:
        return {
            "r2_observed": self.r2_observed,
            "error_observed": self.error_observed,
            "error_predicted": self.error_predicted,
            "error_predicted_last_observed_baseline": self.error_predicted_last_observed_baseline,
            "error_mean_baseline": self.error_mean_baseline,
            "per_step": self.per_step.to_json(),
            "train_windows": self.train_windows,
            "test_windows": self.test_windows,
            "objects": self.objects,
        }


HEADLINE = (
    "r2_observed",
    "error_observed",
    "error_predicted",
    "error_predicted_last_observed_baseline",
    "error_mean_baseline",
)
"""The figures :meth:`TrackingResult.to_json` also puts at the top level."""


@dataclass(frozen=True)
class TrackingResult:
    """What :func:`evaluate_tracking` measured, per task.

    ``to_json()``: the settings, ``"tasks"`` (``{task: figures}``) and the :data:`HEADLINE`
    figures at the top level: one task's own, or ``{task: figure}`` for several tasks.
    """

    samples: int
    best_sample: str
    """``"per object"`` (Basketball, as the paper) or ``"all objects"``."""
    test_fraction: float
    observed_steps: int
    predicted_steps: int
    tasks: dict[str, TaskTracking]

    def to_json(self) -> dict[str, Any]:
        tasks = {task: figures.to_json() for task, figures in self.tasks.items()}
        result: dict[str, Any] = {
            "samples": self.samples,
            "best_sample": self.best_sample,
            "test_fraction": self.test_fraction,
            "observed_steps": self.observed_steps,
            "predicted_steps": self.predicted_steps,
            "tasks": tasks,
        }
        for key in HEADLINE:
            result[key] = (
                next(iter(tasks.values()))[key]
                if len(tasks) == 1
                else {t: v[key] for t, v in tasks.items()}
            )
        return result


def evaluate_tracking(
    model: WorldModel,
    data_dir: str | Path,
    test_fraction: float = 0.2,
    samples: int = 50,
    best_per_object: bool | None = None,
    max_windows: int = 1000,
    progress: bool = True,
) -> TrackingResult:
    """Run the tracking evaluation (see the module docstring).

    ``progress`` shows a progress bar per split."""
    train_index = EpisodeIndex(data_dir, "train", test_fraction)
    test_index = EpisodeIndex(data_dir, "test", test_fraction)
    no_positions(train_index, test_index)
    if best_per_object is None:
        best_per_object = _is_basketball(test_index)
    train = _collect(
        model, train_index, samples, False, max_windows, "tracking: train split", progress
    )
    test = _collect(model, test_index, samples, True, max_windows, "tracking: test split", progress)
    observed = model.config.model.num_observed_steps
    tasks = {}
    for task in sorted(test):
        if task not in train:
            continue
        tasks[task] = _task_figures(train[task], test[task], observed, best_per_object)
    if not tasks:
        raise DataError(
            f"{data_dir}: no task has both train and test sequences; lower --test-fraction or add data"
        )
    return TrackingResult(
        samples=samples,
        best_sample="per object" if best_per_object else "all objects",
        test_fraction=test_fraction,
        observed_steps=observed,
        predicted_steps=model.config.model.num_predicted_steps,
        tasks=tasks,
    )


def _task_figures(tr: _Split, te: _Split, observed: int, best_per_object: bool) -> TaskTracking:
    x_train, y_train = tr.cat("detected"), tr.cat("positions")
    n_obj = y_train.shape[2]
    weights = fit_linear(x_train.reshape(-1, x_train.shape[-1]), y_train.reshape(-1, n_obj * 2))
    mean_position = y_train.reshape(-1, n_obj, 2).mean(axis=0)

    x_test, y_test = te.cat("detected"), te.cat("positions")  # [B, T, F], [B, T, N, 2]
    pred_obs = apply_linear(weights, x_test[:, :observed]).reshape(
        *x_test[:, :observed].shape[:2], n_obj, 2
    )
    true_obs, true_fut = y_test[:, :observed], y_test[:, observed:]
    err_obs = np.linalg.norm(pred_obs - true_obs, axis=-1)  # [B, T0, N]

    futures = te.cat("futures")  # [B, S, F, K*3]
    pred_fut = apply_linear(weights, futures).reshape(*futures.shape[:3], n_obj, 2)
    dist = np.linalg.norm(pred_fut - true_fut[:, None], axis=-1)  # [B, S, F, N]
    if best_per_object:
        best = dist.mean(axis=2).argmin(axis=1)  # [B, N]
        err_fut = np.take_along_axis(dist, best[:, None, None, :], axis=1)[:, 0]
    else:
        best = dist.mean(axis=(2, 3)).argmin(axis=1)  # [B]
        err_fut = dist[np.arange(len(best)), best]  # [B, F, N]
    last = apply_linear(weights, x_test[:, observed - 1]).reshape(-1, 1, n_obj, 2)
    err_last = np.linalg.norm(last - true_fut, axis=-1)
    err_mean = np.linalg.norm(mean_position - y_test, axis=-1)  # [B, T, N]

    r2 = r2_per_object(pred_obs.reshape(-1, n_obj, 2), true_obs.reshape(-1, n_obj, 2))
    return TaskTracking(
        r2_observed=r2.tolist(),
        error_observed=float(err_obs.mean()),
        error_predicted=float(err_fut.mean()),
        error_predicted_last_observed_baseline=float(err_last.mean()),
        error_mean_baseline=float(err_mean[:, observed:].mean()),
        per_step=PerStepErrors(
            model=np.concatenate([err_obs.mean(axis=(0, 2)), err_fut.mean(axis=(0, 2))]).tolist(),
            last_observed_baseline=[None] * observed + err_last.mean(axis=(0, 2)).tolist(),
            mean_baseline=err_mean.mean(axis=(0, 2)).tolist(),
        ),
        train_windows=len(x_train),
        test_windows=len(x_test),
        objects=n_obj,
    )


def _is_basketball(index: EpisodeIndex) -> bool:
    from keypoint_wm.data.episodes import load_episode

    metadata = load_episode(index.records[0].path, keys=("metadata",)).metadata
    return metadata.get("dataset") == "basketball"


def format_tracking(result: TrackingResult | OverSeeds[TrackingResult]) -> str:
    """The printed table: per task, R^2 per object and the mean errors; over several runs
    (seeds) each figure is the mean ± the half-width of its 95% interval over them."""
    summary = as_seeds(result)
    several = summary.count > 1
    widths = (17, 17, 17, 17) if several else (8, 9, 9, 9)
    over = f" over {summary.count} seeds (mean ± 95% CI)" if several else ""
    mean = summary.mean
    names = ("err obs", "err pred", "last obs", "mean pos")
    keys = ("error_observed", "error_predicted", "error_predicted_last_observed_baseline",
            "error_mean_baseline")  # fmt: skip
    rows = []
    for task in mean["tasks"]:
        r2_mean, r2_half = summary.at("tasks", task, "r2_observed")
        r2 = " ".join(
            plus_minus(m, None if r2_half is None else r2_half[i], ".2f")
            for i, m in enumerate(r2_mean)
        )
        cells = [plus_minus(*summary.at("tasks", task, key), ".4f") for key in keys]
        rows.append((task, r2, cells))
    r2_width = max([40, *(len(r2) + 1 for _, r2, _ in rows)])
    lines = [
        f"tracking: best of {mean['samples']} samples ({mean['best_sample']}), "
        f"{mean['observed_steps']} observed + {mean['predicted_steps']} predicted steps; "
        f"errors are mean Euclidean distances in the keypoint frame ([-1, 1]){over}",
        f"{'task':<20} {'R2 per object (observed)':<{r2_width}} "
        + " ".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True)),
    ]
    for task, r2, cells in rows:
        lines.append(
            f"{task:<20} {r2:<{r2_width}} "
            + " ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        )
    return "\n".join(lines)


def plot_tracking(result: TrackingResult | OverSeeds[TrackingResult], path: str | Path) -> Path:
    """Error per time step for every task: model vs baselines (PNG); over several runs the
    mean curves, the model's with its 95% interval over runs as a band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = as_seeds(result)
    mean = summary.mean
    tasks = mean["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    observed = mean["observed_steps"]
    for ax, task in zip(axes[0], tasks, strict=True):
        per_step, half = summary.at("tasks", task, "per_step")
        model = np.array(per_step["model"], dtype=float)
        steps = np.arange(1, len(model) + 1)
        ax.axvspan(0.5, observed + 0.5, color="#2a2", alpha=0.08, label="observed")
        label = f"model (best of {mean['samples']})"
        if summary.count > 1:
            label += f", {summary.count} seeds"
        (line,) = ax.plot(steps, model, "o-", label=label)
        if half is not None:
            band = np.array(half["model"], dtype=float)
            ax.fill_between(steps, model - band, model + band, alpha=0.2, color=line.get_color())
        last = np.array(
            [np.nan if v is None else v for v in per_step["last_observed_baseline"]], dtype=float
        )
        ax.plot(steps, last, "--", label="last observed kept")
        ax.plot(steps, per_step["mean_baseline"], ":", label="mean position")
        ax.set_title(task)
        ax.set_xlabel("time step")
        ax.set_ylabel("tracking error (keypoint units)")
        ax.set_ylim(bottom=0)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return write_figure(fig, path, dpi=110)
