"""A cheap in-training tracking probe: validation R^2 of a linear map from keypoints to objects.

The trainer runs it every ``train.probe_every`` steps when the data has ground-truth
positions, logs ``probe/r2_min`` and ``probe/r2_<object>`` to TensorBoard and appends a row
(step, wall-clock seconds, R^2 per object) to ``RUN/probe.csv``, so that how fast each object
gets its keypoint can be read as a curve over training time.

The linear map is fitted on frames of the training split and scored on frames of the
validation split (``train.validation_fraction``), as ``evaluate tracking`` fits on the
non-test files and scores the test split: the probe's figure estimates the reported one
without ever reading a test file, so that choices made on it (knobs, step counts) are not
made on test data.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keypoint_wm.conventions import frames_to_tensor
from keypoint_wm.data.sequences import EpisodeIndex, NoEpisodesError
from keypoint_wm.evaluation.tracking import apply_linear, fit_linear, r2_per_object
from keypoint_wm.evaluation.windows import iter_windows
from keypoint_wm.model.struct_vrnn import StructVRNN
from keypoint_wm.viz import write_figure


@dataclass
class ProbeData:
    """Fixed frames and positions for the probe: uint8 [n, H, W, 3] and float32 [n, N, 2];
    the map is fitted on the ``train_*`` arrays and scored on the ``validation_*`` ones."""

    train_frames: np.ndarray
    train_positions: np.ndarray
    validation_frames: np.ndarray
    validation_positions: np.ndarray

    @classmethod
    def from_dataset(
        cls,
        data_dir: str | Path,
        test_fraction: float,
        validation_fraction: float = 0.1,
        frames: int = 1024,
        window: int = 8,
    ) -> ProbeData | None:
        """Up to ``frames`` frames of the training and of the validation split (first task
        only; the splits of :class:`~keypoint_wm.data.sequences.EpisodeIndex` with these
        fractions); None without ground truth.

        Also None, with a warning saying what to do, when the validation split is empty (a
        small dataset, or ``train.validation_fraction=0``): training goes on
        without the probe. The test split is never read.
        """
        if validation_fraction == 0:
            warnings.warn(
                "tracking probe off (train.probe_every): the run holds out no validation "
                "files (train.validation_fraction=0), and the probe never scores test files",
                stacklevel=2,
            )
            return None
        parts = []
        for split in ("train", "validation"):
            try:
                index = EpisodeIndex(
                    data_dir, split, test_fraction, validation_fraction=validation_fraction
                )
            except NoEpisodesError as error:
                warnings.warn(
                    f"tracking probe off (train.probe_every): {error}; add episodes or raise "
                    "train.validation_fraction to hold some out for validation, or --set "
                    "train.probe_every=0",
                    stacklevel=2,
                )
                return None
            batches = iter_windows(
                index, window, batch_size=64, max_windows=max(1, frames // window)
            )
            task = index.tasks[0]
            chosen = [b for b in batches if b.task == task]
            if not chosen or chosen[0].positions.shape[2] == 0:
                return None
            images = np.concatenate([b.frames for b in chosen]).reshape(
                -1, *chosen[0].frames.shape[2:]
            )
            positions = np.concatenate([b.positions for b in chosen]).reshape(
                -1, *chosen[0].positions.shape[2:]
            )
            parts += [images, positions]
        return cls(*parts)


@torch.no_grad()
def _keypoints(model: StructVRNN, frames: np.ndarray, device: torch.device) -> np.ndarray:
    out = []
    for start in range(0, len(frames), 128):
        images = frames_to_tensor(frames[start : start + 128, None], device)
        keypoints, _ = model.detect(images)
        out.append(keypoints[:, 0].flatten(1).float().cpu().numpy())
    return np.concatenate(out)


def run_probe(model: StructVRNN, data: ProbeData) -> np.ndarray:
    """R^2 per object on the probe's validation frames, ``[N]``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        x_train = _keypoints(model, data.train_frames, device)
        x_validation = _keypoints(model, data.validation_frames, device)
    finally:
        model.train(was_training)
    n_obj = data.train_positions.shape[1]
    weights = fit_linear(x_train, data.train_positions.reshape(len(x_train), -1))
    predicted = apply_linear(weights, x_validation).reshape(-1, n_obj, 2)
    return r2_per_object(predicted, data.validation_positions)


class ProbeLog:
    """Appends probe rows to ``RUN/probe.csv`` (step, seconds, r2_min, r2 per object) and
    redraws ``RUN/probe.png``: R^2 per object against training minutes."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / "probe.csv"
        self.plot_path = Path(run_dir) / "probe.png"

    def append(self, step: int, seconds: float, r2: np.ndarray) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["step", "seconds", "r2_min", *[f"r2_{i}" for i in range(len(r2))]])
            writer.writerow([step, f"{seconds:.1f}", f"{r2.min():.4f}", *[f"{v:.4f}" for v in r2]])
        plot_probe_curve(self.path, self.plot_path)


def read_probe_curve(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(steps [N], seconds [N], r2 [N, objects])`` from a ``probe.csv``; a step logged twice
    (a run resumed from an earlier checkpoint) keeps its last row."""
    with open(path, newline="") as f:
        rows = [row for row in csv.reader(f)][1:]
    latest = {int(row[0]): row for row in rows if row}
    ordered = [latest[step] for step in sorted(latest)]
    steps = np.array([int(r[0]) for r in ordered])
    seconds = np.array([float(r[1]) for r in ordered])
    r2 = np.array([[float(v) for v in r[3:]] for r in ordered]).reshape(len(ordered), -1)
    return steps, seconds, r2


def plot_probe_curve(csv_path: Path, png_path: Path) -> None:
    """Draw R^2 per object against training minutes (clipped below at -0.1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, seconds, r2 = read_probe_curve(csv_path)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for i in range(r2.shape[1]):
        ax.plot(seconds / 60.0, np.maximum(r2[:, i], -0.1), marker=".", label=f"object {i}")
    ax.axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("validation probe R^2")
    ax.set_ylim(-0.1, 1.02)
    ax.set_title(f"keypoints -> object positions (step {steps[-1]})")
    if r2.shape[1] <= 12:
        ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    write_figure(fig, png_path)
