"""Gymnasium side: DeepMind Control Suite pixel environments and their registration.

Importing this package registers ``KeypointWM/<domain>-<task>-v0`` for every task of the
suite (e.g. ``gymnasium.make("KeypointWM/cheetah-run-v0", size=64, action_repeat=2)``) and
imports neither dm_control nor an OpenGL backend; those load when the first environment is
built (``MUJOCO_GL`` defaults to ``egl``, see :mod:`keypoint_wm.envs.gl`).
"""

from __future__ import annotations

from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.envs.gl import RenderBackendError, ensure_gl_backend
from keypoint_wm.envs.registration import (
    ALL_TASKS,
    PAPER_TASKS,
    TASK_NAMES,
    env_id,
    make_env,
    parse_task_name,
    register_envs,
)

register_envs()

__all__ = [
    "ALL_TASKS",
    "PAPER_TASKS",
    "TASK_NAMES",
    "DMCPixelEnv",
    "RenderBackendError",
    "ensure_gl_backend",
    "env_id",
    "make_env",
    "parse_task_name",
    "register_envs",
]
