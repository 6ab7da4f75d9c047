"""Tiny Gymnasium environments of our own for the ``collect --env`` tests.

``KWMTest/Dot-v0``: a red square on grey in a letterboxed 40x48 frame (4-pixel black bars
at top and bottom), ``Discrete(4)`` actions that move it, a flat ``Box(2)`` observation
(its position), terminated when it leaves the field (so episodes end early) and truncated
by a ``TimeLimit`` of 25 steps. ``KWMTest/DictAction-v0`` has a ``Dict`` action space
(refused by the collector). Both are registered when this module is imported, so
``--env any_env_testing:KWMTest/Dot-v0`` works wherever ``tests/`` is importable.

Also :func:`tiny_env_run`: a tiny world model trained on ``collect --env`` data of
``InvertedPendulum-v5`` and the dot, and :func:`tiny_classic_run`: one on ``Pendulum-v1``
and ``CartPole-v1``, cached under pytest's session base temp directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

os.environ.setdefault("MUJOCO_GL", "egl")

DOT_ID = "KWMTest/Dot-v0"
DOT_ENV = f"any_env_testing:{DOT_ID}"
DICT_ID = "KWMTest/DictAction-v0"
MUJOCO_ENV = "InvertedPendulum-v5"
CLASSIC_ENVS = ("Pendulum-v1", "CartPole-v1")
BAR = 4  # letterbox bar height in pixels
_MOVES = np.array([[0, 1], [0, -1], [1, 0], [-1, 0]])


class DotEnv(gymnasium.Env):
    """A square moved by ``Discrete(4)`` actions on an 8x8 field; frames uint8 [48, 40, 3]."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, width: int = 40, height: int = 40):
        self.render_mode = render_mode
        self.width, self.height = width, height  # the field, bars come on top
        self.observation_space = spaces.Box(0.0, 7.0, (2,), np.float32)
        self.action_space = spaces.Discrete(4)
        self._pos = np.zeros(2, np.int64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos = self.np_random.integers(2, 6, size=2)
        return self._pos.astype(np.float32), {}

    def step(self, action: Any):
        self._pos = self._pos + _MOVES[int(action)]
        out = bool(np.any(self._pos < 0) or np.any(self._pos > 7))
        self._pos = np.clip(self._pos, 0, 7)
        return self._pos.astype(np.float32), float(self._pos[0]), out, False, {}

    def render(self) -> np.ndarray:
        frame = np.zeros((self.height + 2 * BAR, self.width, 3), np.uint8)
        frame[BAR:-BAR] = 128
        cell_y, cell_x = self.height // 8, self.width // 8
        y, x = BAR + int(self._pos[1]) * cell_y, int(self._pos[0]) * cell_x
        frame[y : y + cell_y, x : x + cell_x] = (220, 30, 30)
        return frame


class DictActionEnv(DotEnv):
    """The dot with a ``Dict`` action space, which the collector refuses."""

    def __init__(self, render_mode: str | None = None, **kwargs: Any):
        super().__init__(render_mode)
        self.action_space = spaces.Dict({"move": spaces.Discrete(4)})


for _id, _entry in ((DOT_ID, "DotEnv"), (DICT_ID, "DictActionEnv")):
    if _id not in gymnasium.registry:
        gymnasium.register(_id, entry_point=f"any_env_testing:{_entry}", max_episode_steps=25)


def tiny_env_data(base: Path) -> Path:
    """4 episodes (up to 21 frames) each of InvertedPendulum-v5 and the dot, 32x32, the
    letterbox cropped off (every env gets ``width``/``height`` 40)."""
    return _collect(
        Path(base) / "kwm-env-data",
        (MUJOCO_ENV, DOT_ENV),
        env_kwargs={"width": 40, "height": 40},
        crop=f"{BAR},{BAR},0,0",
        episodes=4,
        steps=20,
    )


def tiny_classic_data(base: Path) -> Path:
    """3 episodes (up to 13 frames) each of Pendulum-v1 (``Box(-2, 2)``) and CartPole-v1
    (``Discrete(2)``, whose pole may fall sooner), 32x32, the square centre of each render."""
    return _collect(
        Path(base) / "kwm-classic-data", CLASSIC_ENVS, crop="center", episodes=3, steps=12
    )


def _collect(out: Path, envs: tuple[str, ...], **settings: Any) -> Path:
    """``collect --env`` of ``envs`` into ``out`` at 32x32 (seed 3), unless it is there."""
    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset

    expected = settings["episodes"] * len(envs)
    if not (out / "manifest.json").exists() or len(list(out.glob("*/*.npz"))) < expected:
        config = CollectConfig(tasks=(), envs=envs, size=32, seed=3, out=out, **settings)
        collect_dataset(config, workers=1, progress=False)
    return out


def tiny_env_run(base: Path) -> Path:
    """A tiny action-conditioned world model trained for 2 steps on :func:`tiny_env_data`
    (4-frame windows, so that the early-ended episodes mostly count)."""
    return _train(tiny_env_data(base), Path(base) / "kwm-env-run")


def tiny_classic_run(base: Path) -> Path:
    """The same tiny world model trained for 2 steps on :func:`tiny_classic_data`."""
    return _train(tiny_classic_data(base), Path(base) / "kwm-classic-run")


def _train(data: Path, run: Path) -> Path:
    """A tiny action-conditioned world model (2 observed, 2 predicted steps) trained for 2
    steps on ``data`` into ``run``, unless it is there."""
    from kwm_testing import tiny_config

    from keypoint_wm.checkpoint import latest_checkpoint
    from keypoint_wm.train import train

    if latest_checkpoint(run) is None:
        config = tiny_config(
            2,
            preset="dmcs-cpu",
            **{"model.num_observed_steps": 2, "model.num_predicted_steps": 2},
        )
        train(config, data, run, progress=False)  # dmcs-cpu is action-conditioned
    return run
