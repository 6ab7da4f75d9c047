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


def _mean(values: np.ndarray) -> float | None:
    """The mean of ``values``, None when there are none."""
    return float(values.mean()) if values.size else None


def summarise(
    rollouts: Rollouts,
    rewards: dict[str, np.ndarray],
    keypoints: dict[str, np.ndarray],
    context: int,
    horizons: tuple[int, ...],
    policies: tuple[str, ...],
) -> dict[str, Any]:
    """The per-task figures (module doc) from ``[R, H_max]`` rewards per column and
    ``[R, H_max, K, 3]`` keypoints per model pass.

    Rollouts whose episode ended early are DROPPED where their padded frames would count
    (:class:`~keypoint_wm.envs.agents.fidelity_rollouts.Rollouts`): from horizon H's
    returns, correlations and keypoint errors when they lasted fewer than ``context - 1 +
    H`` agent steps (per horizon ``"rollouts"`` kept and ``"dropped"``, ``"policy_rollouts"``
    kept per policy; a policy none of whose rollouts lasted has null figures, and so has a
    correlation over fewer than 2), from the per-step keypoint error at the steps after
    their end, and their per-rollout returns at H are null. A real return is never summed
    over an episode's end: the model knows no episode ends, and its imagined return would
    be compared with a return cut short.
    """
    names = np.asarray(rollouts.policies)
    lengths = np.asarray(rollouts.lengths)
    # [R, H_max]: distance of imagined to filtered keypoints, mean over the K keypoints.
    errors = {
        c: np.linalg.norm(keypoints[c][..., :2] - keypoints["filtered"][..., :2], axis=-1).mean(-1)
        for c in IMAGINED
    }
    # [R, H_max]: frame context + i is a real frame of rollout r.
    real = lengths[:, None] >= context + np.arange(rewards["real"].shape[1])[None, :]
    per_horizon: dict[str, Any] = {}
    per_rollout: dict[str, Any] = {}
    for h in horizons:
        kept = real[:, h - 1]
        totals = {c: rewards[c][:, :h].sum(1).astype(np.float64) for c in COLUMNS}
        mine = {p: kept & (names == p) for p in policies}
        per_horizon[str(h)] = {
            "rollouts": int(kept.sum()),
            "dropped": int((~kept).sum()),
            "policy_rollouts": {p: int(mine[p].sum()) for p in policies},
            "correlation": {
                c: _pearson(totals[c][kept], totals["real"][kept]) for c in COLUMNS if c != "real"
            },
            "returns": {p: {c: _mean(totals[c][mine[p]]) for c in COLUMNS} for p in policies},
            "keypoint_error": {
                p: {c: _mean(errors[c][mine[p], :h]) for c in IMAGINED} for p in policies
            },
        }
        per_rollout[str(h)] = {
            c: [float(v) if k else None for v, k in zip(totals[c], kept, strict=True)]
            for c in COLUMNS
        }
    return {
        "policies": list(policies),
        "rollouts": len(names),
        "context": context,
        "horizons": per_horizon,
        "keypoint_error_per_step": {
            p: {c: _per_step(errors[c], real & (names == p)[:, None]) for c in IMAGINED}
            for p in policies
        },
        "per_rollout": {
            "policy": list(rollouts.policies),
            "task_seed": list(rollouts.task_seeds),
            "steps": [int(n) for n in lengths],
            "returns": per_rollout,
        },
    }


def _per_step(errors: np.ndarray, mask: np.ndarray) -> list[float | None]:
    """The mean of ``errors [R, H]`` over the rows ``mask [R, H]`` holds, per step."""
    return [_mean(errors[mask[:, i], i]) for i in range(errors.shape[1])]
