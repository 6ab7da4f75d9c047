"""The real environments and policies of ``keypoint-wm evaluate dream-fidelity``.

A task is a DMCS task (``"cartpole-balance"``: a :class:`~keypoint_wm.envs.dmc.DMCPixelEnv`
at the run's frame size and action repeat) or a Gymnasium id of the run's ``collect --env``
data (:class:`GymTask`: made with the data's ``--env-kwargs``, its rendered frames cropped
and area-resized as collected by :class:`~keypoint_wm.envs.gym_pixels.RenderedPixels`, whose
``reset`` restarts a MuJoCo renderer; stepped once per action). :func:`open_task_env` makes
either behind one interface, :class:`TaskEnv`.

Policies act in the MODEL's action units, what the data stored and the model reads
(:class:`~keypoint_wm.envs.gym_pixels.ActionUnits`): a DMCS task's are its own [-1, 1]; a
Gymnasium ``Box``'s are mapped onto its bounds for the env, a ``Discrete``'s are one-hot and
the env gets the index (:meth:`ActionUnits.to_env <keypoint_wm.envs.gym_pixels.ActionUnits
.to_env>`). :func:`scripted_policies` are a DMCS task's (the generic ones, and on cartpole a
PD controller on the true pole angle and its flipped twin); :func:`gym_policies` a
Gymnasium id's: the generic ones for a 1-D ``Box``, ``random`` and one constant
``action-<k>`` per action for a ``Discrete(n)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keypoint_wm.choices import DREAM_ACTION_POLICY
from keypoint_wm.data.frames import FrameCrop
from keypoint_wm.envs.gym_pixels import ActionUnits

__all__ = [
    "GymTask",
    "Policy",
    "TaskEnv",
    "generic_policies",
    "gym_policies",
    "open_task_env",
    "scripted_policies",
]

Policy = Callable[[Any, int, np.random.Generator], np.ndarray]
"""``(env, t, rng) -> action`` float32 ``[A]`` in the model's units, for agent step t (``env``:
the task's :class:`~keypoint_wm.envs.dmc.DMCPixelEnv`, or its Gymnasium env)."""


def generic_policies(size: int) -> dict[str, Policy]:
    """zero, plus (+1), minus (-1), uniform random and a sine, ``size`` action dimensions.

    >>> generic_policies(1)["sine"](None, 2, None)
    array([0.47942555], dtype=float32)
    """

    def const(value: float) -> Policy:
        return lambda env, t, rng: np.full(size, value, np.float32)

    return {
        "zero": const(0.0),
        "plus": const(1.0),
        "minus": const(-1.0),
        "random": lambda env, t, rng: rng.uniform(-1, 1, size).astype(np.float32),
        "sine": lambda env, t, rng: np.full(size, np.sin(t / 4.0), np.float32),
    }


def scripted_policies(task: str, size: int) -> dict[str, Policy]:
    """The :data:`~keypoint_wm.choices.DREAM_POLICIES` defined for the DMCS ``task``
    (``size``: its action dimensions A).

    >>> list(scripted_policies("reacher-easy", 2))
    ['zero', 'plus', 'minus', 'random', 'sine']
    >>> list(scripted_policies("cartpole-balance", 1))[-2:]
    ['pd', 'pd-flipped']
    """
    policies = generic_policies(size)
    if task.startswith("cartpole-"):

        def pd(sign: float) -> Policy:
            def act(env: Any, t: int, rng: np.random.Generator) -> np.ndarray:
                q, v = env.physics.named.data.qpos, env.physics.named.data.qvel
                u = 8.0 * q["hinge_1"][0] + 1.5 * v["hinge_1"][0]
                u += 0.5 * q["slider"][0] + 1.0 * v["slider"][0]
                return np.clip(np.full(size, sign * u, np.float32), -1, 1)

            return act

        policies.update({"pd": pd(1.0), "pd-flipped": pd(-1.0)})
    return policies


def gym_policies(units: ActionUnits) -> dict[str, Policy]:
    """A Gymnasium id's policies, in model units: :func:`generic_policies` for a 1-D ``Box``;
    for a ``Discrete(n)``, ``action-0`` .. ``action-<n-1>`` (that action at every step) and
    ``random`` (a uniform choice), each one-hot, as the data stored them.

    >>> from gymnasium import spaces
    >>> cart = gym_policies(ActionUnits.of(spaces.Discrete(2)))
    >>> list(cart), cart["action-1"](None, 0, None)
    (['action-0', 'action-1', 'random'], array([0., 1.], dtype=float32))
    """
    if not units.discrete:
        return generic_policies(units.size)

    def const(index: int) -> Policy:
        return lambda env, t, rng: units.one_hot(index)

    policies = {f"{DREAM_ACTION_POLICY}{k}": const(k) for k in range(units.size)}
    policies["random"] = lambda env, t, rng: units.one_hot(int(rng.integers(units.size)))
    return policies


@dataclass(frozen=True)
class GymTask:
    """A task that is a Gymnasium id, made as the run's ``collect --env`` data was.

    Attributes:
        env_id: the id (``ALE/Pong-v5``, ``module:ID``).
        env_kwargs: ``gymnasium.make``'s keyword arguments: the data's ``--env-kwargs``,
            updated by the command's.
        crop: the data's crop of the rendered frames (None: none).
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    crop: FrameCrop | None = None

    def to_json(self) -> dict[str, Any]:
        """What a cached result's settings record of it."""
        crop = None if self.crop is None else self.crop.to_json()
        return {"env_id": self.env_id, "env_kwargs": self.env_kwargs, "crop": crop}


class TaskEnv:
    """One task's real env for the rollouts, frames uint8 ``[S, S, 3]`` and actions in model
    units float32 ``[A]``.

    Attributes:
        env: the DMCS task's ``DMCPixelEnv``, or the Gymnasium id's env behind
            ``RenderedPixels`` (what the policies get).
        policies: the task's policies (:func:`scripted_policies`, :func:`gym_policies`).
        size: A, the task's action dimensions in model units.
        limit: agent steps after which its episodes are truncated (None: none).
        units: a Gymnasium id's mapping of model units to its actions (None: a DMCS task,
            whose actions are in model units).
    """

    def __init__(
        self,
        env: Any,
        policies: dict[str, Policy],
        size: int,
        limit: int | None,
        units: ActionUnits | None = None,
    ) -> None:
        self.env, self.policies, self.size, self.limit = env, policies, size, limit
        self.units = units

    def reset(self, seed: int) -> np.ndarray:
        """The initial frame of the episode of task seed ``seed``."""
        frame, _ = self.env.reset(seed=seed)
        return np.asarray(frame)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """``(frame, reward, ended)`` after ``action``; ``ended``: terminated or truncated."""
        for_env = action if self.units is None else self.units.to_env(action)
        frame, reward, terminated, truncated, _ = self.env.step(for_env)
        return np.asarray(frame), float(reward), bool(terminated or truncated)

    def close(self) -> None:
        self.env.close()


def open_task_env(
    task: str, gym: GymTask | None, *, image_size: int, action_repeat: int
) -> TaskEnv:
    """The real env of ``task`` (``gym``: it is that Gymnasium id; else a DMCS task).

    Raises:
        ValueError: the Gymnasium id cannot be made (the message names it), or its action
            space is no 1-D ``Box`` nor ``Discrete``.
    """
    if gym is None:
        from keypoint_wm.envs.dmc import DMCPixelEnv
        from keypoint_wm.envs.registration import parse_task_name

        domain, name = parse_task_name(task)
        dmc = DMCPixelEnv(domain, name, size=image_size, action_repeat=action_repeat)
        size = dmc.action_size
        return TaskEnv(dmc, scripted_policies(task, size), size, dmc.max_episode_steps)
    from keypoint_wm.envs.gym_pixels import RenderedPixels, make_render_env

    env = RenderedPixels(make_render_env(gym.env_id, gym.env_kwargs), image_size, gym.crop)
    try:
        units = ActionUnits.of(env.action_space)
    except ValueError:
        env.close()
        raise
    limit = env.spec.max_episode_steps if env.spec is not None else None
    return TaskEnv(env, gym_policies(units), units.size, limit, units)
