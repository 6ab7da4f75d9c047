"""DreamEnv: imagined steps from a real tiny run's prior and a reward head."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from latent_testing import SIZE, tiny_dmc_data, tiny_dmc_run

import keypoint_wm
from keypoint_wm.data.episodes import load_episode
from keypoint_wm.envs import DreamEnv
from keypoint_wm.rewards import RewardHead, RewardHeadConfig

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    model = keypoint_wm.load(run, device="cpu", precision="fp32")
    torch.manual_seed(0)
    head = RewardHead(RewardHeadConfig(input_size=16, units=8, reward_mean=0.5))
    return model, head, data


def test_dream_env_passes_the_checkers(setup):
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    model, head, data = setup
    env = DreamEnv(
        model, head, data=data / "cartpole-balance", max_episode_steps=5, render_mode="rgb_array"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gymnasium_check_env(env)
        sb3_check_env(env)
    # (A bare instance has no registry spec to remake it with other render modes from.)
    assert not [str(w.message) for w in caught if "not having a spec" not in str(w.message)]
    assert env.action_space.shape == (1,)  # cartpole's, from the data
    assert env.render().shape == (SIZE * 4, SIZE * 4, 3)


def test_dream_rewards_come_from_the_head_and_depend_on_actions(setup):
    """One observed start frame (h = 0), then imagined steps: the rewards are the head's
    over the imagined hidden states, and other actions imagine another future."""
    model, head, data = setup
    start = load_episode(sorted((data / "reacher-easy").glob("*.npz"))[0]).image[None, :1]
    env = DreamEnv(model, head, start_frames=start, max_episode_steps=4, sample=False)
    k = model.num_keypoints
    futures = {}
    for value in (-1.0, 1.0):
        obs, info = env.reset(seed=3)
        hidden, rewards, keypoints = [obs[3 * k :]], [info["predicted_reward"]], [info["keypoints"]]
        truncated = False
        while not truncated:
            obs, reward, terminated, truncated, info = env.step(np.full(2, value, np.float32))
            assert not terminated
            hidden.append(obs[3 * k :])
            rewards.append(reward)
            keypoints.append(info["keypoints"])
        assert len(rewards) == 1 + 4
        with torch.no_grad():
            offline = head(torch.from_numpy(np.stack(hidden))[None])[0][0]
        np.testing.assert_allclose(rewards, offline.numpy(), atol=1e-5)
        futures[value] = np.array(rewards), np.stack(keypoints)
    (rewards_a, keypoints_a), (rewards_b, keypoints_b) = futures.values()
    assert rewards_a[0] == rewards_b[0]  # the same observed start ...
    np.testing.assert_array_equal(keypoints_a[0], keypoints_b[0])
    assert not np.allclose(keypoints_a[1:], keypoints_b[1:])  # ... imagined differently
    assert not np.allclose(rewards_a[1:], rewards_b[1:])


def test_dream_env_from_frames_and_errors(setup):
    model, head, _ = setup
    frames = np.zeros((2, 3, SIZE, SIZE, 3), np.uint8)
    env = DreamEnv(model, head, start_frames=frames, max_episode_steps=2)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError, match="reward_head is required"):
        DreamEnv(model, None, start_frames=frames)
    with pytest.raises(ValueError, match="start_frames must be uint8"):
        DreamEnv(model, head, start_frames=np.zeros((2, 3, 8, 8, 3), np.uint8))


def test_initial_starts_begin_where_the_task_does(setup, tmp_path):
    """starts="initial" observes an episode's first frames, the task's initial states, at
    every reset; "any" starts anywhere in it."""
    model, head, data = setup
    folder = tmp_path / "one"
    folder.mkdir()
    episode = sorted((data / "cartpole-balance").glob("*.npz"))[0]
    (folder / episode.name).write_bytes(episode.read_bytes())
    start = load_episode(episode)
    frames, actions = start.image[None, :3], start.action[None, :3]
    reference = DreamEnv(model, head, start_frames=frames, start_actions=actions, sample=False)
    reference = reference.reset(seed=0)[0]

    def first_observations(starts: str) -> list[np.ndarray]:
        env = DreamEnv(model, head, data=folder, starts=starts, sample=False)
        return [env.reset(seed=seed)[0] for seed in range(6)]

    for obs in first_observations("initial"):
        np.testing.assert_array_equal(obs, reference)
    assert any(not np.array_equal(obs, reference) for obs in first_observations("any"))
    with pytest.raises(ValueError, match="starts must be one of"):
        DreamEnv(model, head, data=folder, starts="middle")
    with pytest.raises(ValueError, match="starts chooses windows of data episodes"):
        DreamEnv(model, head, start_frames=frames, starts="initial")
