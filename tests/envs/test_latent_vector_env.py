"""LatentVectorObservation (Gymnasium vector API) and counterfactual GIFs on a real tiny run."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from latent_testing import SIZE, tiny_dmc_run

import keypoint_wm
from keypoint_wm.envs import DMCPixelEnv, LatentObservation, LatentVectorObservation
from keypoint_wm.evaluation.counterfactual import counterfactual_rollout, write_counterfactual

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world_model(tmp_path_factory):
    run = tiny_dmc_run(tmp_path_factory.getbasetemp())
    return keypoint_wm.load(run, device="cpu", precision="fp32")


def pixel_env():  # a 5-step episode (0.1 s of cartpole at action repeat 2)
    return DMCPixelEnv(
        "cartpole", "balance", size=SIZE, action_repeat=2, task_kwargs={"time_limit": 0.1}
    )


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_wrapper_matches_single_envs(world_model, mode):
    envs = LatentVectorObservation(
        SyncVectorEnv([pixel_env, pixel_env], autoreset_mode=mode), world_model
    )
    singles = [LatentObservation(pixel_env(), world_model) for _ in range(2)]
    obs, info = envs.reset(seed=[4, 5])
    expected = [env.reset(seed=4 + i)[0] for i, env in enumerate(singles)]
    np.testing.assert_allclose(obs, np.stack(expected), atol=1e-5)
    assert envs.observation_space.shape == obs.shape and obs.dtype == np.float32
    assert info["keypoints"].shape == (2, 4, 3)
    rng = np.random.default_rng(1)
    pending = [False, False]
    finals = 0
    for _ in range(10):
        actions = rng.uniform(-1, 1, (2, 1)).astype(np.float32)
        obs, rewards, _, _, info = envs.step(actions)
        for i, env in enumerate(singles):
            if pending[i]:  # NEXT_STEP: this step only reset the env
                want, _ = env.reset()
                pending[i] = False
            else:
                want, reward, term, trunc, _ = env.step(actions[i])
                assert rewards[i] == pytest.approx(reward)
                if term or trunc:
                    if mode == AutoresetMode.NEXT_STEP:
                        pending[i] = True
                    else:
                        finals += 1
                        np.testing.assert_allclose(info["final_obs"][i], want, atol=1e-5)
                        want, _ = env.reset()
            np.testing.assert_allclose(obs[i], want, atol=1e-5)
    assert finals == (4 if mode == AutoresetMode.SAME_STEP else 0)
    envs.close()


def test_vector_wrapper_rejects_state_observations(world_model):
    def state_env():
        base = DMCPixelEnv("cartpole", "balance", size=SIZE, pixels_only=False)
        return gymnasium.wrappers.FilterObservation(base, ["position"])

    envs = SyncVectorEnv([state_env])
    with pytest.raises(ValueError, match="RGB frames"):
        LatentVectorObservation(envs, world_model)
    envs.close()


def test_counterfactual_gif(world_model, tmp_path):
    env = pixel_env()
    frames = [env.reset(seed=0)[0]]
    actions = np.zeros((7, 1), np.float32)
    for t in range(1, 4):
        frames.append(env.step(actions[t])[0])
    cf = counterfactual_rollout(
        world_model, np.stack(frames), actions, keypoint_index=[0, 1], offset=(0.5, 0.0),
        num_future=4, num_observed=3,
    )  # fmt: skip
    assert cf.original.shape == cf.shifted.shape == (7, SIZE, SIZE, 3)
    assert cf.truth.shape == (7, SIZE, SIZE, 3)
    # The intervention moves the shifted keypoints to the right in the last observed frame.
    assert cf.shifted_keypoints[2, 0, 0] > cf.original_keypoints[2, 0, 0]
    path = write_counterfactual(tmp_path / "cf.gif", cf)
    assert path.stat().st_size > 0 and path.with_suffix(".png").exists()
    with pytest.raises(ValueError, match="keypoint_index"):
        counterfactual_rollout(world_model, np.stack(frames), actions, 9, (0.1, 0), 4, 3)
    env.close()
