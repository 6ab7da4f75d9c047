"""`keypoint-wm collect --env` on the Gymnasium families the package installs (tiny budgets).

Classic control (pygame-ce renders it): CartPole-v1 (``Discrete(2)``, stored one-hot; the
pole falls within a few dozen random steps, so episodes end early) and Pendulum-v1 (``Box``
in [-2, 2], stored in [-1, 1]). Each episode's ``state`` is the env's observation at the
time step its frame shows: replaying the stored actions from the same seed gives it back.

Atari through ale-py (its wheel ships the ROMs): ``ALE/Pong-v5``, whose ``state`` is the
RAM of each frame's time step: the ball and the paddle drawn in a frame sit at a fixed
offset from the RAM bytes that hold them in that step.
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


# ----------------------------------------------------------------------------- Atari
PONG = "ALE/Pong-v5"
BALL, PLAYER = (236, 236, 236), (92, 186, 92)  # Pong's colours, in its field (rows 34-193)
PADDLE_ROWS = 16  # the player's paddle, whole


def pong_replay(seed: int, choices: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Full-size frames uint8 [T, 210, 160, 3] and RAM [T, 128] of Pong from ``seed``."""
    from keypoint_wm.envs.gym_pixels import make_render_env

    env = make_render_env(PONG)
    env.reset(seed=seed)
    frames, rams = [env.render()], [env.unwrapped.ale.getRAM().copy()]
    for choice in choices:
        env.step(choice)
        frames.append(env.render())
        rams.append(env.unwrapped.ale.getRAM().copy())
    env.close()
    return np.asarray(frames), np.asarray(rams)


def centre(frame: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float, int] | None:
    """The mean (x, y) in pixels of ``colour`` in Pong's field and the rows it spans, None
    where it is absent."""
    ys, xs = np.nonzero(np.all(frame[34:194] == colour, axis=-1))
    if len(xs) == 0:
        return None
    return float(xs.mean()), float(ys.mean()) + 34, int(ys.max() - ys.min() + 1)


def test_atari_collects_ram_beside_its_frames(tmp_path):
    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.data.frames import fit_frames
    from keypoint_wm.envs.gym_state import ATARI_RAM_BYTES

    out = tmp_path / "pong"
    done = cli("collect", "--env", PONG, "--episodes", "2", "--steps", "40", "--size", "32",
               "--seed", "1", "--workers", "1", "--quiet", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "A.L.E" not in done.stderr  # the emulator's banner is quieted
    assert cli("data", "check", str(out)).returncode == 0
    assert read_manifest(out)["tasks"]["ALE-Pong-v5"]["action_size"] == 6

    ram_bytes = ATARI_RAM_BYTES["pong"]
    seen_ball = 0
    for path in sorted((out / "ALE-Pong-v5").glob("*.npz")):
        episode = load_episode(path)
        assert episode.num_frames == 41 and episode.image.shape[1:] == (32, 32, 3)
        assert episode.state.shape == (41, 128) and episode.action.shape == (41, 6)
        assert np.all(episode.state == episode.state.round()) and episode.state.max() <= 255
        metadata = episode.metadata
        assert metadata["state_keys"] == [
            {"name": "ram", "start": 0, "stop": 128, "kind": "position"}
        ]
        assert metadata["ram_bytes"] == ram_bytes and "ale-py" in metadata["versions"]

        # the stored frames and RAM are those of the same time steps of a replay ...
        choices = [int(i) for i in episode.action[1:].argmax(axis=1)]
        frames, rams = pong_replay(metadata["seed"], choices)
        np.testing.assert_array_equal(episode.state, rams.astype(np.float32))
        np.testing.assert_array_equal(episode.image, fit_frames(frames, 32))
        # ... where the RAM changes when the frame does ...
        for t in range(1, 41):
            if not np.array_equal(frames[t], frames[t - 1]):
                assert not np.array_equal(rams[t], rams[t - 1]), t
        # ... and the ball and paddle drawn are where the RAM of that step puts them
        balls, paddles = set(), set()
        for frame, ram in zip(frames, rams, strict=True):
            ball, player = centre(frame, BALL), centre(frame, PLAYER)
            if ball is not None:
                seen_ball += 1
                balls.add((round(ball[0] - ram[ram_bytes["ball_x"]]),
                           round(ball[1] - ram[ram_bytes["ball_y"]])))  # fmt: skip
            if player is not None and player[2] == PADDLE_ROWS:  # not cut by the field's edge
                paddles.add(round(player[1] - ram[ram_bytes["player_y"]]))
        assert len(balls) <= 1 and len(paddles) == 1, (balls, paddles)

    assert seen_ball >= 10  # the ball was in play for a good part of the steps

    # the same seed gives the same bytes (the sticky actions are seeded too)
    again = tmp_path / "again"
    config = CollectConfig(tasks=(), envs=(PONG,), episodes=2, steps=40, size=32, seed=1, out=again)
    collect_dataset(config, workers=1, progress=False)
    for path in sorted((out / "ALE-Pong-v5").glob("*.npz")):
        assert (again / "ALE-Pong-v5" / path.name).read_bytes() == path.read_bytes()


def test_unknown_atari_game_is_one_line_naming_it(tmp_path):
    from keypoint_wm.collect.config import CollectConfig, CollectError
    from keypoint_wm.collect.runner import collect_dataset

    config = CollectConfig(tasks=(), envs=("ALE/NoSuchGame-v5",), out=tmp_path / "none")
    with pytest.raises(CollectError, match="--env ALE/NoSuchGame-v5: .*doesn't exist") as caught:
        collect_dataset(config, workers=1, progress=False)
    assert "\n" not in str(caught.value) and not (tmp_path / "none").exists()
