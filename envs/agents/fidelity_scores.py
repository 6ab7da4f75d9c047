"""The figures of ``keypoint-wm evaluate dream-fidelity`` (the layout in
:func:`keypoint_wm.envs.agents.dream_fidelity.evaluate_dream_fidelity`): per horizon, each
policy's mean return per column, the model columns' correlation with the real returns and
the imagined keypoints' error; :class:`DreamFidelity` holds one run's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keypoint_wm.envs.agents.fidelity_rollouts import Rollouts

__all__ = ["COLUMNS", "IMAGINED", "DreamFidelity", "summarise"]

COLUMNS = ("real", "filtered", "imagined_mean", "imagined_sampled")
"""The return columns: the real task's, then the reward head's on the filtered real frames,
on the prior-mean future and on the sampled future."""

IMAGINED = ("imagined_mean", "imagined_sampled")


@dataclass(frozen=True)
class DreamFidelity:
    """One run's figures: ``to_json()`` is the layout of
    :func:`~keypoint_wm.envs.agents.dream_fidelity.evaluate_dream_fidelity`."""

    meta: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    cached: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {**self.meta, "tasks": self.tasks}


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two ``[R]`` vectors; None when one is constant or R < 2."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    value = float(np.corrcoef(a, b)[0, 1])
    return value if math.isfinite(value) else None


def summarise(
    rollouts: Rollouts,
    rewards: dict[str, np.ndarray],
    keypoints: dict[str, np.ndarray],
    context: int,
    horizons: tuple[int, ...],
    policies: tuple[str, ...],
) -> dict[str, Any]:
    """The per-task figures (module doc) from ``[R, H_max]`` rewards per column and
    ``[R, H_max, K, 3]`` keypoints per model pass."""
    names = np.asarray(rollouts.policies)
    # [R, H_max]: distance of imagined to filtered keypoints, mean over the K keypoints.
    errors = {
        c: np.linalg.norm(keypoints[c][..., :2] - keypoints["filtered"][..., :2], axis=-1).mean(-1)
        for c in IMAGINED
    }
    per_horizon: dict[str, Any] = {}
    per_rollout: dict[str, Any] = {}
    for h in horizons:
        totals = {c: rewards[c][:, :h].sum(1).astype(np.float64) for c in COLUMNS}
        per_horizon[str(h)] = {
            "correlation": {c: _pearson(totals[c], totals["real"]) for c in COLUMNS if c != "real"},
            "returns": {
                p: {c: float(totals[c][names == p].mean()) for c in COLUMNS} for p in policies
            },
            "keypoint_error": {
                p: {c: float(errors[c][names == p, :h].mean()) for c in IMAGINED} for p in policies
            },
        }
        per_rollout[str(h)] = {c: [float(v) for v in totals[c]] for c in COLUMNS}
    return {
        "policies": list(policies),
        "rollouts": len(names),
        "context": context,
        "horizons": per_horizon,
        "keypoint_error_per_step": {
            p: {c: [float(v) for v in errors[c][names == p].mean(0)] for c in IMAGINED}
            for p in policies
        },
        "per_rollout": {
            "policy": list(rollouts.policies),
            "task_seed": list(rollouts.task_seeds),
            "returns": per_rollout,
        },
    }
