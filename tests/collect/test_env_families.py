"""`keypoint-wm collect --env` on the Gymnasium families the package installs (tiny budgets).

Classic control (pygame-ce renders it): CartPole-v1 (``Discrete(2)``, stored one-hot; the
pole falls within a few dozen random steps, so episodes end early) and Pendulum-v1 (``Box``
in [-2, 2], stored in [-1, 1]). Each episode's ``state`` is the env's observation at the
time step its frame shows: replaying the stored actions from the same seed gives it back.
"""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium
import numpy as np
import pytest

from keypoint_wm.data.episodes import load_episode, read_manifest

pytestmark = pytest.mark.integration


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )


def replayed_states(env_id: str, seed: int, env_actions: list) -> np.ndarray:
    """The observations of ``env_id`` from ``reset(seed=seed)`` through ``env_actions``."""
    env = gymnasium.make(env_id)
    observation, _ = env.reset(seed=seed)
    states = [observation]
    for action in env_actions:
        states.append(env.step(action)[0])
    env.close()
    return np.asarray(states, np.float32)


def test_classic_control_collects_and_checks(tmp_path):
    out = tmp_path / "classic"
    done = cli("collect", "--env", "CartPole-v1", "--env", "Pendulum-v1", "--crop", "center",
               "--episodes", "3", "--steps", "40", "--size", "32", "--seed", "2",
               "--workers", "1", "--quiet", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "XDG_RUNTIME_DIR" not in done.stderr  # SDL renders headless without complaint
    check = cli("data", "check", str(out))
    assert check.returncode == 0, check.stdout + check.stderr

    tasks = read_manifest(out)["tasks"]
    assert tasks["CartPole-v1"]["action_size"] == 2 and tasks["Pendulum-v1"]["action_size"] == 1
    assert tasks["CartPole-v1"]["render_shape"] == [400, 600, 3]

    carts = [load_episode(p) for p in sorted((out / "CartPole-v1").glob("*.npz"))]
    assert len(carts) == 3 and any(e.num_frames < 41 for e in carts)  # the pole fell
    for episode in carts:
        assert episode.image.shape[1:] == (32, 32, 3) and episode.true_object_pos is None
        assert episode.action.shape == (episode.num_frames, 2)
        assert np.all(episode.action[0] == 0) and np.all(episode.action[1:].sum(axis=1) == 1)
        if episode.num_frames < 41:
            assert episode.metadata["ended"] == "terminated"
        choices = [int(i) for i in episode.action[1:].argmax(axis=1)]
        np.testing.assert_array_equal(
            episode.state, replayed_states("CartPole-v1", episode.metadata["seed"], choices)
        )
        # the frames move with the cart: not one image repeated
        assert len({frame.tobytes() for frame in episode.image}) > 1

    pendulums = [load_episode(p) for p in sorted((out / "Pendulum-v1").glob("*.npz"))]
    assert len(pendulums) == 3
    for episode in pendulums:
        assert episode.num_frames == 41 and "ended" not in episode.metadata  # 200-step limit
        assert episode.action.shape == (41, 1) and np.all(np.abs(episode.action) <= 1)
        assert episode.state.shape == (41, 3)  # cos, sin, angular velocity
        torques = [2.0 * a for a in episode.action[1:].astype(np.float64)]  # [-1, 1] -> [-2, 2]
        np.testing.assert_allclose(
            episode.state,
            replayed_states("Pendulum-v1", episode.metadata["seed"], torques),
            atol=1e-6,
        )
        assert episode.metadata["state_keys"] == [
            {"name": "observation", "start": 0, "stop": 3, "kind": "position"}
        ]
