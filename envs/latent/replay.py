"""``keypoint-wm bench replay``: a trained run's latent wrapper on recorded frames, no simulator.

:class:`ReplayEnv` is a real Gymnasium environment whose observations are the frames of a
dataset's episodes (the actions are ignored), so that :class:`LatentObservation` can load a
run on a device and step an environment where dm_control is not installed (a GPU machine
that holds only torch and this package's wheels). :func:`run_replay_check` passes the
wrapped environment through Gymnasium's env checker, then times its steps.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from keypoint_wm.data.episodes import iter_episode_files, load_episode

__all__ = ["ReplayEnv", "run_replay_check"]


class ReplayEnv(gymnasium.Env):
    """Replays the frames of the first ``episodes`` episode files of ``data`` as observations.

    ``reset`` picks one of them (seeded), each ``step`` shows its next frame and returns its
    recorded reward, and the episode ends on its last frame. The action space is a Box of
    ``action_size`` (at least 1) values in [-1, 1]; actions are ignored.
    """

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, data: str | Path, action_size: int = 0, episodes: int = 8) -> None:
        self.files = sorted(iter_episode_files(Path(data)))[:episodes]
        if not self.files:
            raise ValueError(f"{data}: no episode files to replay")
        first = load_episode(self.files[0])
        self.observation_space = spaces.Box(0, 255, first.image.shape[1:], np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (max(action_size, 1),), np.float32)
        self._frames, self._rewards, self._t = first.image, first.reward, 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        episode = load_episode(self.files[int(self.np_random.integers(len(self.files)))])
        self._frames, self._rewards, self._t = episode.image, episode.reward, 0
        return self._frames[0], {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        done = self._t >= len(self._frames) - 1
        return self._frames[self._t], float(self._rewards[self._t]), done, False, {}


def run_replay_check(
    run: str | Path, data: str | Path, device: str = "cpu", steps: int = 300, seed: int = 0
) -> dict[str, Any]:
    """Wrap a :class:`ReplayEnv` of ``data`` in :class:`LatentObservation` with the run's
    model on ``device``, pass Gymnasium's env checker, then step it ``steps`` times with
    random actions (resets included).

    Returns:
        ``device``, ``steps``, ``steps_per_second`` (of the wrapped env), ``observation_size``
        and ``finite`` (whether the last latent observation is finite); ``env_checker`` is
        ``"passed"`` (a failing check raises).
    """
    from gymnasium.utils.env_checker import check_env

    from keypoint_wm.envs.latent.wrapper import LatentObservation

    config = json.loads((Path(run) / "config.json").read_text())
    action_size = int(config["model"].get("action_size") or 0)
    env = LatentObservation(ReplayEnv(data, action_size), run, device=device)
    with warnings.catch_warnings():  # the wrapped env is what is checked, on purpose
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    start = time.perf_counter()
    for _ in range(steps):
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            observation, _ = env.reset()
    seconds = time.perf_counter() - start
    parts = observation.values() if isinstance(observation, dict) else [observation]
    flat = np.concatenate([np.ravel(part) for part in parts])
    return {
        "device": str(env.world_model.device),
        "steps": steps,
        "steps_per_second": steps / seconds,
        "observation_size": int(flat.size),
        "finite": bool(np.isfinite(flat).all()),
        "env_checker": "passed",
    }
