"""The exact state of an agent's training environments, saved and restored by its checkpoint.

An agent unit is checkpointed between two rounds of updates
(:mod:`~keypoint_wm.envs.agents.checkpoints`), when every training environment is part-way
through an episode. :func:`env_state` captures each layer of the unit's ``VecEnv`` and
:func:`load_env_state` puts it back into freshly made environments of the same variant, so
that the next step is the one the killed process would have taken:

- ``DummyVecEnv``: the seeds and options of its next ``reset()`` (spent by then);
- SB3's ``Monitor``: the episode's rewards so far and its counters;
- a dm_control env (:class:`~keypoint_wm.envs.agents.state.StateEnv`,
  :class:`~keypoint_wm.envs.DMCPixelEnv`) behind :class:`ReplayableEpisode`: its episode is
  REPLAYED: the task's random state before the episode's reset, that reset's seed, and every
  action since. MuJoCo is deterministic, so the replay leaves the physics bitwise as it was
  -- positions, velocities, the constraint solver's warm start, and whatever the task changed
  in the model when the episode began (reacher's target) -- which a snapshot of
  ``physics.get_state()`` would not. Frames are rendered again on the way. The physics'
  integration state and the task's random state after the replay are checked against the
  saved ones (a mismatch is warned about: the resume is then not bitwise);
- a Gymnasium env of ``--tasks ID`` behind :class:`ReplayableGymEpisode`: its episode is
  replayed too, from its generator (``np_random``) before the episode's reset, that reset's
  seed and every action since: exact for an env whose episodes follow from those alone
  (Gymnasium MuJoCo, classic control); the observation the replay ends on is checked
  against a digest of the saved one (a mismatch is warned about);
- :class:`~keypoint_wm.envs.LatentVecEnv` (``latent``): its filter's tensors and noise
  generator and the current frames; the pixel envs under it as above;
- :class:`~keypoint_wm.envs.DreamEnv` (``dream``): its filter, imagined step count and start
  frame;
- every env's ``np_random`` (gymnasium's) and its action space's generator.

Everything is plain: nested dicts and lists of numbers and strings, NumPy arrays and torch
tensors, which the checkpoint writes as JSON and ``.npz``/``.pt`` files (nothing pickled).
An env of any other kind is refused (``TypeError``) rather than saved inexactly.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecTransposeImage

from keypoint_wm.envs.latent.dream import DreamEnv
from keypoint_wm.envs.latent.sb3 import LatentVecEnv

__all__ = [
    "ReplayableEpisode",
    "ReplayableGymEpisode",
    "env_state",
    "generator_state",
    "integration_state",
    "load_env_state",
    "restore_generator",
]

MONITOR_FIELDS = (
    "rewards",
    "needs_reset",
    "episode_returns",
    "episode_lengths",
    "episode_times",
    "total_steps",
)


def integration_state(physics: Any) -> np.ndarray:
    """float64 ``[N]``: MuJoCo's whole integration state of a dm_control ``physics`` (time,
    qpos, qvel, act, the solver's warm start, controls, applied forces, mocap, user data,
    plugin state): what the next step depends on."""
    # Imported here, where dm_control already runs: keypoint_wm.envs.gl picks the GL backend
    # before the first import of mujoco, which reads MUJOCO_GL.
    import mujoco

    return physics.get_state(int(mujoco.mjtState.mjSTATE_INTEGRATION))


def generator_state(generator: np.random.Generator | None) -> dict[str, Any] | None:
    """A NumPy ``Generator``'s bit generator state (a dict of ints; MT19937's holds an
    array), None for None."""
    return None if generator is None else dict(generator.bit_generator.state)


def restore_generator(
    generator: np.random.Generator | None, state: dict[str, Any]
) -> np.random.Generator:
    """``generator`` set to a :func:`generator_state` (kept as the same object when its kind
    fits, so that whoever shares it sees the change), or a new ``Generator`` in that state."""
    kind = state["bit_generator"]
    if generator is None or generator.bit_generator.state["bit_generator"] != kind:
        generator = np.random.Generator(getattr(np.random, kind)())
    generator.bit_generator.state = state
    return generator


class ReplayableEpisode(gymnasium.Wrapper):
    """Records a dm_control env's episode in progress so that a checkpoint restores it exactly.

    Wraps an env with a ``dm_env`` property (the ``dm_control.rl.control.Environment``:
    :class:`~keypoint_wm.envs.agents.state.StateEnv`, :class:`~keypoint_wm.envs.DMCPixelEnv`)
    that takes its actions as float64 values (both do). ``reset`` notes the task's random
    state and the seed, ``step`` each action (float64 ``[A]``); :meth:`episode_state` gives
    them with the physics state they led to and :meth:`restore_episode` replays them.
    Observations, rewards and episode ends pass through unchanged.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self._start: dict[str, Any] | None = None
        self._actions: list[np.ndarray] = []

    @property
    def dm_env(self) -> Any:
        """The wrapped env's ``dm_control.rl.control.Environment``."""
        return self.env.unwrapped.dm_env  # type: ignore[attr-defined]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if options:
            raise ValueError("a ReplayableEpisode's env takes no reset options")
        random = self.dm_env.task.random.get_state(legacy=False)
        self._start = {"seed": None if seed is None else int(seed), "random": random}
        self._actions = []
        return self.env.reset(seed=seed)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        self._actions.append(np.array(action, dtype=np.float64).reshape(-1))
        return self.env.step(action)

    def episode_state(self) -> dict[str, Any]:
        """``start`` (the reset's ``seed`` and the task's ``random`` state before it; None
        before the first reset), ``actions`` (float64 ``[T, A]``, the episode's so far),
        ``physics`` (float64, MuJoCo's integration state now) and ``random`` (the task's
        random state now): the last two to check a replay by."""
        size = int(np.prod(self.action_space.shape or (0,)))
        actions = np.stack(self._actions) if self._actions else np.zeros((0, size))
        return {
            "start": self._start,
            "actions": actions,
            "physics": integration_state(self.dm_env.physics),
            "random": self.dm_env.task.random.get_state(legacy=False),
        }

    def restore_episode(self, state: dict[str, Any]) -> None:
        """Replay the episode of an :meth:`episode_state` on this (fresh) env: reset from the
        saved random state and seed, then step each action. Warns when the physics or the
        task's random state end elsewhere than they were saved."""
        start = state["start"]
        if start is None:
            return
        self.dm_env.task.random.set_state(start["random"])
        self.reset(seed=start["seed"])
        for action in np.asarray(state["actions"], dtype=np.float64):
            self.step(action)
        physics = integration_state(self.dm_env.physics)
        random = self.dm_env.task.random.get_state(legacy=False)
        same_random = np.array_equal(random["state"]["key"], state["random"]["state"]["key"]) and (
            int(random["state"]["pos"]) == int(state["random"]["state"]["pos"])
        )
        if not (np.array_equal(physics, np.asarray(state["physics"])) and same_random):
            warnings.warn(
                f"{self.env}: the replayed episode ({len(state['actions'])} steps) ended "
                "elsewhere than when its checkpoint was written (another MuJoCo build?); the "
                "resumed unit is not bitwise the one never stopped",
                stacklevel=2,
            )


class ReplayableGymEpisode(gymnasium.Wrapper):
    """Records a Gymnasium env's episode in progress so that a checkpoint restores it.

    The counterpart of :class:`ReplayableEpisode` for an env of a Gymnasium id (any action
    space of :class:`~keypoint_wm.envs.gym_pixels.ActionUnits`): ``reset`` notes the env's
    ``np_random`` state and the seed, ``step`` each action (float64 ``[A]``: a ``Box``'s
    values, a ``Discrete``'s index). :meth:`restore_episode` replays them on a fresh env and
    checks the observation it ends on. Observations, rewards and episode ends pass through.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self._start: dict[str, Any] | None = None
        self._actions: list[np.ndarray] = []
        self._digest = ""

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if options:
            raise ValueError("a ReplayableGymEpisode's env takes no reset options")
        random = generator_state(self.env.unwrapped._np_random)
        self._start = {"seed": None if seed is None else int(seed), "random": random}
        self._actions = []
        observation, info = self.env.reset(seed=seed)
        self._digest = _digest(observation)
        return observation, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        self._actions.append(np.array(action, dtype=np.float64).reshape(-1))
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._digest = _digest(observation)
        return observation, reward, terminated, truncated, info

    def episode_state(self) -> dict[str, Any]:
        """``start`` (the reset's ``seed`` and the ``np_random`` state before it; None before
        the first reset), ``actions`` (float64 ``[T, A]``, the episode's so far) and
        ``observation`` (a digest of the current one, to check a replay by)."""
        size = int(np.prod(self.action_space.shape or (1,)))
        actions = np.stack(self._actions) if self._actions else np.zeros((0, size))
        return {"start": self._start, "actions": actions, "observation": self._digest}

    def restore_episode(self, state: dict[str, Any]) -> None:
        """Replay the episode of an :meth:`episode_state` on this (fresh) env; warns when it
        ends on another observation than the saved one."""
        start = state["start"]
        if start is None:
            return
        base = self.env.unwrapped
        if start["random"] is not None:
            base._np_random = restore_generator(base._np_random, start["random"])
        self.reset(seed=start["seed"])
        space = self.action_space
        for values in np.asarray(state["actions"], dtype=np.float64):
            if isinstance(space, gymnasium.spaces.Discrete):
                self.step(np.int64(values[0]))
            else:
                self.step(values.reshape(space.shape).astype(space.dtype))
        if self._digest != state["observation"]:
            warnings.warn(
                f"{self.env}: the replayed episode ({len(state['actions'])} steps) ended on "
                "another observation than when its checkpoint was written (an env whose "
                "episodes depend on more than its seed and np_random?); the resumed unit is "
                "not bitwise the one never stopped",
                stacklevel=2,
            )


def _digest(observation: Any) -> str:
    """A SHA-256 of an observation's bytes (hex)."""
    return hashlib.sha256(np.ascontiguousarray(observation).tobytes()).hexdigest()


REPLAYABLE = (ReplayableEpisode, ReplayableGymEpisode)


def env_state(venv: VecEnv) -> dict[str, Any]:
    """The state of an agent's ``VecEnv`` between two steps (module doc); plain values.

    Raises:
        TypeError: a layer this module cannot save exactly.
    """
    if isinstance(venv, LatentVecEnv):
        return {"latent": venv.episode_state(), "inner": env_state(venv.venv)}
    if isinstance(venv, VecTransposeImage):
        return {"transpose": True, "inner": env_state(venv.venv)}
    if isinstance(venv, DummyVecEnv):
        return {
            "seeds": list(venv._seeds),
            "options": list(venv._options),
            "envs": [_gym_env_state(env) for env in venv.envs],
        }
    raise TypeError(f"cannot save the state of a {type(venv).__name__} exactly")


def load_env_state(venv: VecEnv, state: dict[str, Any]) -> None:
    """Put an :func:`env_state` back into ``venv``, made as the saved one was but never reset.

    Raises:
        ValueError: ``state`` is of another arrangement of envs.
        TypeError: as :func:`env_state`.
    """
    if isinstance(venv, LatentVecEnv):
        _expect("latent" in state, venv)
        load_env_state(venv.venv, state["inner"])
        venv.restore_episode(state["latent"])
    elif isinstance(venv, VecTransposeImage):
        _expect("transpose" in state, venv)
        load_env_state(venv.venv, state["inner"])
    elif isinstance(venv, DummyVecEnv):
        _expect("envs" in state and len(state["envs"]) == venv.num_envs, venv)
        for env, saved in zip(venv.envs, state["envs"], strict=True):
            _load_gym_env_state(env, saved)
        venv._seeds = list(state["seeds"])
        venv._options = [dict(options) for options in state["options"]]
    else:
        raise TypeError(f"cannot restore the state of a {type(venv).__name__} exactly")


def _expect(fits: bool, venv: VecEnv) -> None:
    if not fits:
        raise ValueError(f"the saved envs do not fit this {type(venv).__name__}")


def _gym_env_state(env: gymnasium.Env) -> dict[str, Any]:
    """One env of a ``DummyVecEnv``: each wrapper layer, outside in, and its RNGs."""
    layers: list[dict[str, Any]] = []
    layer: Any = env
    while True:
        if isinstance(layer, Monitor):
            layers.append({"monitor": {name: getattr(layer, name) for name in MONITOR_FIELDS}})
        elif isinstance(layer, REPLAYABLE):
            layers.append({"replay": layer.episode_state()})
            break
        elif isinstance(layer, DreamEnv):
            layers.append({"dream": layer.episode_state()})
            break
        else:
            raise TypeError(f"cannot save the state of a {type(layer).__name__} exactly")
        layer = layer.env
    return {
        "layers": layers,
        "np_random": generator_state(env.unwrapped._np_random),
        "action_space": generator_state(env.action_space._np_random),
    }


def _load_gym_env_state(env: gymnasium.Env, state: dict[str, Any]) -> None:
    layer: Any = env
    for saved in state["layers"]:
        if isinstance(layer, Monitor) and "monitor" in saved:
            for name in MONITOR_FIELDS:
                value = saved["monitor"][name]
                setattr(layer, name, list(value) if isinstance(value, list) else value)
        elif isinstance(layer, REPLAYABLE) and "replay" in saved:
            layer.restore_episode(saved["replay"])
        elif isinstance(layer, DreamEnv) and "dream" in saved:
            layer.restore_episode(saved["dream"])
        else:
            raise ValueError(f"the saved env {list(saved)} does not fit this {layer}")
        layer = getattr(layer, "env", None)
    base, space = env.unwrapped, env.action_space
    if state["np_random"] is not None:
        base._np_random = restore_generator(base._np_random, state["np_random"])
    if state["action_space"] is not None:
        space._np_random = restore_generator(space._np_random, state["action_space"])
