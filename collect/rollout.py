"""One random-action episode, from a pixel environment to an :class:`Episode` in memory."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from keypoint_wm.collect.config import CollectError
from keypoint_wm.data.episodes import Episode


def package_versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Versions of the packages that shape the data, recorded in every episode's metadata
    (``extra``: more packages, e.g. ``("gymnasium",)`` for ``--env`` episodes)."""
    versions = {}
    for name in ("keypoint-wm", "dm-control", "mujoco", "numpy", *extra):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _info_state(observation: Any, info: dict[str, Any]) -> np.ndarray:
    return np.asarray(info["state"], np.float32)


def random_rollout(
    env: Any,
    steps: int,
    seed: int,
    metadata: dict[str, Any],
    *,
    frame: Callable[[Any], np.ndarray] | None = None,
    state: Callable[[Any, dict[str, Any]], np.ndarray] | None = _info_state,
    may_end: bool = False,
    versions: tuple[str, ...] = (),
) -> Episode:
    """Run up to ``steps`` uniform random actions from ``env.reset(seed=seed)``.

    Args:
        env: a pixel environment; by default a :class:`keypoint_wm.envs.DMCPixelEnv`
            (pixels-only observations, float32 Box actions in [-1, 1],
            ``info["true_object_pos"]`` of shape [N, 2] and ``info["state"]`` of shape [D]).
            Its action space is sampled by :class:`~keypoint_wm.envs.gym_pixels.RandomActions`
            (1-D Box or Discrete). ``true_object_pos`` is stored when the first ``info``
            has it.
        steps: agent steps; the episode holds ``steps + 1`` frames (fewer if it ends early).
        seed: seeds both the environment and the action sampler.
        metadata: extra JSON-serialisable metadata stored with the episode.
        frame: the frame of the current step from the observation (default: the
            observation itself), uint8 ``[H, W, 3]``.
        state: the state vector float32 ``[D]`` from (observation, info); None stores none.
        may_end: an episode that terminates or is truncated before ``steps`` is kept with
            its own length (metadata ``"ended"``: ``"terminated"`` or ``"truncated"``)
            instead of being an error.
        versions: more packages whose versions go into the metadata.

    Returns:
        An episode aligned as in docs/design.md, "Episode files": ``action[t]`` led to
        ``image[t]`` and ``reward[t]`` came with it; ``action[0] = 0`` and ``reward[0] = 0``;
        ``state[t]`` is the state of the time step ``image[t]`` shows.

    Raises:
        CollectError: the environment ended before ``steps`` steps and ``may_end`` is False.
    """
    from keypoint_wm.envs.gym_pixels import RandomActions

    observation, info = env.reset(seed=seed)
    see = frame or np.asarray
    sampler = RandomActions(env.action_space, np.random.default_rng(seed))
    first_image = see(observation)
    first_state = None if state is None else state(observation, info)
    images = np.empty((steps + 1, *first_image.shape), np.uint8)
    actions = np.zeros((steps + 1, sampler.size), np.float32)
    rewards = np.zeros((steps + 1,), np.float32)
    has_pos = "true_object_pos" in info
    first_pos = np.asarray(info["true_object_pos"] if has_pos else np.zeros((0, 2)), np.float32)
    positions = np.empty((steps + 1, *first_pos.shape), np.float32)
    states = np.empty((steps + 1, 0 if first_state is None else len(first_state)), np.float32)
    images[0], positions[0] = first_image, first_pos
    if first_state is not None:
        states[0] = first_state
    length, ended = steps + 1, None
    for t in range(1, steps + 1):
        stored, action = sampler.sample()
        observation, reward, terminated, truncated, info = env.step(action)
        images[t], actions[t], rewards[t] = see(observation), stored, reward
        if has_pos:
            positions[t] = info["true_object_pos"]
        if state is not None:
            states[t] = state(observation, info)
        if (terminated or truncated) and t < steps:
            if not may_end:
                raise CollectError(
                    f"{metadata.get('task', 'environment')} ended after {t} of {steps} steps; "
                    "lower --steps or raise --action-repeat"
                )
            length, ended = t + 1, "terminated" if terminated else "truncated"
            break
    extra = {} if ended is None else {"ended": ended}
    return Episode(
        image=images[:length],
        action=actions[:length],
        reward=rewards[:length],
        true_object_pos=positions[:length] if has_pos else None,
        state=None if state is None else states[:length],
        metadata={
            **metadata,
            **extra,
            "seed": seed,
            "steps": steps,
            "versions": package_versions(versions),
        },
    )
