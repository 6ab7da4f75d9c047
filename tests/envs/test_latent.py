"""LatentObservation and the -latent-v0 ids on real dm_control envs and a real tiny run."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest
import torch
from latent_testing import SIZE, tiny_dmc_run

import keypoint_wm
from keypoint_wm.envs import ALL_TASKS, DMCPixelEnv, LatentObservation, latent_env_id
from keypoint_wm.rewards import RewardHead, RewardHeadConfig

UNWRAPPED_NOTE = "is different from the unwrapped version"


@pytest.fixture(scope="session")
def dmc_run(tmp_path_factory):
    return tiny_dmc_run(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def world_model(dmc_run):
    return keypoint_wm.load(dmc_run, device="cpu", precision="fp32")


def test_every_task_has_a_latent_id():
    for domain, task in ALL_TASKS:
        spec = gymnasium.spec(latent_env_id(domain, task))
        assert spec.entry_point == "keypoint_wm.envs.latent.wrapper:make_latent_env"
        assert spec.kwargs == {"domain": domain, "task": task}


@pytest.mark.integration
def test_checkers_pass_on_the_registered_latent_env(dmc_run):
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make(
        "KeypointWM/cartpole-balance-latent-v0", run=str(dmc_run), render_mode="rgb_array"
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gymnasium_check_env(env)
            sb3_check_env(env)
        messages = [str(w.message) for w in caught if UNWRAPPED_NOTE not in str(w.message)]
        assert not messages, messages
        obs, info = env.reset(seed=0)
        model = env.unwrapped  # the DMCPixelEnv inside
        assert model.image_size == (SIZE, SIZE)
        assert model.action_repeat == 2  # the run's data.action_repeat
        assert obs.dtype == np.float32 and obs.ndim == 1
        assert info["keypoints"].shape == (4, 3)
        frame = env.render()
        assert frame.shape == (SIZE * 4, SIZE * 4, 3) and frame.dtype == np.uint8
    finally:
        env.close()


@pytest.mark.integration
def test_online_state_equals_the_models_observe(dmc_run, world_model):
    """Step by step, the wrapper's hidden state is what StructVRNN.observe computes over the
    same frames and actions (same posterior noise, detected keypoints fed to the GRU)."""
    base = DMCPixelEnv("reacher", "easy", size=SIZE, action_repeat=2, render_mode="rgb_array")
    head = RewardHead(RewardHeadConfig(input_size=16, units=8, reward_mean=1.0))
    env = LatentObservation(
        base, world_model, reward_head=head, sample_latent=True, feed_observed=True
    )
    obs, info = env.reset(seed=11)
    frames, actions, observations, keypoints = [base.render()], [np.zeros(2)], [obs], []
    keypoints.append(info["keypoints"])
    predicted = [info["predicted_reward"]]
    rng = np.random.default_rng(0)
    for _ in range(6):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        obs, _, _, _, info = env.step(action)
        frames.append(base.render())
        actions.append(action)
        observations.append(obs)
        keypoints.append(info["keypoints"])
        predicted.append(info["predicted_reward"])
    images = keypoint_wm.api.frames_to_tensor(np.stack(frames)[None], torch.device("cpu"))
    torch.manual_seed(11)
    with torch.no_grad():
        out = world_model.model.observe(
            images, torch.tensor(np.stack(actions)[None], dtype=torch.float32), True
        )
    k = world_model.num_keypoints
    observations = np.stack(observations)
    np.testing.assert_allclose(observations[:, : 3 * k], out.keypoints[0].flatten(1), atol=1e-5)
    np.testing.assert_allclose(observations[:, 3 * k :], out.hidden[0], atol=1e-5)
    np.testing.assert_allclose(np.stack(keypoints), out.keypoints[0], atol=1e-6)
    assert np.abs(observations[1:, 3 * k :]).max() > 0  # the state did move
    # The head's online predictions are those of the head run over the hidden sequence.
    with torch.no_grad():
        offline = head(out.hidden)[0][0]
    np.testing.assert_allclose(predicted, offline, atol=1e-5)
    env.close()


@pytest.mark.integration
def test_features_select_the_vector(world_model):
    sizes = {"keypoints": 4 * 3, "hidden": 16, "both": 4 * 3 + 16}
    base = DMCPixelEnv("cartpole", "balance", size=SIZE)
    try:
        for features, size in sizes.items():
            env = LatentObservation(base, world_model, features=features)
            assert env.observation_space.shape == (size,)
            obs, _ = env.reset(seed=1)
            assert obs.shape == (size,) and env.observation_space.contains(obs)
        with pytest.raises(ValueError, match="features"):
            LatentObservation(base, world_model, features="pixels")
    finally:
        base.close()


@pytest.mark.integration
def test_frame_size_mismatch_is_explained_and_resize_works(world_model):
    base = DMCPixelEnv("cartpole", "balance", size=48)
    try:
        with pytest.raises(ValueError, match=r"size=32, or pass resize=True"):
            LatentObservation(base, world_model)
        env = LatentObservation(base, world_model, resize=True)
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
    finally:
        base.close()
    made = gymnasium.make(  # the hint's resize=True works through the registered id too
        latent_env_id("cartpole", "balance"), run=world_model, size=48, resize=True
    )
    obs, _ = made.reset(seed=0)
    assert made.observation_space.contains(obs)
    made.close()


@pytest.mark.integration
def test_frames_from_render_when_observations_are_not_pixels(world_model):
    base = DMCPixelEnv("cartpole", "balance", size=SIZE, pixels_only=False, render_mode="rgb_array")
    state_only = gymnasium.wrappers.FilterObservation(base, ["position", "velocity"])
    env = LatentObservation(state_only, world_model)
    try:
        obs, _ = env.reset(seed=2)
        direct = LatentObservation(
            DMCPixelEnv("cartpole", "balance", size=SIZE), world_model
        ).reset(seed=2)[0]
        np.testing.assert_allclose(obs, direct, atol=1e-6)
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()
    no_render = DMCPixelEnv("cartpole", "balance", size=SIZE, pixels_only=False)
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        LatentObservation(
            gymnasium.wrappers.FilterObservation(no_render, ["position"]), world_model
        )
    no_render.close()


def test_without_a_run_the_shipped_default_model_is_used(dmc_run, tmp_path, monkeypatch):
    from keypoint_wm import bundled

    monkeypatch.setattr(bundled, "BUNDLED_ROOT", tmp_path)
    bundled.export_run(dmc_run, tmp_path / "default")
    env = gymnasium.make("KeypointWM/cartpole-balance-latent-v0")
    try:
        assert env.get_wrapper_attr("world_model").run_dir == tmp_path / "default"
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_run_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run="):
        gymnasium.make("KeypointWM/cartpole-balance-latent-v0", run=str(tmp_path))


@pytest.mark.integration
def test_close_stops_the_gru_worker_and_env_errors_pass_through(world_model):
    """The GRU update runs on a worker thread while the env steps; an env error reaches the
    caller unchanged, the wrapper keeps working after it, and close() ends the thread."""
    import threading

    class Failing(gymnasium.Wrapper):
        fail = False

        def step(self, action):
            if self.fail:
                raise RuntimeError("physics exploded")
            return self.env.step(action)

    inner = Failing(DMCPixelEnv("cartpole", "balance", size=SIZE))
    env = LatentObservation(inner, world_model)
    workers = lambda: [t for t in threading.enumerate() if t.name.startswith("keypoint-wm-worker")]  # noqa: E731
    threads = torch.get_num_threads()
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert len(workers()) == 1
    assert torch.get_num_threads() == threads  # the model's 1-thread setting is undone
    inner.fail = True
    with pytest.raises(RuntimeError, match="physics exploded"):
        env.step(env.action_space.sample())
    inner.fail = False
    obs, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all()
    env.close()
    assert not workers()


def _old_run(dmc_run, out, **data):
    """A copy of the tiny run whose config.json predates ``data.action_repeat``."""
    import json
    import shutil

    run = shutil.copytree(dmc_run, out)
    config = json.loads((run / "config.json").read_text())
    del config["data"]["action_repeat"]
    config["data"].update(data)
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.integration
def test_training_records_the_action_repeat_and_the_wrapper_reads_it(dmc_run, tmp_path):
    """New runs carry data.action_repeat; old runs fall back to their data's manifest, else
    step with 1 and say so by the run's name; a recorded None is said too."""
    import json

    from keypoint_wm.envs.latent.wrapper import training_action_repeat

    assert json.loads((dmc_run / "config.json").read_text())["data"]["action_repeat"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert training_action_repeat(keypoint_wm.load(dmc_run, device="cpu")) == 2
        old = _old_run(dmc_run, tmp_path / "old")  # its data.root still has the manifest
        assert training_action_repeat(keypoint_wm.load(old, device="cpu")) == 2
    moved = _old_run(dmc_run, tmp_path / "moved", root=str(tmp_path / "gone"))
    with pytest.warns(
        UserWarning, match=r"run .*moved: .*manifest\.json.*action_repeat=1"
    ) as caught:
        env = gymnasium.make("KeypointWM/cartpole-balance-latent-v0", run=str(moved))
    assert str(moved) in str(caught[0].message)
    assert env.unwrapped.action_repeat == 1
    env.close()
    unknown = _old_run(dmc_run, tmp_path / "unknown", action_repeat=None)
    with pytest.warns(UserWarning, match="does not record an action repeat"):
        assert training_action_repeat(keypoint_wm.load(unknown, device="cpu")) == 1


@pytest.mark.integration
def test_an_old_run_without_the_action_repeat_still_resumes(dmc_run, tmp_path):
    import json

    from latent_testing import tiny_dmc_data

    from keypoint_wm.config import RunConfig
    from keypoint_wm.train import train

    old = _old_run(dmc_run, tmp_path / "old")
    config = RunConfig.from_dict(json.loads((old / "config.json").read_text()))
    assert "action_repeat" not in config.data
    data = tiny_dmc_data(dmc_run.parent)
    train(config.with_overrides({"train.steps": 5}), data, old, resume=True, progress=False)
    assert keypoint_wm.load(old, device="cpu").step == 5
    assert json.loads((old / "config.json").read_text())["data"]["action_repeat"] == 2


@pytest.mark.integration
def test_keypoint_reward_head_reads_the_frames_keypoints_online(world_model):
    """A ``hidden+keypoints`` head in the wrapper predicts, for each frame just observed,
    what it predicts offline from observe's h_{t-1} and that frame's detected keypoints; a
    head for another number of keypoints is refused."""
    base = DMCPixelEnv("reacher", "easy", size=SIZE, action_repeat=2, render_mode="rgb_array")
    k = world_model.num_keypoints
    torch.manual_seed(2)
    head = RewardHead(
        RewardHeadConfig(input_size=16, units=8, inputs="hidden+keypoints", num_keypoints=k)
    )
    with pytest.raises(ValueError, match=f"num_keypoints={k}"):
        wrong = RewardHeadConfig(input_size=16, inputs="hidden+keypoints", num_keypoints=k + 1)
        LatentObservation(base, world_model, reward_head=RewardHead(wrong))
    env = LatentObservation(
        base, world_model, reward_head=head, sample_latent=True, feed_observed=True
    )
    _, info = env.reset(seed=4)
    frames, actions, predicted = [base.render()], [np.zeros(2)], [info["predicted_reward"]]
    rng = np.random.default_rng(1)
    for _ in range(5):
        action = rng.uniform(-1, 1, 2).astype(np.float32)
        _, _, _, _, info = env.step(action)
        frames.append(base.render())
        actions.append(action)
        predicted.append(info["predicted_reward"])
    env.close()
    torch.manual_seed(4)  # the posterior noise the filter drew after reset(seed=4)
    out = world_model.observe(np.stack(frames)[None], np.stack(actions)[None], feed_observed=True)
    with torch.no_grad():
        offline = head(out.hidden, keypoints=out.keypoints)[0][0]
        hidden_only = head(out.hidden, keypoints=torch.zeros_like(out.keypoints))[0][0]
    np.testing.assert_allclose(predicted, offline, atol=1e-5)
    assert not np.allclose(predicted, hidden_only, atol=1e-4)  # the keypoints were read
