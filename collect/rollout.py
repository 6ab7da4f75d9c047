"""One random-action episode, from a pixel environment to an :class:`Episode` in memory."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from keypoint_wm.collect.config import CollectError
from keypoint_wm.data.episodes import Episode


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the data, recorded in every episode's metadata."""
    versions = {}
    for name in ("keypoint-wm", "dm-control", "mujoco", "numpy"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def random_rollout(env: Any, steps: int, seed: int, metadata: dict[str, Any]) -> Episode:
    """Run ``steps`` uniform random actions from ``env.reset(seed=seed)``.

    Args:
        env: a :class:`keypoint_wm.envs.DMCPixelEnv` (pixels-only observations, float32 Box
            actions in [-1, 1], ``info["true_object_pos"]`` of shape [N, 2] and
            ``info["state"]`` of shape [D]).
        steps: agent steps; the episode holds ``steps + 1`` frames.
        seed: seeds both the environment and the action sampler.
        metadata: extra JSON-serialisable metadata stored with the episode.

    Returns:
        An episode aligned as in docs/design.md, "Episode files": ``action[t]`` led to
        ``image[t]`` and ``reward[t]`` came with it; ``action[0] = 0`` and ``reward[0] = 0``;
        ``state[t]`` is the physics state of the time step ``image[t]`` shows.

    Raises:
        RuntimeError: the environment ended before ``steps`` steps.
    """
    observation, info = env.reset(seed=seed)
    action_size = int(env.action_space.shape[0])
    rng = np.random.default_rng(seed)
    images = np.empty((steps + 1, *observation.shape), np.uint8)
    actions = np.zeros((steps + 1, action_size), np.float32)
    rewards = np.zeros((steps + 1,), np.float32)
    first_pos = np.asarray(info["true_object_pos"], np.float32)
    positions = np.empty((steps + 1, *first_pos.shape), np.float32)
    states = np.empty((steps + 1, len(info["state"])), np.float32)
    images[0], positions[0], states[0] = observation, first_pos, info["state"]
    for t in range(1, steps + 1):
        action = rng.uniform(-1.0, 1.0, size=action_size).astype(np.float32)
        observation, reward, terminated, truncated, info = env.step(action)
        images[t], actions[t], rewards[t] = observation, action, reward
        positions[t], states[t] = info["true_object_pos"], info["state"]
        if (terminated or truncated) and t < steps:
            raise CollectError(
                f"{metadata.get('task', 'environment')} ended after {t} of {steps} steps; "
                "lower --steps or raise --action-repeat"
            )
    return Episode(
        image=images,
        action=actions,
        reward=rewards,
        true_object_pos=positions,
        state=states,
        metadata={**metadata, "seed": seed, "steps": steps, "versions": package_versions()},
    )
