"""A DeepMind Control Suite task with its true low-dimensional state as the observation.

:class:`StateEnv` is the "state" variant's environment (and the random policy's): the same
dm_control task, action mapping, action repeat and episode ends as
:class:`~keypoint_wm.envs.dmc.DMCPixelEnv`, but it renders nothing -- a 64x64 frame costs
about 30 times the physics of a cartpole step, so the state agent trains at the speed of
the physics.
"""

from __future__ import annotations

import math
from typing import Any, SupportsFloat

import gymnasium
import numpy as np
from gymnasium import spaces

from keypoint_wm.envs.dmc import ActionBounds, StateFlattener, reseed_task, step_repeated
from keypoint_wm.envs.gl import dm_control_suite
from keypoint_wm.envs.registration import parse_task_name

__all__ = ["StateEnv"]


class StateEnv(gymnasium.Env):
    """A suite task whose observation is dm_control's observation dict, flattened.

    Args:
        task: ``"domain-task"``, e.g. ``"cartpole-balance"``.
        action_repeat: physics control steps per agent step (rewards summed).
        time_limit: simulated seconds per episode (default: the task's own).

    Spaces:
        observation: ``Box(-inf, inf, (D,), float32)``: dm_control's observation flattened
            by :class:`~keypoint_wm.envs.dmc.StateFlattener` (e.g. cartpole's ``position``
            then ``velocity``), the vector the collector stores as ``state``.
        action: ``Box(-1, 1, (A,), float32)``, mapped linearly onto the task's bounds.

    Episodes end as in :class:`~keypoint_wm.envs.dmc.DMCPixelEnv`: dm_control's time limit
    gives ``truncated=True``, a task's own termination ``terminated=True``.
    ``action_size`` is A.
    ``reset(seed=s)`` starts the episode ``DMCPixelEnv.reset(seed=s)`` starts.
    """

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, task: str, *, action_repeat: int = 1, time_limit: float | None = None):
        if not isinstance(action_repeat, int) or action_repeat < 1:
            raise ValueError(f"action_repeat must be a positive int, got {action_repeat!r}")
        domain, name = parse_task_name(task)
        kwargs = {} if time_limit is None else {"time_limit": time_limit}
        self._env = dm_control_suite().load(domain, name, task_kwargs=kwargs)
        self.task = f"{domain}-{name}"
        self.action_repeat = action_repeat
        spec = self._env.action_spec()
        self._bounds = ActionBounds.from_spec(spec)
        self.action_size = int(math.prod(spec.shape))
        self.action_space = spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)
        self._flat = StateFlattener.from_spec(self._env.observation_spec(), domain)
        shape = (self._flat.size,)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=shape, dtype=np.float32)
        self._needs_reset = True

    @property
    def dm_env(self) -> Any:
        """The wrapped ``dm_control.rl.control.Environment`` (its physics and task)."""
        return self._env

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds the task's random state."""
        super().reset(seed=seed)
        reseed_task(self._env, seed)
        self._needs_reset = False
        return self._flat(self._env.reset().observation), {}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Repeat ``action`` for ``action_repeat`` control steps and sum the rewards."""
        if self._needs_reset:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        array = np.asarray(action, np.float64).reshape(self.action_space.shape)
        time_step, reward, terminated, truncated = step_repeated(
            self._env, self._bounds.scale(array), self.action_repeat
        )
        self._needs_reset = time_step.last()
        return self._flat(time_step.observation), reward, terminated, truncated, {}

    def close(self) -> None:
        """Free the physics. Safe to call twice."""
        if self._env is not None:
            self._env.physics.free()
            self._env = None
        super().close()
