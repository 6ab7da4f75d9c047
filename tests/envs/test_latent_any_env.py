"""LatentObservation around the user's own Gymnasium env, with a model trained on
``collect --env`` data (tests/any_env_testing.py: InvertedPendulum-v5 and a Discrete dot)."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
from any_env_testing import BAR, DOT_ID, MUJOCO_ENV, tiny_env_data, tiny_env_run

import keypoint_wm
from keypoint_wm.collect.config import episode_seed
from keypoint_wm.data.episodes import load_episode
from keypoint_wm.envs import LatentObservation

pytestmark = pytest.mark.integration
KWARGS = {"width": 40, "height": 40}
NOTES = ("is different from the unwrapped version", "symmetric and normalized")


@pytest.fixture(scope="module")
def env_run(tmp_path_factory):
    return tiny_env_run(tmp_path_factory.getbasetemp())


def test_run_records_how_its_frames_were_made(env_run):
    model = keypoint_wm.load(env_run, device="cpu")
    assert model.config.data["crop"] == [BAR, BAR, 0, 0]
    assert model.config.data["action_repeat"] == 1
    assert model.action_size == 4  # the dot's one-hot actions; the pendulum's 1 padded


@pytest.mark.parametrize("env_id", [MUJOCO_ENV, DOT_ID])
def test_own_env_passes_the_checkers_and_sees_the_training_frames(env_run, env_id):
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = LatentObservation(gymnasium.make(env_id, render_mode="rgb_array", **KWARGS), run=env_run)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gymnasium_check_env(env)
            sb3_check_env(env)
        messages = [str(w.message) for w in caught if not any(n in str(w.message) for n in NOTES)]
        assert not messages, messages
        # the frame the model sees after reset(seed) is the first frame collect stored
        folder = env_id.replace("/", "-")
        episode = load_episode(tiny_env_data(env_run.parent) / folder / "episode_000000.npz")
        obs, info = env.reset(seed=episode_seed(3, folder, 0))
        np.testing.assert_array_equal(env._frame, episode.image[0])
        assert env.observation_space.contains(obs) and info["keypoints"].shape[1] == 3
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_sb3_agent_learns_on_the_latent_of_an_own_env(env_run):
    from stable_baselines3 import PPO

    env = LatentObservation(gymnasium.make(DOT_ID, render_mode="rgb_array"), run=env_run)
    try:
        agent = PPO("MlpPolicy", env, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
        agent.learn(16)
        action, _ = agent.predict(env.reset(seed=0)[0], deterministic=True)
        assert env.action_space.contains(int(action))
    finally:
        env.close()
