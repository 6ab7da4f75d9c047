"""What the latent knows: a linear probe from the filtered latent to the physics state.

``keypoint-wm evaluate state-probe`` asks how much of a task's low-dimensional state (the
episode files' ``state``, docs/design.md, "Episode files") can be read linearly off what an
agent sees. For every frame t of whole episodes, the features are the model's deterministic
online filter (:meth:`keypoint_wm.api.WorldModel.filter`, what the latent wrappers compute):

- ``"keypoints"``: the detected keypoints of frame t, ``K * 3`` values (for CNN-VRNN runs
  the encoder's per-frame features, which take the keypoints' place);
- ``"hidden"``: h_{t-1}, the GRU state that conditions frame t (``rnn_units`` values);
- ``"both"``: the two concatenated (the latent wrappers' default observation).

The protocol (docs/design.md, "Splits"): a ridge regression (features standardised on the
training frames, :func:`~keypoint_wm.evaluation.tracking.fit_linear`) is fitted on the
training split's episodes, its strength chosen among :attr:`StateProbeConfig.alphas` by the
mean R^2 on the validation split's episodes, and scored once on the test split's episodes.
The first ``burn_in`` frames of each episode are left out (at frame 0 nothing has been seen
move, so no velocity can be known).

R^2 is computed per state dimension on the test frames (1 - SSE / SST around the test mean)
and averaged over the dimensions of each observation key (``"parts"``), over every
position-like dimension (``"positions"``) and every velocity-like one (``"velocities"``;
:func:`~keypoint_wm.data.state_layout.part_kind`). Raw hinge angles (reacher's
``position``) are scored through their cosines and sines (``angles="sincos"``, the
default), as dm_control gives the other tasks' angles. A dimension that does not vary on the
test frames is left out of the averages. The floor beside each figure is the same probe on
an untrained model of the same config (``"untrained"``): random convolutional features
already locate bright bodies, so only the margin over it is what training taught. The table
and the plot of the results are :mod:`keypoint_wm.evaluation.state_probe_report`'s.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.data.episodes import load_episode
from keypoint_wm.data.sequences import EpisodeIndex
from keypoint_wm.data.state_layout import ANGLE_TARGETS, POSITION_KINDS, StatePart, state_parts
from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.evaluation.tracking import apply_linear, fit_linear
from keypoint_wm.latent_features import FEATURE_CHOICES, parse_features

__all__ = [
    "StateProbeConfig",
    "StateProbeResult",
    "TaskProbe",
    "evaluate_state_probe",
    "fit_state_probe",
    "load_probe_tasks",
    "score_state_probe",
]

SPLITS = ("train", "validation", "test")
_MIN_VARIANCE = 1e-10


@dataclass(frozen=True)
class StateProbeConfig:
    """Settings of the state probe.

    Attributes:
        features: ``"keypoints"``, ``"hidden"`` or ``"both"`` (module docstring).
        test_fraction: the held-out fraction, as in training (data without a split of its
            own).
        validation_fraction: the fraction of the other files held out for choosing the
            ridge strength; default: the run's own ``train.validation_fraction``.
        max_episodes: at most this many episodes per task and split (sorted by path).
        burn_in: frames left out at the start of each episode.
        alphas: candidate ridge strengths (on standardised features, times the frame count).
        batch_size: episodes filtered at once.
        untrained: also probe an untrained model of the same config (the floor).
        untrained_seed: the seed of its initialisation (None: the run's own seed).
        angles: ``"sincos"``: parts of kind ``"angle"`` (raw hinge angles) are scored through
            their cosines and sines (:func:`angle_targets`); ``"raw"``: as stored.
        tasks: the tasks to probe (default: every task with a ``state``).
    """

    features: str = "both"
    test_fraction: float = 0.2
    validation_fraction: float | None = None
    max_episodes: int = 40
    burn_in: int = 1
    alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    batch_size: int = 8
    untrained: bool = True
    untrained_seed: int | None = None
    angles: str = "sincos"
    tasks: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.features not in FEATURE_CHOICES:
            raise UsageError(
                f"--features must be one of {', '.join(FEATURE_CHOICES)}, got {self.features!r}"
            )
        if self.angles not in ANGLE_TARGETS:
            raise UsageError(f"--angles must be one of {', '.join(ANGLE_TARGETS)}")
        if self.burn_in < 0 or self.max_episodes < 1 or not self.alphas:
            raise ValueError("burn_in >= 0, max_episodes >= 1 and some alphas are needed")


@dataclass
class TaskProbe:
    """One task's probe: test R^2 per observation key and per kind, and how it was fitted.

    ``parts`` maps each observation key to its R^2 (None when none of its dimensions varies
    on the test frames); ``positions`` / ``velocities`` average every dimension of that kind
    (None when the task has none); ``alpha`` is the ridge strength chosen on validation,
    ``validation_r2`` the mean R^2 there and ``validation`` its positions and velocities
    (what to choose models and knobs on: the test figures are read once, to report);
    ``frames`` the frame count per split; ``named`` the R^2 of single state entries the data
    names (an Atari game's ``"ram_bytes"``: the ball's and paddles' positions in its RAM),
    empty when it names none.
    """

    parts: dict[str, float | None]
    positions: float | None
    velocities: float | None
    alpha: float
    validation_r2: float
    frames: dict[str, int]
    validation: dict[str, float | None] = field(default_factory=dict)
    named: dict[str, float | None] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = {
            "positions": self.positions,
            "velocities": self.velocities,
            "parts": dict(self.parts),
            "alpha": self.alpha,
            "validation_r2": self.validation_r2,
            "validation": dict(self.validation),
            "frames": dict(self.frames),
        }
        return {**out, "named": dict(self.named)} if self.named else out


@dataclass
class StateProbeResult:
    """The probe of one run: per task, and the same for an untrained model of its config."""

    features: str
    tasks: dict[str, TaskProbe]
    untrained: dict[str, TaskProbe] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def _mean(probes: dict[str, TaskProbe]) -> dict[str, float | None]:
        means: dict[str, float | None] = {}
        for kind in ("positions", "velocities"):
            values = [getattr(p, kind) for p in probes.values() if getattr(p, kind) is not None]
            means[kind] = float(np.mean(values)) if values else None
        return means

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "features": self.features,
            "tasks": {name: probe.to_json() for name, probe in self.tasks.items()},
            "mean": self._mean(self.tasks),
        }
        if self.untrained is not None:
            out["untrained"] = {
                "tasks": {name: probe.to_json() for name, probe in self.untrained.items()},
                "mean": self._mean(self.untrained),
            }
        out["settings"] = dict(self.settings)
        return out


# ----------------------------------------------------------------------------- fitting
def _r2_per_dim(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``[n, D]`` -> ``[D]``; NaN where the true values do not vary."""
    sse = ((predicted - true) ** 2).sum(axis=0)
    sst = ((true - true.mean(axis=0)) ** 2).sum(axis=0)
    varies = sst / max(len(true), 1) > _MIN_VARIANCE
    return np.where(varies, 1.0 - sse / np.where(varies, sst, 1.0), np.nan)


def _nanmean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def fit_state_probe(
    features: dict[str, np.ndarray],
    states: dict[str, np.ndarray],
    parts: tuple[StatePart, ...],
    alphas: tuple[float, ...] = StateProbeConfig.alphas,
    named: dict[str, int] | None = None,
) -> TaskProbe:
    """Fit on ``"train"``, choose the ridge strength on ``"validation"``, score ``"test"``.

    Args:
        features: per split, float ``[n, F]`` latent features of n frames.
        states: per split, float ``[n, D]`` the states of the same frames.
        parts: the slices of the D state entries.
        alphas: candidate ridge strengths.
        named: single entries to score apart, ``{name: column}``.

    >>> rng = np.random.default_rng(0)
    >>> state = {s: rng.normal(size=(200, 3)) for s in ("train", "validation", "test")}
    >>> mixing = rng.normal(size=(3, 8))
    >>> latent = {s: x @ mixing for s, x in state.items()}   # a linear function of the state
    >>> parts = (StatePart("position", 0, 2, "position"), StatePart("velocity", 2, 3, "velocity"))
    >>> probe = fit_state_probe(latent, state, parts)
    >>> round(probe.positions, 4), round(probe.velocities, 4)
    (1.0, 1.0)
    """
    x_train = features["train"].astype(np.float64)
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)

    def standard(split: str) -> np.ndarray:
        return (features[split].astype(np.float64) - mean) / std

    train, validation, test = standard("train"), standard("validation"), standard("test")
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in alphas:
        weights = fit_linear(train, states["train"], ridge=alpha)
        score = _nanmean(_r2_per_dim(apply_linear(weights, validation), states["validation"]))
        score = -np.inf if score is None else score
        if best is None or score > best[0]:
            best = (score, float(alpha), weights)
    assert best is not None
    _, alpha, weights = best
    predicted = {
        "validation": apply_linear(weights, validation),
        "test": apply_linear(weights, test),
    }
    return score_state_probe(predicted, states, parts, alpha, named)


def score_state_probe(
    predicted: dict[str, np.ndarray],
    states: dict[str, np.ndarray],
    parts: tuple[StatePart, ...],
    alpha: float = 0.0,
    named: dict[str, int] | None = None,
) -> TaskProbe:
    """Score a fitted probe's predictions: test R^2 per part and kind, validation figures.

    Args:
        predicted: ``"validation"`` and ``"test"``: float ``[n, D]`` predicted states.
        states: per split (``"train"`` too, for the frame count): the true ``[n, D]``.
        parts: the slices of the D state entries.
        alpha: the ridge strength chosen (0 for a probe without one).
        named: single entries to score apart, ``{name: column}`` (None when one does not
            vary on the test frames).
    """
    r2 = _r2_per_dim(predicted["test"], states["test"].astype(np.float64))
    chosen = _r2_per_dim(predicted["validation"], states["validation"].astype(np.float64))
    kinds = {kind: np.zeros(len(r2), bool) for kind in ("position", "velocity")}
    for part in parts:
        kinds["position" if part.kind in POSITION_KINDS else "velocity"][part.start : part.stop] = (
            True
        )
    return TaskProbe(
        parts={part.name: _nanmean(r2[part.start : part.stop]) for part in parts},
        positions=_nanmean(r2[kinds["position"]]),
        velocities=_nanmean(r2[kinds["velocity"]]),
        alpha=alpha,
        validation_r2=_nanmean(chosen) or 0.0,
        frames={split: len(states[split]) for split in SPLITS},
        validation={
            "positions": _nanmean(chosen[kinds["position"]]),
            "velocities": _nanmean(chosen[kinds["velocity"]]),
        },
        named={
            name: None if not np.isfinite(r2[column]) else float(r2[column])
            for name, column in (named or {}).items()
        },
    )


def angle_targets(
    states: np.ndarray, parts: tuple[StatePart, ...]
) -> tuple[np.ndarray, tuple[StatePart, ...]]:
    """The probe's targets: each ``"angle"`` part's angles replaced by their cosines then
    sines (an image shows theta and theta + 2 pi alike), the other parts as they are.

    >>> parts = (StatePart("position", 0, 1, "angle"), StatePart("velocity", 1, 2, "velocity"))
    >>> targets, new = angle_targets(np.array([[np.pi, 3.0]]), parts)
    >>> targets.round(3).tolist(), [(p.name, p.start, p.stop) for p in new]
    ([[-1.0, 0.0, 3.0]], [('position', 0, 2), ('velocity', 2, 3)])
    """
    columns, new, start = [], [], 0
    for part in parts:
        block = states[:, part.start : part.stop]
        if part.kind == "angle":
            block = np.concatenate([np.cos(block), np.sin(block)], axis=1)
        columns.append(block)
        new.append(StatePart(part.name, start, start + block.shape[1], part.kind))
        start += block.shape[1]
    return np.concatenate(columns, axis=1), tuple(new)


def named_entries(metadata: dict[str, Any], parts: tuple[StatePart, ...]) -> dict[str, int]:
    """The single state entries an episode's metadata names, ``{name: column}``: an Atari
    game's ``"ram_bytes"`` (keypoint_wm.envs.gym_state); columns outside the state dropped.

    >>> parts = (StatePart("ram", 0, 128, "position"),)
    >>> named_entries({"ram_bytes": {"ball_x": 49, "odd": 300}}, parts)
    {'ball_x': 49}
    """
    width = parts[-1].stop if parts else 0
    entries = metadata.get("ram_bytes") or {}
    return {str(k): int(v) for k, v in entries.items() if 0 <= int(v) < width}


def moved_columns(
    named: dict[str, int], before: tuple[StatePart, ...], after: tuple[StatePart, ...]
) -> dict[str, int]:
    """``named`` columns of the layout ``before`` in the layout ``after`` (the same parts,
    angles widened to cosine and sine by :func:`angle_targets`); an entry of an angle part
    is dropped (it has no one column any more)."""
    out = {}
    for name, column in named.items():
        for old, new in zip(before, after, strict=True):
            if old.start <= column < old.stop and old.kind != "angle":
                out[name] = new.start + column - old.start
    return out


# ----------------------------------------------------------------------------- data
@dataclass
class _TaskData:
    """One task's episodes per split: frames, actions and states (whole episodes)."""

    frames: dict[str, list[np.ndarray]]
    actions: dict[str, list[np.ndarray]]
    states: dict[str, list[np.ndarray]]
    parts: tuple[StatePart, ...]
    named: dict[str, int] = field(default_factory=dict)


def load_probe_tasks(
    data: str | Path, config: StateProbeConfig, validation: float, frames: bool = True
) -> dict[str, _TaskData]:
    """Per task, the episodes of each split the probe reads (at most ``max_episodes``);
    ``frames=False`` keeps only actions and states (the frames are dropped as read)."""
    indexes = {
        split: EpisodeIndex(data, split, config.test_fraction, validation_fraction=validation)
        for split in SPLITS
    }
    wanted = config.tasks or tuple(indexes["test"].tasks)
    unknown = [t for t in wanted if t not in indexes["test"].tasks]
    if unknown:
        raise UsageError(
            f"--tasks {','.join(unknown)}: not in {data} (its tasks: "
            f"{', '.join(indexes['test'].tasks)})"
        )
    tasks: dict[str, _TaskData] = {}
    skipped = []
    for task in wanted:
        loaded = _TaskData({}, {}, {}, ())
        for split, index in indexes.items():
            records = [r for r in index.records if r.task == task][: config.max_episodes]
            episodes = [load_episode(r.path) for r in records]
            states = [e.state for e in episodes if e.state is not None]
            if not episodes or len(states) < len(episodes):
                skipped.append(f"{task} ({split})")
                break
            loaded.frames[split] = [
                e.image if frames else np.empty((len(e.image), 0, 0, 3), np.uint8) for e in episodes
            ]
            loaded.actions[split] = [e.action for e in episodes]
            loaded.states[split] = states
            loaded.parts = state_parts(episodes[0].metadata, states[0].shape[1])
            loaded.named = named_entries(episodes[0].metadata, loaded.parts)
        else:
            tasks[task] = loaded
    if skipped and (config.tasks or not tasks):
        raise DataError(
            f"{data}: no 'state' key in every episode of {', '.join(skipped)} (or no episode "
            "in that split); collect the data again with `keypoint-wm collect`, which records "
            "the physics state beside the frames"
        )
    if skipped:
        warnings.warn(
            f"state probe: skipped {', '.join(skipped)}: no 'state' in every episode",
            stacklevel=2,
        )
    return tasks


def _batches(frames: list[np.ndarray], size: int) -> Iterator[list[int]]:
    """Indices of episodes of equal length, ``size`` at a time."""
    by_length: dict[int, list[int]] = {}
    for i, episode in enumerate(frames):
        by_length.setdefault(len(episode), []).append(i)
    for indices in by_length.values():
        for start in range(0, len(indices), size):
            yield indices[start : start + size]


def _features(model: Any, data: _TaskData, split: str, config: StateProbeConfig) -> np.ndarray:
    """``[n, F]`` filtered features of every frame after the burn-in, episodes in order."""
    per_episode: dict[int, np.ndarray] = {}
    frames, actions = data.frames[split], data.actions[split]
    for indices in _batches(frames, config.batch_size):
        batch_actions = np.stack([actions[i] for i in indices]) if model.action_size else None
        out = model.filter(np.stack([frames[i] for i in indices]), batch_actions)
        named = {"keypoints": out.keypoints.flatten(2), "hidden": out.hidden}
        parts = [named[name] for name in parse_features(config.features)]
        vectors = torch.cat(parts, dim=-1).numpy()
        for row, i in enumerate(indices):
            per_episode[i] = vectors[row, config.burn_in :]
    return np.concatenate([per_episode[i] for i in range(len(frames))])


def _probe_model(
    model: Any, tasks: dict[str, _TaskData], config: StateProbeConfig, bar: Any
) -> dict[str, TaskProbe]:
    probes = {}
    for name, data in tasks.items():
        features, states = {}, {}
        for split in SPLITS:
            features[split] = _features(model, data, split, config)
            states[split] = np.concatenate([s[config.burn_in :] for s in data.states[split]])
            bar.update(sum(len(f) for f in data.frames[split]))
        parts, named = data.parts, data.named
        if config.angles == "sincos":
            for split in SPLITS:
                states[split], parts = angle_targets(states[split], data.parts)
            named = moved_columns(named, data.parts, parts)
        probes[name] = fit_state_probe(features, states, parts, config.alphas, named)
    return probes


def _untrained_copy(model: Any, seed: int) -> Any:
    from keypoint_wm.api import WorldModel
    from keypoint_wm.model.struct_vrnn import StructVRNN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = StructVRNN(model.config.model)
    fresh.to(model.device)
    return WorldModel(fresh, model.config, 0, None)


def evaluate_state_probe(
    model: Any, data: str | Path, config: StateProbeConfig, progress: bool = True
) -> StateProbeResult:
    """Probe ``model`` (a :class:`keypoint_wm.api.WorldModel`) on ``data`` (module doc).

    Raises:
        DataError: no task of ``data`` holds ``state`` (data collected before the key).
        UsageError: ``config.tasks`` names a task the data does not have.
    """
    validation = config.validation_fraction
    if validation is None:
        validation = model.config.train.validation_fraction or 0.1
    tasks = load_probe_tasks(data, config, validation)
    seed = model.config.seed if config.untrained_seed is None else config.untrained_seed
    models = [model] + ([_untrained_copy(model, seed)] if config.untrained else [])
    total = sum(len(f) for t in tasks.values() for s in SPLITS for f in t.frames[s])
    with tqdm(
        total=total * len(models),
        unit="frame",
        unit_scale=True,
        desc="state probe",
        disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        trained = _probe_model(model, tasks, config, bar)
        untrained = _probe_model(models[1], tasks, config, bar) if config.untrained else None
    settings = {
        "test_fraction": config.test_fraction,
        "validation_fraction": validation,
        "max_episodes": config.max_episodes,
        "burn_in": config.burn_in,
        "angles": config.angles,
    }
    return StateProbeResult(config.features, trained, untrained, settings)
