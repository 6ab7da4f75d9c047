"""Gymnasium side: DeepMind Control Suite pixel environments and their registration.

Importing this package registers ``KeypointWM/<domain>-<task>-v0`` for every task of the
suite (e.g. ``gymnasium.make("KeypointWM/cheetah-run-v0", size=64, action_repeat=2)``) and
imports neither dm_control nor an OpenGL backend; those load when the first environment is
built (``MUJOCO_GL`` defaults to ``egl``, see :mod:`keypoint_wm.envs.gl`).

It also registers ``KeypointWM/<domain>-<task>-latent-v0`` (the task seen through a trained
world model: ``gymnasium.make(id, run=PATH)``). The world-model wrappers load lazily, on
first access, each built from an env (or env collection) plus ``run=PATH``:

- :class:`LatentObservation` (Gymnasium wrapper), :class:`LatentVectorObservation`
  (Gymnasium vector wrapper), :class:`LatentVecEnv` (Stable-Baselines3 ``VecEnvWrapper``;
  SB3 is imported on first access to it), :class:`DreamEnv` (an env stepped by the world model's
  prior and a reward head).
"""

from __future__ import annotations

from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.envs.gl import RenderBackendError, ensure_gl_backend
from keypoint_wm.envs.registration import (
    ALL_TASKS,
    PAPER_TASKS,
    TASK_NAMES,
    env_id,
    latent_env_id,
    make_env,
    parse_task_name,
    register_envs,
)

register_envs()

_LAZY = {
    "LatentObservation": "keypoint_wm.envs.latent.wrapper",
    "make_latent_env": "keypoint_wm.envs.latent.wrapper",
    "LatentVectorObservation": "keypoint_wm.envs.latent.vector",
    "LatentVecEnv": "keypoint_wm.envs.latent.sb3",
    "DreamEnv": "keypoint_wm.envs.latent.dream",
    "LatentFilter": "keypoint_wm.envs.latent.online",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ALL_TASKS",
    "PAPER_TASKS",
    "TASK_NAMES",
    "DMCPixelEnv",
    "DreamEnv",
    "LatentFilter",
    "LatentObservation",
    "LatentVecEnv",
    "LatentVectorObservation",
    "RenderBackendError",
    "ensure_gl_backend",
    "env_id",
    "latent_env_id",
    "make_env",
    "make_latent_env",
    "parse_task_name",
    "register_envs",
]
