"""Action recognition from a model's representation: the paper's Figure 7 and section S2.1.

The trained world model observes sequences of ``steps`` frames (8, as in the paper:
non-overlapping windows of the dataset's episodes) and its per-frame representation, the
detected keypoints ``[T, K, 3]`` (for a CNN-VRNN its unstructured feature vector in the same
shape), becomes the input of a separate classifier: two GRU layers of 128 units with 25%
dropout after each, a dense layer to the classes and a softmax (cross-entropy), trained
for 100 epochs with Adam, learning rate 0.01 decayed exponentially to 0.0001. Features are
standardised with the training set's mean and standard deviation.

Training and test sequences come from different episodes (videos), split by the episodes'
metadata (Human3.6M subjects, the figure stand-in's split) or by path hash
(:mod:`keypoint_wm.evaluation.datasets`). Labels are the episodes' metadata ``"action"``.
Reported: held-out accuracy; the most-frequent-class baseline (the training set's most
frequent class, scored on the test set); and, when the data hold ``true_object_pos``, the
same classifier on the ground-truth joint coordinates (the paper's dashed line).

:func:`evaluate_actions` returns an :class:`ActionResult`; its ``to_json()`` is the JSON object
of ``keypoint-wm evaluate actions`` (per run, see :mod:`keypoint_wm.evaluation.seeds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.data.episodes import episode_metadata, read_manifest
from keypoint_wm.errors import DataError
from keypoint_wm.evaluation.datasets import split_index, task_records
from keypoint_wm.evaluation.seeds import OverSeeds, as_seeds, plus_minus
from keypoint_wm.evaluation.windows import iter_windows
from keypoint_wm.viz import write_figure


@dataclass(frozen=True)
class ActionEvalConfig:
    """Settings of :func:`evaluate_actions` (paper S2.1 defaults)."""

    steps: int = 8
    test_fraction: float = 0.2
    max_windows: int = 5000
    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 0.01
    final_learning_rate: float = 1e-4
    hidden: int = 128
    dropout: float = 0.25
    seed: int = 0


class ActionClassifier(nn.Module):
    """Two GRU layers (25% dropout after each) and a dense layer: ``[B, T, F]`` -> logits
    ``[B, classes]`` (from the last step)."""

    def __init__(self, features: int, classes: int, hidden: int = 128, dropout: float = 0.25):
        super().__init__()
        self.gru = nn.GRU(features, hidden, num_layers=2, batch_first=True, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.dense(self.dropout(out[:, -1]))


def train_classifier(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    num_classes: int,
    config: ActionEvalConfig | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Fit :class:`ActionClassifier` on ``train_x`` ``[n, T, F]`` / ``train_y`` int ``[n]``;
    return the predicted classes of ``test_x`` ``[m, T, F]`` (int ``[m]``).

    Deterministic for a given ``config.seed``; the global torch RNG is left untouched.
    """
    config = config or ActionEvalConfig()
    if len(train_x) == 0 or len(test_x) == 0:
        raise DataError("action recognition needs training and test sequences")
    mean = train_x.reshape(-1, train_x.shape[-1]).mean(axis=0)
    std = train_x.reshape(-1, train_x.shape[-1]).std(axis=0) + 1e-6
    x_train = torch.as_tensor((train_x - mean) / std, dtype=torch.float32)
    x_test = torch.as_tensor((test_x - mean) / std, dtype=torch.float32)
    y_train = torch.as_tensor(train_y, dtype=torch.long)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = ActionClassifier(x_train.shape[-1], num_classes, config.hidden, config.dropout)
        optimiser = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
        gamma = (config.final_learning_rate / config.learning_rate) ** (
            1 / max(1, config.epochs - 1)
        )
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma)
        generator = torch.Generator().manual_seed(config.seed)
        net.train()
        for _ in tqdm(
            range(config.epochs), desc="classifier", unit="epoch", disable=not progress, leave=False
        ):
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), config.batch_size):
                chosen = order[start : start + config.batch_size]
                loss = nn.functional.cross_entropy(net(x_train[chosen]), y_train[chosen])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            schedule.step()
        net.eval()
        with torch.no_grad():
            return net(x_test).argmax(dim=1).numpy()


@dataclass
class _Sequences:
    features: list
    truth: list
    labels: list

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        truth = None if any(t is None for t in self.truth) else np.concatenate(self.truth)
        return np.concatenate(self.features), truth, np.concatenate(self.labels)


def _collect(
    model: WorldModel, index, config: ActionEvalConfig, desc: str, progress: bool
) -> _Sequences:
    cfg = model.config.model
    out = _Sequences([], [], [])
    labels: dict[str, list[str]] = {}
    for task in index.tasks:
        records = task_records(index, task, config.steps)
        labels[task] = []
        for record in records:
            action = episode_metadata(record.path).get("action")
            if action is None:
                raise DataError(
                    f"{record.path}: no 'action' label in its metadata; action recognition "
                    "needs labelled data (`keypoint-wm data human36m` or `keypoint-wm data figures`)"
                )
            labels[task].append(str(action))
    batches = iter_windows(
        index,
        config.steps,
        batch_size=32,
        max_windows=config.max_windows,
        action_size=cfg.action_size,
    )
    for batch in tqdm(batches, desc=desc, unit="batch", disable=not progress, leave=False):
        actions = batch.actions if cfg.action_size else None
        keypoints = model.observe(batch.frames, actions).keypoints.numpy()
        out.features.append(keypoints.reshape(*keypoints.shape[:2], -1))
        positions = batch.positions
        out.truth.append(
            positions.reshape(*positions.shape[:2], -1) if positions.shape[2] else None
        )
        out.labels.append(np.array([labels[batch.task][i] for i in batch.episode]))
    if not out.features:
        raise DataError(f"{index.root}: no window of {config.steps} frames in the {desc} split")
    return out


def _class_names(data_dir: Path, labels: np.ndarray) -> list[str]:
    manifest = read_manifest(data_dir) or {}
    listed = manifest.get("actions") or manifest.get("action_classes") or []
    extra = sorted(set(labels.tolist()) - set(listed))
    return [c for c in listed if c in set(labels.tolist())] + extra


@dataclass(frozen=True)
class ActionResult:
    """What :func:`evaluate_actions` measured. Accuracies are shares of the test sequences
    in [0, 1]; ``confusion[i][j]`` counts test sequences of class ``classes[i]`` predicted
    as ``classes[j]``."""

    accuracy: float
    most_frequent_class_accuracy: float
    """The baseline: always the training set's most frequent class."""
    most_frequent_class: str
    ground_truth_accuracy: float | None
    """The same classifier on the true coordinates (None when the data hold none)."""
    classes: list[str]
    per_class_accuracy: dict[str, float | None]
    """Recall of each class (None for a class without test sequences)."""
    confusion: list[list[int]]
    observed_steps: int
    feature_size: int
    representation: str
    """``"keypoints"`` (Struct-*) or ``"cnn"`` (CNN-VRNN)."""
    train_sequences: int
    test_sequences: int
    split: str
    epochs: int

    @property
    def accuracy_over_baseline(self) -> float | None:
        """``accuracy / most_frequent_class_accuracy`` (None when the baseline is 0)."""
        if self.most_frequent_class_accuracy <= 0:
            return None
        return self.accuracy / self.most_frequent_class_accuracy

    def to_json(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "most_frequent_class_accuracy": self.most_frequent_class_accuracy,
            "most_frequent_class": self.most_frequent_class,
            "accuracy_over_baseline": self.accuracy_over_baseline,
            "ground_truth_accuracy": self.ground_truth_accuracy,
            "classes": self.classes,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion": self.confusion,
            "observed_steps": self.observed_steps,
            "feature_size": self.feature_size,
            "representation": self.representation,
            "train_sequences": self.train_sequences,
            "test_sequences": self.test_sequences,
            "split": self.split,
            "epochs": self.epochs,
        }


def evaluate_actions(
    model: WorldModel,
    data_dir: str | Path,
    config: ActionEvalConfig | None = None,
    progress: bool = True,
) -> ActionResult:
    """Run the action-recognition evaluation (see the module docstring)."""
    config = config or ActionEvalConfig()
    data_dir = Path(data_dir)
    train_index, test_index, how = split_index(
        data_dir, config.test_fraction, min_frames=config.steps
    )
    train_x, train_truth, train_labels = _collect(
        model, train_index, config, "train", progress
    ).arrays()
    test_x, test_truth, test_labels = _collect(model, test_index, config, "test", progress).arrays()
    classes = _class_names(data_dir, np.concatenate([train_labels, test_labels]))
    lookup = {c: i for i, c in enumerate(classes)}
    train_y = np.array([lookup[c] for c in train_labels])
    test_y = np.array([lookup[c] for c in test_labels])
    predicted = train_classifier(train_x, train_y, test_x, len(classes), config, progress)
    most_frequent = int(np.bincount(train_y, minlength=len(classes)).argmax())
    confusion = np.zeros((len(classes), len(classes)), int)
    np.add.at(confusion, (test_y, predicted), 1)
    ground_truth = None
    if train_truth is not None and test_truth is not None:
        truth_predicted = train_classifier(
            train_truth, train_y, test_truth, len(classes), config, progress
        )
        ground_truth = float((truth_predicted == test_y).mean())
    return ActionResult(
        accuracy=float((predicted == test_y).mean()),
        most_frequent_class_accuracy=float((test_y == most_frequent).mean()),
        most_frequent_class=classes[most_frequent],
        ground_truth_accuracy=ground_truth,
        classes=classes,
        per_class_accuracy={
            c: (float(confusion[i, i] / confusion[i].sum()) if confusion[i].sum() else None)
            for i, c in enumerate(classes)
        },
        confusion=confusion.tolist(),
        observed_steps=config.steps,
        feature_size=int(train_x.shape[-1]),
        representation=model.config.model.representation,
        train_sequences=len(train_y),
        test_sequences=len(test_y),
        split=how,
        epochs=config.epochs,
    )


def format_actions(result: ActionResult | OverSeeds[ActionResult]) -> str:
    """The printed table: accuracies of the model, the baseline and the true coordinates;
    over several runs (seeds) each is the mean ± the half-width of its 95% interval."""
    summary = as_seeds(result)
    mean = summary.mean
    over = f"; mean ± 95% CI over {summary.count} seeds" if summary.count > 1 else ""
    lines = [
        f"action recognition: {len(mean['classes'])} classes, {mean['observed_steps']}-step "
        f"sequences of the model's {mean['representation']} features "
        f"({mean['train_sequences']} train / {mean['test_sequences']} test, "
        f"{mean['split']} split){over}",
        f"{'accuracy (model)':<34} {plus_minus(*summary.at('accuracy'), '.3f')}",
        f"{'most frequent class (baseline)':<34} "
        f"{plus_minus(*summary.at('most_frequent_class_accuracy'), '.3f')}"
        f"  ({mean['most_frequent_class']})",
    ]
    if mean["ground_truth_accuracy"] is not None:
        lines.append(
            f"{'ground-truth coordinates':<34} "
            f"{plus_minus(*summary.at('ground_truth_accuracy'), '.3f')}"
        )
    return "\n".join(lines)


def plot_actions(result: ActionResult | OverSeeds[ActionResult], path: str | Path) -> Path:
    """Accuracy bars (model, baseline, ground truth; over several runs the mean with its 95%
    interval over them) and the confusion matrix (averaged over runs) (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = as_seeds(result)
    mean = summary.mean
    fig, (bars, matrix) = plt.subplots(1, 2, figsize=(10, 4))
    names = ["model", "most frequent", "ground truth"]
    keys = ["accuracy", "most_frequent_class_accuracy", "ground_truth_accuracy"]
    shown = [(n, *summary.at(k)) for n, k in zip(names, keys, strict=True) if mean[k] is not None]
    bars.bar(
        [n for n, _, _ in shown],
        [v for _, v, _ in shown],
        yerr=None if summary.ci is None else [0.0 if h is None else h for _, _, h in shown],
        color=["C0", "C7", "C2"][: len(shown)],
    )
    bars.set_ylim(0, 1)
    bars.set_ylabel("test accuracy")
    bars.set_title("action recognition")
    confusion = np.array(mean["confusion"], float)
    rows = np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    matrix.imshow(confusion / rows, vmin=0, vmax=1, cmap="Blues")
    ticks = np.arange(len(mean["classes"]))
    matrix.set_xticks(ticks, mean["classes"], rotation=60, ha="right", fontsize=7)
    matrix.set_yticks(ticks, mean["classes"], fontsize=7)
    matrix.set_xlabel("predicted")
    matrix.set_ylabel("true")
    fig.tight_layout()
    return write_figure(fig, path, dpi=110)
