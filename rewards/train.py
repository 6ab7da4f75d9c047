"""Training a run's reward heads: one per task, on 80 % of the test split's hidden-state
windows (each head fitted by :func:`~keypoint_wm.rewards.fit.fit_reward_head`; its
configuration, :class:`RewardTrainConfig`, and the scoring helpers are importable from here
too).

:func:`train_reward_heads` returns a :class:`RewardTrainSummary`; its ``to_json()`` is
``OUT/train_summary.json``, and each task's :class:`HeadFacts` is that head's metadata. A
re-run into the same folder keeps the heads an earlier call finished (:func:`finished_heads`)
and continues a stopped or killed head from its checkpoint
(:mod:`~keypoint_wm.rewards.head_checkpoints`); SIGINT or SIGTERM saves the head in progress
and stops.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.api import WorldModel
from keypoint_wm.data.episodes import atomic_write_json
from keypoint_wm.data.sequences import EpisodeIndex
from keypoint_wm.errors import UsageError
from keypoint_wm.reward_inputs import check_inputs
from keypoint_wm.rewards.fit import (
    RewardTrainConfig,
    fit_reward_head,
    head_pairs,
    normalized_mse,
    predict,
    split_validation,
)
from keypoint_wm.rewards.head import RewardHeadConfig, save_reward_head
from keypoint_wm.rewards.head_checkpoints import HeadCheckpoints
from keypoint_wm.rewards.sequences import (
    RewardSequences,
    check_held_out,
    collect_reward_sequences,
    split_sequences,
)
from keypoint_wm.stop_signals import stop_requests

__all__ = [
    "HeadFacts",
    "RewardTrainConfig",
    "RewardTrainSummary",
    "finished_heads",
    "fit_reward_head",
    "head_pairs",
    "model_weights_hash",
    "normalized_mse",
    "predict",
    "split_validation",
    "train_reward_heads",
]


@dataclass(frozen=True)
class HeadFacts:
    """What one task's head was trained on and how it scored on its held-out windows.

    Stored as the head's metadata (``head.json``) and in ``OUT/train_summary.json``.
    ``test_normalized_mse`` is the MSE divided by that of a null model predicting the mean
    training reward (>= 0; < 1 beats the null model), None for constant rewards.
    """

    run: str | None
    checkpoint_step: int
    data: str
    train_windows: int
    test_windows: int
    test_normalized_mse: float | None
    window: int
    stride: int
    max_windows: int
    seed: int
    train_fraction: float
    split: str
    best_step: int
    """The step whose weights the head keeps (early stopping)."""
    validation_windows: int
    inputs: str
    """What the head reads: ``"hidden"``, ``"hidden+keypoints"`` or ``"hidden+features"``."""
    validation_normalized_mse: float | None = None
    """The kept weights' normalised MSE on the validation windows (choose settings on this,
    never on ``test_normalized_mse``); None without validation windows."""
    held_out_data: list[str] = field(default_factory=list)
    """Held-out datasets whose episodes joined the test split's (``--held-out-data``)."""
    weights: str | None = None
    """A hash of the world model's weights (:func:`model_weights_hash`): heads of other
    weights are never kept by a re-run."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def model_weights_hash(model: WorldModel) -> str:
    """A short hash of the world model's parameters and buffers (float32 bytes, in order)."""
    import hashlib

    digest = hashlib.sha256()
    for name, value in model.model.state_dict().items():
        digest.update(name.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def finished_heads(
    out: Path, config: RewardTrainConfig, facts: dict[str, Any]
) -> dict[str, HeadFacts]:
    """The heads an earlier call left in ``out`` that a re-run keeps, by task: recorded in
    its ``train_summary.json`` with the same config, their ``head.json`` in place, and
    trained on what ``facts`` says (the same run, weights, data and held-out data)."""
    try:
        earlier = json.loads((out / "train_summary.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(earlier, dict) or earlier.get("config") != asdict(config):
        return {}
    kept = {}
    for task, recorded in earlier.get("tasks", {}).items():
        same = all(recorded.get(key) == value for key, value in facts.items())
        if same and (out / task / "head.json").is_file():
            kept[task] = HeadFacts(**recorded)
    return kept


@dataclass(frozen=True)
class RewardTrainSummary:
    """What :func:`train_reward_heads` did: where the heads are, how, and per task."""

    out: str
    config: RewardTrainConfig
    tasks: dict[str, HeadFacts]
    kept: tuple[str, ...] = ()
    """Tasks whose heads an earlier call had finished (:func:`finished_heads`), not retrained."""
    resumed: dict[str, int] = field(default_factory=dict)
    """Tasks whose heads continued from a stopped call's checkpoint, and its step."""

    def to_json(self) -> dict[str, Any]:
        return {
            "out": self.out,
            "config": asdict(self.config),
            "tasks": {task: facts.to_json() for task, facts in self.tasks.items()},
        }


def train_reward_heads(
    model: WorldModel,
    data_dir: str | Path,
    out: str | Path | None = None,
    config: RewardTrainConfig | None = None,
    tasks: list[str] | None = None,
    progress: bool = True,
    sequences: dict[str, RewardSequences] | None = None,
    held_out: tuple[Path, ...] = (),
) -> RewardTrainSummary:
    """Train and save one head per task (``OUT/<task>/``, default ``RUN/rewards``); write
    ``OUT/train_summary.json`` (the summary's ``to_json()``).

    Args:
        sequences: the windows of each task, already collected with ``config``'s window
            settings (e.g. by ``rewards evaluate``, which scores the heads on the same
            windows); collected here when None.
        held_out: datasets the world model never saw, whose every episode joins the test
            split's as head data (:func:`~keypoint_wm.rewards.sequences.check_held_out`).

    Returns the summary: per task, the windows used and the held-out normalised MSE.

    Raises:
        UsageError: ``config.inputs`` adds another model's per-frame representation
            (``hidden+keypoints`` on a CNN-VRNN run, ``hidden+features`` on a Struct-VRNN
            one), before any window is collected.
    """
    config = config or RewardTrainConfig()
    check_inputs(config.inputs, model.config.model.representation)
    held_out = tuple(Path(p) for p in held_out)
    check_held_out(held_out, data_dir, model)
    if out is None:
        if model.run_dir is None:
            raise UsageError("--out is required for a model that was not loaded from a run")
        out = Path(model.run_dir) / "rewards"
    out = Path(out)
    same: dict[str, Any] = {  # what a head was trained on: a re-run keeps those that agree
        "run": None if model.run_dir is None else str(model.run_dir),
        "checkpoint_step": model.step,
        "data": str(Path(data_dir).resolve()),
        "held_out_data": [str(p.resolve()) for p in held_out],
        "weights": model_weights_hash(model),
    }
    kept = {} if sequences is not None else finished_heads(out, config, same)
    if tasks:
        kept = {t: f for t, f in kept.items() if t in tasks}
    if kept:
        tasks = _tasks_not_kept(model, data_dir, config, tasks, kept)
    if sequences is None and kept and not tasks:
        sequences = {}
    if sequences is None:
        sequences = collect_reward_sequences(
            model,
            data_dir,
            window=config.window,
            stride=config.stride,
            max_windows=config.max_windows,
            tasks=tasks,
            seed=config.seed,
            progress=progress,
            held_out=held_out,
        )
    summary = RewardTrainSummary(str(out), config, dict(kept), tuple(sorted(kept)))
    with stop_requests() as stop:
        for task, seqs in sequences.items():
            finished = sorted(summary.tasks)
            done = f"; the heads of {', '.join(finished)} finished" if finished else ""
            settings = {"config": asdict(config), "task": task, **same}
            saves = HeadCheckpoints(out / task, settings, stop, done)
            summary.tasks[task] = _train_head(
                model, seqs, out / task, config, same, saves, progress
            )
            if saves.resumed is not None:
                summary.resumed[task] = saves.resumed
            _write_summary(summary, out / "train_summary.json")
            saves.discard()
    return summary


def _tasks_not_kept(
    model: WorldModel,
    data_dir: str | Path,
    config: RewardTrainConfig,
    tasks: list[str] | None,
    kept: dict[str, HeadFacts],
) -> list[str]:
    """``tasks`` (default: every task of the data's test split) less those ``kept``."""
    every = (
        tasks
        or EpisodeIndex(
            data_dir, "test", model.config.train.test_fraction, min_frames=config.window
        ).tasks
    )
    return [t for t in every if t not in kept]


def _train_head(
    model: WorldModel,
    seqs: RewardSequences,
    folder: Path,
    config: RewardTrainConfig,
    same: dict[str, Any],
    saves: HeadCheckpoints,
    progress: bool,
) -> HeadFacts:
    """Fit one task's head on its split of ``seqs`` (resuming and saving through ``saves``),
    score it on the test part and save it in ``folder`` with its facts as metadata;
    TensorBoard beside it (``../tensorboard``, cut where a resumed head continues)."""
    from torch.utils.tensorboard import SummaryWriter

    train, test = split_sequences(seqs, config.train_fraction, config.seed, config.split)
    tensorboard = str(folder.parent / "tensorboard" / folder.name)
    writer = SummaryWriter(tensorboard, purge_step=saves.newest_step())
    try:
        head = fit_reward_head(train, test, config, writer, progress, model.device, saves)
    finally:
        writer.close()
    predicted = predict(head, test.hidden, test.keypoints)
    score = normalized_mse(predicted, test.reward, head.config.reward_mean)[0]
    facts = HeadFacts(
        **same,
        train_windows=len(train),
        test_windows=len(test),
        test_normalized_mse=None if np.isnan(score) else score,
        window=config.window,
        stride=config.stride,
        max_windows=config.max_windows,
        seed=config.seed,
        train_fraction=config.train_fraction,
        split=config.split,
        best_step=head.config.metadata["best_step"],
        validation_windows=head.config.metadata["validation_windows"],
        inputs=config.inputs,
        validation_normalized_mse=head.config.metadata["validation_normalized_mse"],
    )
    head.config = RewardHeadConfig(**{**asdict(head.config), "metadata": facts.to_json()})
    save_reward_head(head, folder)
    return facts


def _write_summary(summary: RewardTrainSummary, path: Path) -> None:
    """Write ``summary`` after each head, keeping the tasks an earlier call trained into the
    same folder with the same config (a run killed part-way and resumed, or heads trained
    task by task)."""
    payload = summary.to_json()
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        earlier = {}
    if isinstance(earlier, dict) and earlier.get("config") == payload["config"]:
        payload["tasks"] = {**earlier.get("tasks", {}), **payload["tasks"]}
    atomic_write_json(path, payload)
