"""LatentVecEnv (SB3) and the wrapper benchmark, on real envs and a real tiny run."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from latent_testing import SIZE, tiny_dmc_run

import keypoint_wm
from keypoint_wm.envs import DMCPixelEnv, LatentObservation, LatentVecEnv

pytestmark = pytest.mark.integration

# cartpole's control timestep is 0.01 s: 0.1 s at action repeat 2 is a 5-step episode.
SHORT = {"time_limit": 0.1}


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    run = tiny_dmc_run(tmp_path_factory.getbasetemp())
    return keypoint_wm.load(run, device="cpu", precision="fp32")


def pixel_env():
    return DMCPixelEnv("cartpole", "balance", size=SIZE, action_repeat=2, task_kwargs=SHORT)


def test_batched_vec_env_matches_single_envs_including_terminal_observations(world_model):
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = LatentVecEnv(DummyVecEnv([pixel_env, pixel_env]), world_model)
    singles = [LatentObservation(pixel_env(), world_model) for _ in range(2)]
    venv.seed(7)  # DummyVecEnv seeds env i with 7 + i at the next reset
    observations = venv.reset()
    expected = np.stack([env.reset(seed=7 + i)[0] for i, env in enumerate(singles)])
    np.testing.assert_allclose(observations, expected, atol=1e-5)
    assert venv.observation_space.shape == observations.shape[1:]
    assert observations.dtype == np.float32
    rng = np.random.default_rng(3)
    ends = 0
    for _ in range(8):
        actions = rng.uniform(-1, 1, (2, 1)).astype(np.float32)
        observations, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(singles):
            obs, reward, terminated, truncated, info = env.step(actions[i])
            assert dones[i] == (terminated or truncated)
            assert rewards[i] == pytest.approx(reward)
            np.testing.assert_allclose(infos[i]["keypoints"], info["keypoints"], atol=1e-5)
            if dones[i]:
                ends += 1
                # The final observation of the ended episode, as a latent vector ...
                np.testing.assert_allclose(infos[i]["terminal_observation"], obs, atol=1e-5)
                obs, _ = env.reset()  # ... and the new episode's first one.
            np.testing.assert_allclose(observations[i], obs, atol=1e-5)
    assert ends == 2
    images = venv.get_images()
    assert len(images) == 2 and images[0].shape == (SIZE * 4, SIZE * 4, 3)
    venv.close()
    for env in singles:
        env.close()


def test_latent_vec_env_is_a_vec_env_wrapper_that_sb3_accepts(world_model):
    """A real VecEnvWrapper subclass: SB3's wrapper lookups, a VecNormalize on top and an
    algorithm's own environment checks take it; attribute calls reach the pixel envs."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import (
        DummyVecEnv,
        VecEnv,
        VecEnvWrapper,
        VecNormalize,
        is_vecenv_wrapped,
        unwrap_vec_wrapper,
    )

    assert issubclass(LatentVecEnv, VecEnvWrapper)
    venv = LatentVecEnv(DummyVecEnv([pixel_env, pixel_env]), world_model, features="keypoints")
    assert isinstance(venv, VecEnv) and type(venv) is LatentVecEnv
    normalized = VecNormalize(venv)
    assert is_vecenv_wrapped(normalized, LatentVecEnv)
    assert unwrap_vec_wrapper(normalized, LatentVecEnv) is venv
    assert venv.get_attr("action_repeat") == [2, 2]  # forwarded to the pixel envs
    agent = PPO("MlpPolicy", normalized, n_steps=4, batch_size=4, n_epochs=1, device="cpu")
    assert agent.observation_space == venv.observation_space
    agent.learn(total_timesteps=8)
    assert agent.num_timesteps == 8
    normalized.close()


def test_vec_env_rejects_non_pixel_observations(world_model):
    from stable_baselines3.common.vec_env import DummyVecEnv

    def state_env():
        return DMCPixelEnv("cartpole", "balance", size=SIZE, pixels_only=False)

    from gymnasium.wrappers import FilterObservation

    venv = DummyVecEnv([lambda: FilterObservation(state_env(), ["position"])])
    with pytest.raises(ValueError, match="RGB frames"):
        LatentVecEnv(venv, world_model)
    with pytest.raises(TypeError, match="VecEnv"):
        LatentVecEnv(pixel_env(), world_model)
    venv.close()


def test_bench_wrapper_cli_writes_both_ratios(tmp_path):
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        "-m",
        "keypoint_wm.cli",
        "bench",
        "wrapper",
        "--steps",
        "2",
        "--envs",
        "8",
        "--preset",
        "dmcs-cpu",
        "--keypoints",
        "8",
        "--task",
        "cartpole-balance",
        "--precision",
        "fp32",
        "--quiet",
        "--json",
        str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "ratio = t_bare / t_wrapped" in result.stdout
    payload = json.loads(out.read_text())
    assert set(payload["ratios"]) == {"bare_vs_wrapped_1env", "bare_vs_wrapped_8env"}
    assert all(0 < value < 10 for value in payload["ratios"].values())
    assert payload["model"]["num_keypoints"] == 8
    assert payload["model"]["precision"] == "fp32"  # --precision, not what auto picks here
    assert payload["device_name"] and payload["cpu_capability"]  # the CPU is named
