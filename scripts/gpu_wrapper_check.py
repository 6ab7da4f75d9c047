"""Part of scripts/gpu_check.sh: the latent wrapper loads a run on a GPU and steps an env.

dm_control is not needed: :class:`ReplayEnv` is a real Gymnasium environment whose
observations are the frames of one episode of the dataset. Passes Gymnasium's env checker,
then prints the wrapped env's steps per second.

    python3 scripts/gpu_wrapper_check.py RUN DATA [--device cuda] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env

from keypoint_wm.data.episodes import iter_episode_files, load_episode
from keypoint_wm.envs.latent.wrapper import LatentObservation


class ReplayEnv(gymnasium.Env):
    """Replays the frames of the dataset's episodes as observations (actions are ignored)."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, data: Path, action_size: int) -> None:
        self.files = sorted(iter_episode_files(data))[:8]
        first = load_episode(self.files[0]).image
        self.observation_space = spaces.Box(0, 255, first.shape[1:], np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (max(action_size, 1),), np.float32)
        self._frames, self._t = first, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self.files)))
        self._frames, self._t = load_episode(self.files[index]).image, 0
        return self._frames[0], {}

    def step(self, action):
        self._t += 1
        done = self._t >= len(self._frames) - 1
        return self._frames[self._t], 0.0, done, False, {}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("data")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--json")
    args = parser.parse_args()
    config = json.loads((Path(args.run) / "config.json").read_text())
    action_size = int(config["model"].get("action_size") or 0)
    env = LatentObservation(ReplayEnv(Path(args.data), action_size), args.run, device=args.device)
    check_env(env, skip_render_check=True)
    observation, _ = env.reset(seed=0)
    start = time.perf_counter()
    for _ in range(args.steps):
        observation, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            observation, _ = env.reset()
    seconds = time.perf_counter() - start
    flat = np.concatenate([np.ravel(v) for v in (observation.values()
                           if isinstance(observation, dict) else [observation])])  # fmt: skip
    result = {
        "device": str(env.world_model.device),
        "steps_per_second": args.steps / seconds,
        "observation_size": int(flat.size),
        "finite": bool(np.isfinite(flat).all()),
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
