"""DMCPixelEnv: spaces, seeding, action mapping, episode ends, rendering, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium import spaces

from keypoint_wm.envs import DMCPixelEnv


@pytest.fixture
def cartpole():
    env = DMCPixelEnv("cartpole", "balance", size=16)
    yield env
    env.close()


def _rollout(env, seed, steps, action_seed=0):
    rng = np.random.default_rng(action_seed)
    frames, rewards, positions = [], [], []
    observation, info = env.reset(seed=seed)
    frames.append(observation)
    positions.append(info["true_object_pos"])
    for _ in range(steps):
        observation, reward, _, _, info = env.step(rng.uniform(-1, 1, env.action_size))
        frames.append(observation)
        rewards.append(reward)
        positions.append(info["true_object_pos"])
    return np.stack(frames), np.array(rewards), np.stack(positions)


def test_spaces_and_properties(cartpole):
    assert cartpole.observation_space == spaces.Box(0, 255, (16, 16, 3), np.uint8)
    assert cartpole.action_space == spaces.Box(-1.0, 1.0, (1,), np.float32)
    assert (cartpole.domain, cartpole.task, cartpole.action_size) == ("cartpole", "balance", 1)
    assert cartpole.object_names == ("cart", "pole_1")
    assert cartpole.image_size == (16, 16)
    assert cartpole.max_episode_steps == 1000
    assert cartpole.physics.model.nbody == 3


def test_rectangular_size():
    env = DMCPixelEnv("reacher", "easy", size=(12, 20))
    try:
        observation, info = env.reset(seed=0)
        assert observation.shape == (12, 20, 3)
        assert info["true_object_pos"].shape == (3, 2)
    finally:
        env.close()


def test_same_seed_same_episode():
    env_a = DMCPixelEnv("cheetah", "run", size=16)
    env_b = DMCPixelEnv("cheetah", "run", size=16)
    try:
        first = _rollout(env_a, seed=3, steps=8)
        # Another seed in between, then the same seed again on the same env.
        _rollout(env_a, seed=4, steps=2)
        again = _rollout(env_a, seed=3, steps=8)
        other_env = _rollout(env_b, seed=3, steps=8)
        different = _rollout(env_b, seed=5, steps=8)
    finally:
        env_a.close()
        env_b.close()
    for run in (again, other_env):
        for expected, actual in zip(first, run, strict=True):
            np.testing.assert_array_equal(expected, actual)
    assert not np.array_equal(first[2], different[2])  # initial state depends on the seed


def test_seed_reproduces_suite_episode():
    from dm_control import suite

    env = DMCPixelEnv("walker", "walk", size=16)
    try:
        env.reset(seed=11)
        reference = suite.load("walker", "walk", task_kwargs={"random": 11})
        reference.reset()
        np.testing.assert_array_equal(env.physics.get_state(), reference.physics.get_state())
    finally:
        env.close()


def test_reset_without_seed_continues_the_stream():
    env = DMCPixelEnv("cartpole", "swingup", size=8)
    try:
        env.reset(seed=0)
        first = env.physics.get_state().copy()
        env.reset()
        second = env.physics.get_state().copy()
        env.reset(seed=0)
        np.testing.assert_array_equal(env.physics.get_state(), first)
        env.reset()
        np.testing.assert_array_equal(env.physics.get_state(), second)
        assert not np.array_equal(first, second)
    finally:
        env.close()


def test_large_seed_is_accepted(cartpole):
    observation, _ = cartpole.reset(seed=2**40 + 7)
    again, _ = cartpole.reset(seed=2**40 + 7)
    np.testing.assert_array_equal(observation, again)


def test_action_mapping_onto_spec_bounds():
    # quadruped's actuators have asymmetric bounds (up to 1.1).
    env = DMCPixelEnv("quadruped", "walk", size=8)
    try:
        spec = env.dm_env.action_spec()
        low, high = spec.minimum, spec.maximum
        np.testing.assert_allclose(env.scale_action(-np.ones(env.action_size)), low)
        np.testing.assert_allclose(env.scale_action(np.ones(env.action_size)), high)
        np.testing.assert_allclose(env.scale_action(np.zeros(env.action_size)), (low + high) / 2)
        np.testing.assert_allclose(env.scale_action(np.full(env.action_size, 5.0)), high)
        env.reset(seed=0)
        action = np.linspace(-1, 1, env.action_size)
        env.step(action)
        np.testing.assert_allclose(env.physics.data.ctrl, low + (action + 1) / 2 * (high - low))
        with pytest.raises(ValueError, match="shape"):
            env.scale_action(np.zeros(env.action_size + 1))
    finally:
        env.close()


def test_unbounded_actions_pass_through():
    env = DMCPixelEnv("lqr", "lqr_2_1", size=8)
    try:
        assert env.max_episode_steps is None  # lqr has no time limit
        np.testing.assert_allclose(env.scale_action([0.3]), [0.3])
    finally:
        env.close()


def test_action_repeat_sums_rewards_and_steps_physics():
    env_1 = DMCPixelEnv("cartpole", "balance", size=8)
    env_3 = DMCPixelEnv("cartpole", "balance", size=8, action_repeat=3)
    try:
        env_1.reset(seed=2)
        env_3.reset(seed=2)
        total = sum(env_1.step([0.5])[1] for _ in range(3))
        _, reward, *_ = env_3.step([0.5])
        assert reward == pytest.approx(total)
        np.testing.assert_array_equal(env_1.physics.get_state(), env_3.physics.get_state())
        assert env_3.control_timestep == pytest.approx(3 * env_1.control_timestep)
    finally:
        env_1.close()
        env_3.close()


@pytest.mark.parametrize("action_repeat", [1, 3])
def test_time_limit_truncates(action_repeat):
    # 0.1 s at cartpole's 0.01 s control step: 10 control steps.
    env = DMCPixelEnv(
        "cartpole",
        "balance",
        size=8,
        action_repeat=action_repeat,
        task_kwargs={"time_limit": 0.1},
    )
    try:
        assert env.max_episode_steps == math.ceil(10 / action_repeat)
        env.reset(seed=0)
        ends = []
        for _ in range(env.max_episode_steps):
            _, _, terminated, truncated, _ = env.step([0.0])
            ends.append((terminated, truncated))
        assert ends[-1] == (False, True)
        assert all(end == (False, False) for end in ends[:-1])
        with pytest.raises(RuntimeError, match="reset"):
            env.step([0.0])
        env.reset()
        _, _, terminated, truncated, _ = env.step([0.0])
        assert not terminated and not truncated
    finally:
        env.close()


def test_termination_from_discount_zero():
    env = DMCPixelEnv("cartpole", "balance", size=8)
    try:
        env.reset(seed=0)
        env.dm_env.task.get_termination = lambda physics: 0.0
        _, _, terminated, truncated, _ = env.step([0.0])
        assert terminated and not truncated
    finally:
        env.close()


def test_dict_observation():
    env = DMCPixelEnv("walker", "walk", size=16, pixels_only=False)
    try:
        space = env.observation_space
        assert isinstance(space, spaces.Dict)
        assert list(space.spaces) == ["pixels", "orientations", "height", "velocity"]
        assert space["pixels"] == spaces.Box(0, 255, (16, 16, 3), np.uint8)
        assert space["height"].shape == (1,)  # a scalar, flattened
        assert space["orientations"].shape == (14,)
        assert space["velocity"].shape == (9,)
        observation, _ = env.reset(seed=0)
        assert space.contains(observation)
        observation, *_ = env.step(np.zeros(env.action_size))
        assert space.contains(observation)
        assert observation["height"][0] == pytest.approx(env.physics.torso_height())
    finally:
        env.close()


def test_render_fps_and_render():
    env = DMCPixelEnv("walker", "walk", size=16, action_repeat=2, render_mode="rgb_array")
    try:
        # walker's control step is 0.025 s: 40 Hz, 20 Hz with action repeat 2.
        assert env.metadata["render_fps"] == pytest.approx(20.0)
        assert env.metadata["render_modes"] == ["rgb_array"]
        assert DMCPixelEnv.metadata["render_fps"] is None  # per instance only
        observation, _ = env.reset(seed=0)
        np.testing.assert_array_equal(env.render(), observation)
        observation, *_ = env.step(np.zeros(env.action_size))
        frame = env.render()
        np.testing.assert_array_equal(frame, observation)
        frame[:] = 0  # the caller owns the returned array
        np.testing.assert_array_equal(env.render(), observation)
    finally:
        env.close()


def test_render_without_mode_returns_none(cartpole):
    cartpole.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert cartpole.render() is None


def test_frames_show_motion(cartpole):
    frames, _, _ = _rollout(cartpole, seed=0, steps=30)
    assert frames.std() > 10  # not a blank image
    assert np.abs(frames[0].astype(int) - frames[-1]).mean() > 0.1


def test_close_is_idempotent():
    env = DMCPixelEnv("pendulum", "swingup", size=8)
    env.reset(seed=0)
    env.close()
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset(seed=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"domain": "cheeta", "task": "run"}, "unknown domain .*cheetah"),
        ({"domain": "cheetah", "task": "walk"}, "unknown task .*run"),
        ({"domain": "cheetah", "task": "run", "size": 0}, "size must be positive"),
        ({"domain": "cheetah", "task": "run", "size": (8, -1)}, "size must be positive"),
        ({"domain": "cheetah", "task": "run", "size": 8.5}, "size must be"),
        ({"domain": "cheetah", "task": "run", "action_repeat": 0}, "action_repeat"),
        ({"domain": "cheetah", "task": "run", "action_repeat": 1.5}, "action_repeat"),
        ({"domain": "cheetah", "task": "run", "render_mode": "human"}, "render_mode"),
        ({"domain": "cheetah", "task": "run", "shadow_size": 0}, "shadow_size"),
        ({"domain": "cheetah", "task": "run", "camera_id": 5}, "camera_id must be in"),
        ({"domain": "cheetah", "task": "run", "camera_id": -1}, "camera_id must be in"),
        ({"domain": "cheetah", "task": "run", "camera_id": "nope"}, "unknown camera"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DMCPixelEnv(**kwargs)


def test_camera_by_name():
    env = DMCPixelEnv("cheetah", "run", size=8, camera_id="back")
    try:
        assert env.camera_id == 1
    finally:
        env.close()
