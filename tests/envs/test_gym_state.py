"""The state a Gymnasium env's episodes store: which entries are which joint, checked
against the simulator at each step."""

from __future__ import annotations

import numpy as np
import pytest

from keypoint_wm.envs.gym_pixels import make_gym_env
from keypoint_wm.envs.gym_state import state_source


@pytest.mark.parametrize(
    ("env_id", "skipped"),
    [("HalfCheetah-v5", 1), ("Hopper-v5", 1), ("InvertedPendulum-v5", 0)],
)
def test_mujoco_parts_name_the_joint_positions_then_the_velocities(env_id, skipped):
    env = make_gym_env(env_id)
    source = state_source(env)
    assert source is not None
    parts = {p.name: p for p in source.parts}
    model, data = env.unwrapped.model, env.unwrapped.data
    observation, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        state = source.read(observation, {})
        assert state.shape == (source.size,)
        velocity = parts["velocity"]
        np.testing.assert_allclose(state[velocity.start : velocity.stop], data.qvel, atol=1e-5)
        for joint in range(model.njnt):
            name = env.unwrapped.model.joint(joint).name
            address = int(model.jnt_qposadr[joint])
            if address < skipped:
                assert name not in parts  # the root's x, which the reward measures
                continue
            part = parts[name]
            np.testing.assert_allclose(state[part.start], data.qpos[address], atol=1e-5)
        observation, *_ = env.step(rng.uniform(-1, 1, env.action_space.shape))
    env.close()


def test_an_unlimited_hinge_is_an_angle_and_a_limited_one_a_position():
    env = make_gym_env("HalfCheetah-v5")
    kinds = {p.name: p.kind for p in state_source(env).parts}
    env.close()
    assert kinds["rooty"] == "angle"  # the body can flip: theta and theta + 2 pi look alike
    assert kinds["bthigh"] == "position"
    assert kinds["rootz"] == "position"


def test_an_observation_of_another_layout_stays_one_part():
    env = make_gym_env("Reacher-v5")  # cosines, sines, target and fingertip offsets
    parts = state_source(env).parts
    env.close()
    assert [(p.name, p.kind) for p in parts] == [("observation", "position")]
    assert parts[0].size == env.observation_space.shape[0]
