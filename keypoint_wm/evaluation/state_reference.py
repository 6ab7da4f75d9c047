"""What the frames can tell: the state probe's velocities read off the true positions.

A latent that sees frames knows velocities only through what moved between frames. How much
of a task's velocities that leaves knowable depends on the task, not on the model: at the
data's frame rate (20 Hz for walker at action repeat 2) under random actions, contacts and
torques change a walker's joint velocities within one frame interval. ``keypoint-wm
evaluate state-reference`` measures it: the state probe's velocity targets (the same
episodes, splits and frames as :mod:`~keypoint_wm.evaluation.state_probe`) predicted from the
*true* position-like parts of the state at frames t, t-1, ..., t-L and the actions that led
to frames t, ..., t-L+1. Two readers:

- ``"linear"``: the state probe's ridge regression (strength chosen on validation);
- ``"mlp"``: a small MLP (two hidden layers of 256, ELU), its training length chosen on
  validation: a nonlinear reader, as a trained latent is a nonlinear function of the frames.

Neither is a strict bound for a model of the frames (which could learn more from the
pictures of the bodies than their positions, or fail to locate them), but a velocity R^2 far
below the reference is a model's gap, and one near it is the data's limit. Frames before the
L-th of an episode repeat its first positions and take zero actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.data.state_layout import POSITION_KINDS, StatePart
from keypoint_wm.evaluation.state_probe import (
    SPLITS,
    StateProbeConfig,
    TaskProbe,
    angle_targets,
    fit_state_probe,
    load_probe_tasks,
    score_state_probe,
)

__all__ = [
    "READERS",
    "REFERENCE_ALPHAS",
    "StateReferenceResult",
    "evaluate_state_reference",
    "format_state_reference",
    "history_features",
]

READERS = ("linear", "mlp")
"""The readers of the reference (module docstring)."""

REFERENCE_ALPHAS = (1e-8, 1e-6, 1e-4, 1e-2, 1.0)
"""Ridge strengths of the linear reader: smaller than the probe's, since positions of
neighbouring frames are nearly collinear and their difference carries the velocity."""


@dataclass
class StateReferenceResult:
    """Per reader and task, the velocity R^2 from the true position history."""

    lags: int
    tasks: dict[str, dict[str, TaskProbe]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        mean = {
            reader: float(np.mean([t[reader].velocities for t in self.tasks.values()]))
            for reader in READERS
            if all(t[reader].velocities is not None for t in self.tasks.values())
        }
        return {
            "lags": self.lags,
            "tasks": {
                task: {reader: probe.to_json() for reader, probe in readers.items()}
                for task, readers in self.tasks.items()
            },
            "mean": mean,
            "settings": dict(self.settings),
        }


def history_features(positions: np.ndarray, actions: np.ndarray, lags: int) -> np.ndarray:
    """``[T, P]`` positions and ``[T, A]`` actions of one episode -> ``[T, (L+1) P + L A]``:
    row t holds the positions of frames t, t-1, ..., t-L and the actions that led to frames
    t, ..., t-L+1 (before the episode: its first positions, zero actions).

    >>> history_features(np.arange(3.0)[:, None], np.ones((3, 1)), lags=1).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [2.0, 1.0, 1.0]]
    """
    padded_p = np.concatenate([np.repeat(positions[:1], lags, axis=0), positions])
    padded_a = np.concatenate([np.zeros((lags, actions.shape[1]), actions.dtype), actions])
    steps = len(positions)
    columns = [padded_p[lags - lag : lags - lag + steps] for lag in range(lags + 1)]
    columns += [padded_a[lags - lag : lags - lag + steps] for lag in range(lags)]
    return np.concatenate(columns, axis=1)


def _split_targets(
    states: np.ndarray, parts: tuple[StatePart, ...]
) -> tuple[np.ndarray, np.ndarray, tuple[StatePart, ...]]:
    """Angles through sin/cos; -> (positions ``[T, P]``, velocities ``[T, V]``, their parts)."""
    targets, parts = angle_targets(states, parts)
    position = np.concatenate(
        [targets[:, p.start : p.stop] for p in parts if p.kind in POSITION_KINDS], axis=1
    )
    velocity_parts, columns, start = [], [], 0
    for part in parts:
        if part.kind not in POSITION_KINDS:
            columns.append(targets[:, part.start : part.stop])
            velocity_parts.append(StatePart(part.name, start, start + part.size, part.kind))
            start += part.size
    return position, np.concatenate(columns, axis=1), tuple(velocity_parts)


def _fit_mlp(
    features: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    seed: int,
    iterations: int = 4000,
    check_every: int = 250,
) -> dict[str, np.ndarray]:
    """Train a 2 x 256 ELU MLP on standardised train data; keep the weights of the check
    with the lowest validation error. -> predictions for ``"validation"`` and ``"test"``."""
    x_mean, x_std = features["train"].mean(0), features["train"].std(0) + 1e-6
    y_mean, y_std = targets["train"].mean(0), targets["train"].std(0) + 1e-6

    def tensor(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((x - mean) / std, dtype=torch.float32)

    x = {s: tensor(features[s], x_mean, x_std) for s in SPLITS}
    y_train = tensor(targets["train"], y_mean, y_std)
    y_valid = tensor(targets["validation"], y_mean, y_std)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 256 x 256 layers: a second thread only adds synchronisation
    try:
        return _train_mlp(x, y_train, y_valid, y_mean, y_std, seed, iterations, check_every)
    finally:
        torch.set_num_threads(threads)


def _train_mlp(
    x: dict[str, torch.Tensor],
    y_train: torch.Tensor,
    y_valid: torch.Tensor,
    y_mean: np.ndarray,
    y_std: np.ndarray,
    seed: int,
    iterations: int,
    check_every: int,
) -> dict[str, np.ndarray]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(x["train"].shape[1], 256),
            torch.nn.ELU(),
            torch.nn.Linear(256, 256),
            torch.nn.ELU(),
            torch.nn.Linear(256, y_train.shape[1]),
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        generator = torch.Generator().manual_seed(seed)
        best = (np.inf, {k: v.clone() for k, v in net.state_dict().items()})
        for step in range(1, iterations + 1):
            rows = torch.randint(0, len(y_train), (256,), generator=generator)
            loss = ((net(x["train"][rows]) - y_train[rows]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step % check_every == 0:
                with torch.no_grad():
                    error = float(((net(x["validation"]) - y_valid) ** 2).mean())
                if error < best[0]:
                    best = (error, {k: v.clone() for k, v in net.state_dict().items()})
        net.load_state_dict(best[1])
        with torch.no_grad():
            return {
                s: net(x[s]).numpy().astype(np.float64) * y_std + y_mean
                for s in ("validation", "test")
            }


def evaluate_state_reference(
    data: str | Path,
    config: StateProbeConfig,
    lags: int = 2,
    validation_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    mlp_steps: int = 4000,
) -> StateReferenceResult:
    """The reference on ``data``'s episodes (module docstring), per task and reader.

    ``mlp_steps``: the MLP's training steps (batches of 256), the best on validation kept.
    ``config`` selects the episodes and splits as the state probe does (its ``tasks``,
    ``max_episodes``, ``burn_in``, ``test_fraction``); ``validation_fraction`` must be the
    probed runs' own (``train.validation_fraction``, 0.1 in every preset) for the frames to
    be the same.

    Raises:
        DataError: no task of ``data`` holds ``state``.
        UsageError: ``config.tasks`` names a task the data does not have.
    """
    if lags < 1:
        raise ValueError(f"lags must be >= 1 (a velocity needs two frames), got {lags}")
    tasks = load_probe_tasks(data, config, validation_fraction, frames=False)
    results: dict[str, dict[str, TaskProbe]] = {}
    for name, loaded in tqdm(
        tasks.items(), desc="state reference", unit="task", disable=not progress
    ):
        features, targets = {}, {}
        parts: tuple[StatePart, ...] = ()
        for split in SPLITS:
            rows, wanted = [], []
            for states, actions in zip(loaded.states[split], loaded.actions[split], strict=True):
                positions, velocities, parts = _split_targets(states, loaded.parts)
                rows.append(history_features(positions, actions, lags)[config.burn_in :])
                wanted.append(velocities[config.burn_in :])
            features[split], targets[split] = np.concatenate(rows), np.concatenate(wanted)
        results[name] = {
            "linear": fit_state_probe(features, targets, parts, REFERENCE_ALPHAS),
            "mlp": score_state_probe(_fit_mlp(features, targets, seed, mlp_steps), targets, parts),
        }
    settings = {
        "test_fraction": config.test_fraction,
        "validation_fraction": validation_fraction,
        "max_episodes": config.max_episodes,
        "burn_in": config.burn_in,
        "seed": seed,
        "mlp_steps": mlp_steps,
    }
    return StateReferenceResult(lags, results, settings)


def format_state_reference(result: dict[str, Any]) -> str:
    """A Markdown table of a :meth:`StateReferenceResult.to_json`: velocity R^2 per task and
    reader (test split)."""
    lines = [
        "| task | velocities, linear | velocities, MLP |",
        "|---|---|---|",
    ]
    for task, readers in result["tasks"].items():
        cells = [readers[r]["velocities"] for r in READERS]
        lines.append(f"| {task} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    mean = result.get("mean", {})
    if all(r in mean for r in READERS):
        lines.append("| mean | " + " | ".join(f"{mean[r]:.3f}" for r in READERS) + " |")
    return "\n".join(lines)
