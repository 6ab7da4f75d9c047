"""LatentFilter, the online state behind the latent wrappers, against the model's own API.

The filter runs one step at a time through the dynamics' ``posterior_step`` / ``prior_step``
/ ``advance``; over a sequence its numbers must be those of ``WorldModel.observe`` and
``WorldModel.imagine`` on the same frames, actions and noise (real episodes of the tiny
action-conditioned DMCS run, two tasks with different action sizes in one batch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from latent_testing import tiny_dmc_data, tiny_dmc_run

import keypoint_wm
from keypoint_wm.data.episodes import load_episode
from keypoint_wm.envs import LatentFilter

pytestmark = pytest.mark.integration

STEPS = 8


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    model = keypoint_wm.load(tiny_dmc_run(base), device="cpu", precision="fp32")
    data = tiny_dmc_data(base)
    frames, actions = [], []
    for task in ("cartpole-balance", "reacher-easy"):  # action sizes 1 and 2
        episode = load_episode(sorted((data / task).glob("*.npz"))[0])
        frames.append(episode.image[:STEPS])
        action = episode.action[:STEPS]
        actions.append(np.pad(action, ((0, 0), (0, model.action_size - action.shape[1]))))
    return model, np.stack(frames), np.stack(actions).astype(np.float32)


def run_filter(latent_filter, frames, actions):
    """Observe ``frames [B, T, S, S, 3]`` one step at a time; the per-step states."""
    latent_filter.reset(frames[:, 0])
    states = {"latent": [], "hidden": [], "keypoints": []}
    for t in range(frames.shape[1]):
        if t:
            latent_filter.step(actions[:, t], frames[:, t])
        states["latent"].append(latent_filter.latent.clone())
        states["hidden"].append(latent_filter.hidden.clone())
        states["keypoints"].append(latent_filter.keypoints.clone())
    return {name: torch.stack(values, dim=1) for name, values in states.items()}


def test_filter_states_equal_observe_on_the_same_frames_actions_and_noise(setup):
    model, frames, actions = setup
    latent_filter = LatentFilter(model, 2, sample_latent=True, seed=5)
    online = run_filter(latent_filter, frames, actions)
    torch.manual_seed(5)  # observe draws its posterior noise from the global generator
    offline = model.observe(frames, actions)
    assert offline.latent is not None
    torch.testing.assert_close(online["keypoints"], offline.keypoints, atol=1e-5, rtol=0)
    torch.testing.assert_close(online["latent"], offline.latent, atol=1e-5, rtol=0)
    torch.testing.assert_close(online["hidden"], offline.hidden, atol=1e-5, rtol=0)
    assert online["hidden"][:, 1:].abs().max() > 0  # the state did move
    # Without sampling, z is the posterior mean (the first frame's is conditioned on h = 0).
    mean_filter = LatentFilter(model, 2, sample_latent=False)
    mean = run_filter(mean_filter, frames, actions)
    assert offline.posterior_mean is not None
    torch.testing.assert_close(
        mean["latent"][:, 0], offline.posterior_mean[:, 0], atol=1e-6, rtol=0
    )
    assert not torch.allclose(mean["latent"][:, 0], offline.latent[:, 0])


def test_world_model_filter_is_the_wrappers_deterministic_filter(setup):
    """WorldModel.filter (what evaluate state-probe reads) gives the wrappers' states."""
    model, frames, actions = setup
    online = run_filter(LatentFilter(model, 2, sample_latent=False), frames, actions)
    offline = model.filter(frames, actions)
    torch.testing.assert_close(online["keypoints"], offline.keypoints, atol=1e-5, rtol=0)
    torch.testing.assert_close(online["hidden"], offline.hidden, atol=1e-5, rtol=0)
    assert offline.latent is not None
    torch.testing.assert_close(online["latent"], offline.latent, atol=1e-5, rtol=0)


def test_filter_imagination_equals_imagine(setup):
    model, frames, actions = setup
    observed = 3
    latent_filter = LatentFilter(model, 2, sample_latent=True, seed=9)
    run_filter(latent_filter, frames[:, :observed], actions)
    keypoints, hidden = [], []
    for t in range(observed, STEPS):
        latent_filter.imagine(actions[:, t], sample=True)
        keypoints.append(latent_filter.keypoints.clone())
        hidden.append(latent_filter.hidden.clone())
    torch.manual_seed(9)  # the posterior's, then the prior's noise, in the filter's order
    offline = model.imagine(frames[:, :observed], STEPS - observed, actions=actions)
    future = offline.keypoints[:, 0, observed:].clone()
    future[..., 2] = future[..., 2].clamp(0.0, 1.0)  # the filter's keypoints draw heatmaps
    torch.testing.assert_close(torch.stack(keypoints, dim=1), future, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        torch.stack(hidden, dim=1), offline.hidden[:, 0, observed:], atol=1e-5, rtol=0
    )
    # The agent's actions condition the imagined future.
    other = LatentFilter(model, 2, sample_latent=True, seed=9)
    run_filter(other, frames[:, :observed], actions)
    other.imagine(-actions[:, observed], sample=True)
    assert not torch.allclose(other.keypoints, keypoints[0])


def test_auto_threads_one_for_a_single_env_and_torchs_setting_for_a_batch(tmp_path_factory):
    """A single env's filter runs on one thread whatever the detector's precision (one
    frame's work: a second thread saves little when idle and costs much when the cores are
    shared); batches of envs use torch's setting (None)."""
    run = tiny_dmc_run(tmp_path_factory.getbasetemp())
    chosen = {}
    for precision in ("bf16", "fp32", "channels_last"):
        model = keypoint_wm.load(run, device="cpu", precision=precision)
        for envs in (1, 4):
            chosen[precision, envs] = LatentFilter(model, envs).num_threads
    assert chosen == {
        ("bf16", 1): 1,
        ("bf16", 4): None,
        ("fp32", 1): 1,
        ("fp32", 4): None,
        ("channels_last", 1): 1,
        ("channels_last", 4): None,
    }
    assert LatentFilter(model, 1, num_threads=3).num_threads == 3  # an explicit count stays


def test_observation_bounds_follow_the_representation(setup, tmp_path_factory):
    """Keypoint scales are in [0, 1]; a CNN-VRNN's features, in their place, in [-1, 1]."""
    from keypoint_wm.envs.latent.online import feature_bounds

    model = setup[0]
    low, high = feature_bounds(model, ("keypoints",))
    assert (low[2::3] == 0).all() and (low[0::3] == -1).all() and (high == 1).all()
    cnn_run = tiny_dmc_run(tmp_path_factory.getbasetemp(), representation="cnn")
    cnn = keypoint_wm.load(cnn_run, device="cpu", precision="fp32")
    low, high = feature_bounds(cnn, ("keypoints", "hidden"))
    assert (low == -1).all() and (high == 1).all()
