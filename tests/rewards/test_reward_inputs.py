"""What a reward head reads for frame t's reward, and that training, the latent wrapper and
DreamEnv all build that input from the same states.

The alignment (docs/design.md, "Episode files" and "Action conditioning"): ``reward[t]`` is
received with frame t; the head reads h_{t-1} (``Observation.hidden[:, t]``: every frame
before t and the action that produced frame t, never frame t itself) and, with
``inputs="hidden+keypoints"``, the keypoints of frame t (Struct-VRNN runs), or, with
``inputs="hidden+features"``, the encoder's features of frame t (CNN-VRNN runs): each model's
own per-frame representation.

The models here are untrained tiny Struct-RNN and CNN-RNN (deterministic, so the offline
windows and the online filter compute bit-comparable states without sharing noise); the data
are constructed episodes whose reward at frame t is the x position of a square drawn in
frame t.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from kwm_testing import tiny_config
from latent_testing import tiny_dmc_data, tiny_dmc_run

from keypoint_wm.api import WorldModel
from keypoint_wm.data.episodes import Episode, load_episode, save_episode
from keypoint_wm.errors import UsageError
from keypoint_wm.model import StructVRNN
from keypoint_wm.reward_inputs import frame_inputs
from keypoint_wm.rewards import (
    RewardHead,
    RewardHeadConfig,
    RewardSequences,
    RewardTrainConfig,
    collect_reward_sequences,
    fit_reward_head,
    imagine_rewards,
    load_reward_head,
    normalized_mse,
    save_reward_head,
)
from keypoint_wm.rewards.train import head_pairs, predict

SIZE, FRAMES, ACTIONS, TASK = 32, 12, 2, "toy-square"
INPUTS = ("hidden", "hidden+keypoints")  # a Struct-VRNN's
# (representation, inputs): each head kind on the model it fits.
CASES = [("keypoints", "hidden"), ("keypoints", "hidden+keypoints"), ("cnn", "hidden+features")]


def square_episode(rng: np.random.Generator) -> Episode:
    """A white square at a random x in every frame; reward[t] = its x in frame t (reward[0]
    and action[0] are 0, as the episode format requires)."""
    x = rng.integers(1, SIZE - 7, FRAMES)
    image = np.zeros((FRAMES, SIZE, SIZE, 3), np.uint8)
    for t in range(FRAMES):
        image[t, 12:18, x[t] : x[t] + 6] = 255
    action = rng.uniform(-1, 1, (FRAMES, ACTIONS)).astype(np.float32)
    action[0] = 0
    reward = x.astype(np.float32)
    reward[0] = 0
    return Episode(image, action, reward)


def tiny_model(representation: str) -> WorldModel:
    overrides = {
        "model.dynamics": "rnn",
        "model.action_size": ACTIONS,
        "model.representation": representation,
    }
    config = tiny_config(1, preset="dmcs-cpu", **overrides)
    torch.manual_seed(0)
    return WorldModel(StructVRNN(config.model), config, step=0, run_dir=None)


@pytest.fixture(scope="module")
def model() -> WorldModel:
    return tiny_model("keypoints")


@pytest.fixture(scope="module")
def models(model) -> dict[str, WorldModel]:
    """The Struct-RNN and a CNN-RNN of the same sizes, by representation."""
    return {"keypoints": model, "cnn": tiny_model("cnn")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("squares")
    rng = np.random.default_rng(0)
    for e in range(3):
        save_episode(root / TASK / f"ep_{e:03d}.npz", square_episode(rng))
    return root


def heads(model: WorldModel) -> dict[str, RewardHead]:
    """An untrained head of each kind ``model`` fits (seeded): ``"hidden"`` and the one that
    adds its own representation of frame t."""
    units, k = model.config.model.rnn_units, model.num_keypoints
    out = {}
    for inputs in ("hidden", frame_inputs(model.config.model.representation)):
        torch.manual_seed(1)
        config = RewardHeadConfig(
            input_size=units,
            units=8,
            reward_mean=0.5,
            reward_std=2.0,
            inputs=inputs,
            num_keypoints=k if inputs != "hidden" else 0,
        )
        out[inputs] = RewardHead(config).eval()
    return out


def observe(model: WorldModel, episode: Episode, start: int, stop: int):
    return model.observe(episode.image[None, start:stop], episode.action[None, start:stop])


# ---------------------------------------------------------------- the training windows


def test_windows_pair_the_state_before_frame_t_and_frame_ts_keypoints_with_reward_t(model, data):
    """Every (window, step) of the collected windows, across --stride: hidden is h_{t-1}
    (zeros at a window's first frame, then the state after the window's earlier frames and
    the action of frame t), keypoints are those detected in frame t, reward is reward[t]."""
    seqs = collect_reward_sequences(
        model, data, window=5, stride=3, test_fraction=0.99, progress=False
    )[TASK]
    episodes = [load_episode(f) for f in seqs.files]
    assert len(episodes) == 3
    # 12 frames, windows of 5 every 3 frames: starts 0, 3, 6 (the last window ends at 10).
    assert (
        seqs.start.tolist() == [0, 3, 6] * 3
        and seqs.episode.tolist() == [0] * 3 + [1] * 3 + [2] * 3
    )
    assert seqs.keypoints.shape == (9, 5, model.num_keypoints, 3)
    for i, (e, start) in enumerate(zip(seqs.episode, seqs.start, strict=True)):
        episode = episodes[e]
        np.testing.assert_array_equal(seqs.reward[i], episode.reward[start : start + 5])
        for t in range(5):
            frame = start + t
            alone = model.observe(episode.image[None, frame : frame + 1], np.zeros((1, 1, 2)))
            np.testing.assert_allclose(seqs.keypoints[i, t], alone.keypoints[0, 0], atol=1e-5)
            prefix = observe(model, episode, start, frame + 1)
            np.testing.assert_allclose(seqs.hidden[i, t], prefix.hidden[0, t], atol=1e-5)
        assert not seqs.hidden[i, 0].any()  # each window starts from a fresh state
        assert np.abs(seqs.hidden[i, 1:]).max() > 0  # ... and then moves
    # The first frame of the second window is frame 3, seen afresh; the first window had
    # already observed frames 0-2 by then.
    assert not seqs.hidden[1, 0].any() and seqs.hidden[0, 3].any()
    np.testing.assert_allclose(seqs.keypoints[1, 0], seqs.keypoints[0, 3], atol=1e-6)
    assert seqs.reward[1, 0] == seqs.reward[0, 3] == episodes[0].reward[3]


def test_the_state_for_frame_t_has_seen_its_action_but_not_the_frame(model, data):
    """h_{t-1}, what the head reads for reward[t]: changing frame t or action t+1 leaves it
    as it is; changing action t (the action that produced frame t) or frame t-1 moves it."""
    episode = load_episode(next((data / TASK).glob("*.npz")))
    t = 4
    base = observe(model, episode, 0, 8).hidden[0, t]

    def moved(what: str, index: int) -> bool:
        changed = Episode(episode.image.copy(), episode.action.copy(), episode.reward)
        if what == "image":
            changed.image[index] = 255 - changed.image[index]
        else:
            changed.action[index] = -changed.action[index] + 0.5
        return not torch.allclose(observe(model, changed, 0, 8).hidden[0, t], base, atol=1e-6)

    assert not moved("image", t) and not moved("action", t + 1)
    assert moved("action", t) and moved("image", t - 1)


def test_head_pairs_are_the_collected_arrays_and_the_input_is_hidden_then_keypoints(model, data):
    seqs = collect_reward_sequences(
        model, data, window=4, stride=4, test_fraction=0.99, progress=False
    )[TASK]
    hidden, keypoints, reward = head_pairs(seqs, "hidden")
    assert hidden is seqs.hidden and keypoints is None and reward is seqs.reward
    hidden, keypoints, reward = head_pairs(seqs, "hidden+keypoints")
    assert keypoints is seqs.keypoints
    head = heads(model)["hidden+keypoints"]
    x = head.inputs_of(torch.from_numpy(hidden), torch.from_numpy(keypoints))
    k = model.num_keypoints
    assert x.shape == (len(seqs), 4, 16 + 3 * k)
    np.testing.assert_array_equal(x[..., :16], hidden)
    np.testing.assert_array_equal(x[..., 16:], keypoints.reshape(len(seqs), 4, 3 * k))
    without = RewardSequences(TASK, hidden, reward, seqs.episode, seqs.start, [])
    with pytest.raises(UsageError, match="--inputs hidden\\+keypoints"):
        head_pairs(without, "hidden+keypoints")


# ---------------------------------------------------------------- online: the same function


class ReplayEnv(gymnasium.Env):
    """Replays a stored episode: reset gives frame 0, each step the next frame and reward."""

    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, episode: Episode) -> None:
        self.episode = episode
        self.observation_space = spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (ACTIONS,), np.float32)
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self.episode.image[0], {}

    def step(self, action):
        self.t += 1
        done = self.t == FRAMES - 1
        return self.episode.image[self.t], float(self.episode.reward[self.t]), False, done, {}


@pytest.mark.parametrize("representation, inputs", CASES)
def test_latent_wrapper_predicts_what_the_head_predicts_on_the_training_windows(
    models, data, representation, inputs
):
    """Stepping an env through an episode with the episode's actions: the wrapper's
    ``predicted_reward`` for each frame just observed is the head's prediction at that
    frame of the window collected for training (the whole episode), from the same states;
    a CNN-VRNN's ``hidden+features`` head reads the same features of each frame online
    (the filter's) as offline (the windows')."""
    from keypoint_wm.envs import LatentObservation

    model = models[representation]
    seqs = collect_reward_sequences(
        model, data, window=FRAMES, stride=FRAMES, test_fraction=0.99, progress=False
    )[TASK]
    head = heads(model)[inputs]
    offline = predict(head, seqs.hidden, seqs.keypoints)[0]
    episode = load_episode(seqs.files[0])
    env = LatentObservation(ReplayEnv(episode), model, reward_head=head, features="both")
    try:
        obs, info = env.reset(seed=0)
        k = model.num_keypoints
        online, hidden, keypoints = [info["predicted_reward"]], [obs[3 * k :]], [info["keypoints"]]
        for t in range(1, FRAMES):
            obs, reward, _, _, info = env.step(episode.action[t])
            assert reward == episode.reward[t]
            online.append(info["predicted_reward"])
            hidden.append(obs[3 * k :])
            keypoints.append(info["keypoints"])
    finally:
        env.close()
    np.testing.assert_allclose(np.stack(hidden), seqs.hidden[0], atol=1e-5)
    np.testing.assert_allclose(np.stack(keypoints), seqs.keypoints[0], atol=1e-5)
    np.testing.assert_allclose(online, offline, atol=1e-5)
    if inputs != "hidden":  # the frame's keypoints (features) were read
        blind = predict(head, seqs.hidden, np.zeros_like(seqs.keypoints))[0]
        assert not np.allclose(online, blind, atol=1e-4)


@pytest.mark.parametrize("representation, inputs", CASES)
def test_dream_rewards_are_the_heads_over_the_imagined_states_and_keypoints(
    models, data, representation, inputs
):
    """DreamEnv's reward for each imagined frame equals imagine_rewards' for the same start
    frames and actions: h before the imagined frame and (keypoint heads) the keypoints
    decoded for it, (feature heads) the CNN features decoded for it, all three channels in
    [-1, 1] as decoded; the observed start frames use the detected ones, as in training."""
    from keypoint_wm.envs import DreamEnv

    model = models[representation]
    episode = load_episode(next((data / TASK).glob("*.npz")))
    context, future = 3, 4
    actions = np.random.default_rng(5).uniform(-1, 1, (future, ACTIONS)).astype(np.float32)
    head = heads(model)[inputs]
    env = DreamEnv(
        model,
        head,
        start_frames=episode.image[None, :context],
        start_actions=episode.action[None, :context],
        max_episode_steps=future,
        sample=False,
    )
    _, info = env.reset(seed=0)
    dream, dreamt = [info["predicted_reward"]], []
    for action in actions:
        _, reward, _, _, info = env.step(action)
        dream.append(reward)
        dreamt.append(info["keypoints"])
    all_actions = np.concatenate([episode.action[:context], actions])[None]
    imagined = imagine_rewards(model, head, episode.image[None, :context], all_actions, future)
    # The reward of the last observed frame, then of each imagined frame.
    np.testing.assert_allclose(dream, imagined.rewards[0, 0, context - 1 :], atol=1e-5)
    # The dream's imagined frames: decoded keypoints with the scale clamped to [0, 1]; decoded
    # CNN features as they are (in [-1, 1], the third channel too).
    decoded = imagined.keypoints[0, 0, context:].clone()
    if representation == "keypoints":
        decoded[..., 2] = decoded[..., 2].clamp(0, 1)
    else:
        assert (decoded[..., 2] < 0).any()  # what a keypoint clamp would have cut
    np.testing.assert_allclose(np.stack(dreamt), decoded, atol=1e-5)
    if inputs != "hidden":
        kp = imagined.head_keypoints[0, 0]
        np.testing.assert_allclose(kp[context:], imagined.keypoints[0, 0, context:])
        observed = observe(model, episode, 0, context).keypoints[0]
        np.testing.assert_allclose(kp[:context], observed, atol=1e-5)


# ---------------------------------------------------------------- the option itself


def test_keypoint_head_shapes_steps_files_and_errors(tmp_path):
    config = RewardHeadConfig(input_size=16, units=8, inputs="hidden+keypoints", num_keypoints=4)
    head = RewardHead(config)
    hidden, keypoints = torch.randn(3, 6, 16), torch.rand(3, 6, 4, 3) * 2 - 1
    rewards, state = head(hidden, keypoints=keypoints)
    assert rewards.shape == (3, 6) and state.shape == (2, 3, 8)
    assert head.dense.in_features == 16 + 12
    state, online = None, []
    for t in range(6):
        reward, state = head.step(hidden[:, t], state, keypoints[:, t])
        online.append(reward)
    torch.testing.assert_close(torch.stack(online, 1), rewards)
    # The keypoints matter, and out-of-range values are clamped like observations.
    assert not torch.allclose(head(hidden, keypoints=keypoints.flip(1))[0], rewards)
    wild = keypoints.clone()
    wild[..., :2] *= 5
    wild[..., 2] += 3
    clamped = wild.clone()
    clamped[..., :2] = clamped[..., :2].clamp(-1, 1)
    clamped[..., 2] = clamped[..., 2].clamp(0, 1)
    torch.testing.assert_close(head(hidden, keypoints=wild)[0], head(hidden, keypoints=clamped)[0])
    with pytest.raises(ValueError, match=r"keypoints \[B, T, 4, 3\]"):
        head(hidden)
    with pytest.raises(ValueError, match=r"keypoints \[B, T, 4, 3\]"):
        head(hidden, keypoints=keypoints[:, :, :3])
    with pytest.raises(ValueError, match="num_keypoints"):
        RewardHeadConfig(input_size=16, inputs="hidden+keypoints")
    with pytest.raises(ValueError, match="inputs must be one of hidden, hidden\\+keypoints"):
        RewardHeadConfig(input_size=16, inputs="pixels")
    with pytest.raises(ValueError, match="num_keypoints=5"):
        head.check_model(16, 5)
    save_reward_head(head, tmp_path / "kp")
    loaded = load_reward_head(tmp_path / "kp")
    assert loaded.config.inputs == "hidden+keypoints" and loaded.config.num_keypoints == 4
    torch.testing.assert_close(loaded(hidden, keypoints=keypoints)[0], rewards)
    with pytest.raises(UsageError, match="--inputs must be one of"):
        RewardTrainConfig(inputs="cnn")


def test_a_head_saved_before_the_option_loads_and_predicts_as_before(tmp_path):
    """head.json without ``inputs``/``num_keypoints`` (every head written before): a
    ``"hidden"`` head with the same weights and the same predictions; keypoints passed to
    it are ignored."""
    torch.manual_seed(0)
    head = RewardHead(RewardHeadConfig(input_size=16, units=8, reward_mean=1.0, reward_std=2.0))
    hidden = torch.randn(2, 5, 16)
    before = head(hidden)[0]
    save_reward_head(head, tmp_path / "old")
    path = tmp_path / "old" / "head.json"
    fields = json.loads(path.read_text())
    del fields["inputs"], fields["num_keypoints"]
    path.write_text(json.dumps(fields))
    loaded = load_reward_head(tmp_path / "old")
    assert loaded.config.inputs == "hidden" and loaded.config.num_keypoints == 0
    assert loaded.dense.in_features == 16
    torch.testing.assert_close(loaded(hidden)[0], before)
    torch.testing.assert_close(loaded(hidden, keypoints=torch.rand(2, 5, 4, 3))[0], before)


def test_keypoints_of_frame_t_lower_the_error_when_the_reward_depends_on_its_position():
    """Windows built like the collected ones: an object jumps to a random x in every frame
    and reward[t] is a function of its x in frame t. h_{t-1} has seen the object only up to
    frame t-1 (here it holds the previous positions), so a hidden-state head can do no better
    than the mean; frame t's keypoints (one on the object, three elsewhere) tell the reward."""
    rng = np.random.default_rng(0)
    n, steps = 240, 12
    x = rng.uniform(-1, 1, (n, steps + 1))  # x[:, t + 1] is the object's x in frame t
    keypoints = rng.uniform(-1, 1, (n, steps, 4, 3)).astype(np.float32)
    keypoints[..., 2] = rng.uniform(0, 1, (n, steps, 4))
    keypoints[:, :, 0, 0] = x[:, 1:]
    hidden = np.tanh(np.stack([x[:, :-1], x[:, :-1] ** 2], -1) @ rng.normal(size=(2, 16)))
    hidden = (hidden + 0.05 * rng.normal(size=hidden.shape)).astype(np.float32)
    reward = (x[:, 1:] + 1).astype(np.float32)  # more reward further right
    episode = np.repeat(np.arange(n // 4), 4)
    seqs = RewardSequences("jump", hidden, reward, episode, episode * 0, [], keypoints)
    train, test = seqs.subset(np.arange(200)), seqs.subset(np.arange(200, n))
    scores = {}
    for inputs in INPUTS:
        config = RewardTrainConfig(steps=300, units=32, batch_size=32, eval_every=50, inputs=inputs)
        head = fit_reward_head(train, None, config, progress=False)
        assert head.config.inputs == inputs
        predicted = predict(head, test.hidden, test.keypoints)
        scores[inputs] = normalized_mse(predicted, test.reward, head.config.reward_mean)[0]
    assert scores["hidden"] > 0.8  # nothing in h_{t-1} tells frame t's position
    assert scores["hidden+keypoints"] < 0.3 < scores["hidden"] - 0.5


# ---------------------------------------------------------------- the command line


@pytest.mark.integration
def test_cli_train_and_evaluate_train_missing_pass_the_inputs(tmp_path_factory, tmp_path):
    """``rewards train --inputs hidden+keypoints`` records the option in each head and its
    summary; ``rewards evaluate --train-missing --inputs ...`` trains heads that read it and
    reports what they read, scored on the keypoints of the same windows."""
    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    out = tmp_path / "heads"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "rewards", "train", "--run", str(run),
         "--data", str(data), "--out", str(out), "--tasks", "cartpole-balance", "--steps", "5",
         "--inputs", "hidden+keypoints", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "inputs hidden+keypoints" in result.stdout
    fields = json.loads((out / "cartpole-balance" / "head.json").read_text())
    assert fields["inputs"] == "hidden+keypoints" and fields["num_keypoints"] == 4
    assert fields["metadata"]["inputs"] == "hidden+keypoints"
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["config"]["inputs"] == "hidden+keypoints"
    path = tmp_path / "r.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "rewards", "evaluate", "--run", str(run),
         "--heads", str(tmp_path / "missing"), "--data", str(data), "--tasks",
         "cartpole-balance", "--train-missing", "--steps", "5", "--inputs", "hidden+keypoints",
         "--json", str(path), "--plot", str(tmp_path / "r.png"), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(path.read_text())["runs"][0]["tasks"]["cartpole-balance"]
    assert scores["inputs"] == "hidden+keypoints"
    trained = json.loads((tmp_path / "missing" / "train_summary.json").read_text())["tasks"]
    assert trained["cartpole-balance"]["inputs"] == "hidden+keypoints"
    assert scores["normalized_mse"] == pytest.approx(
        trained["cartpole-balance"]["test_normalized_mse"], rel=1e-5
    )


@pytest.mark.parametrize(
    "representation, inputs, own",
    [
        ("cnn", "hidden+keypoints", "hidden+features"),
        ("keypoints", "hidden+features", "hidden+keypoints"),
    ],
)
def test_a_run_refuses_the_other_models_frame_input_in_one_line(
    models, data, representation, inputs, own
):
    """CNN-VRNN's per-frame outputs are CNN features, Struct-VRNN's keypoints: a head adds
    only the run's own representation of frame t. ``rewards train`` refuses the other one
    in one line naming ``--inputs`` and the one to use, before any window is collected; a
    head that reads it is refused by the latent filter (wrappers, DreamEnv, dream fidelity)
    and by imagine_rewards."""
    from keypoint_wm.envs.latent.base import resolve_reward_head
    from keypoint_wm.envs.latent.online import LatentFilter
    from keypoint_wm.rewards import train_reward_heads

    model = models[representation]
    with pytest.raises(UsageError) as refused:
        train_reward_heads(model, data, "unused", RewardTrainConfig(inputs=inputs))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"--inputs {inputs}: "), message
    assert f"representation is {representation!r}" in message
    assert message.endswith(f"read {own} (or hidden)"), message
    head = RewardHead(RewardHeadConfig(input_size=16, units=8, inputs=inputs, num_keypoints=4))
    reason = f"the reward head reads {re.escape(inputs)}, but the run's representation"
    with pytest.raises(ValueError, match=reason):
        LatentFilter(model, 1, reward_head=head)
    with pytest.raises(ValueError, match=reason):
        resolve_reward_head(head, model, None)
    frames = np.zeros((1, 2, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match=reason):
        imagine_rewards(model, head, frames, np.zeros((1, 3, ACTIONS), np.float32), 1)


def test_feature_heads_clamp_every_channel_to_minus_one_one_and_record_their_inputs(tmp_path):
    """A ``hidden+features`` head reads h_{t-1} and K x 3 CNN features, each clamped to
    [-1, 1] (their range: unlike a keypoint's scale, the third channel may be negative);
    ``head.json`` records what it reads, and it loads as it was saved."""
    config = RewardHeadConfig(input_size=16, units=8, inputs="hidden+features", num_keypoints=4)
    assert config.reads_frame and config.reads_keypoints and config.representation == "cnn"
    assert config.feature_size == 16 + 12
    torch.manual_seed(0)
    head = RewardHead(config)
    hidden, features = torch.randn(3, 6, 16), torch.rand(3, 6, 4, 3) * 2 - 1
    features[..., 2] = -0.75  # a keypoint head would read 0 here
    x = head.inputs_of(hidden, features)
    torch.testing.assert_close(x, torch.cat([hidden, features.flatten(2)], -1))
    wild = features * 5
    torch.testing.assert_close(head.inputs_of(hidden, wild)[..., 16:], wild.clamp(-1, 1).flatten(2))
    assert head.inputs_of(hidden, wild)[..., 16:].min() == -1  # all three channels reach -1
    keypoint_head = RewardHead(dataclasses.replace(config, inputs="hidden+keypoints"))
    assert keypoint_head.inputs_of(hidden, wild)[..., 16 + 2 :: 3].min() == 0
    rewards, _ = head(hidden, keypoints=features)
    state, online = None, []
    for t in range(6):
        reward, state = head.step(hidden[:, t], state, features[:, t])
        online.append(reward)
    torch.testing.assert_close(torch.stack(online, 1), rewards)
    assert not torch.allclose(head(hidden, keypoints=features.flip(1))[0], rewards)
    with pytest.raises(ValueError, match=r"CNN features .*keypoints \[B, T, 4, 3\]"):
        head(hidden)
    with pytest.raises(ValueError, match="num_keypoints must be > 0 exactly when"):
        RewardHeadConfig(input_size=16, inputs="hidden+features")
    head.check_model(16, 4, "cnn")
    head.check_model(16, 4)  # no representation given: sizes only
    with pytest.raises(ValueError, match="reads 4 x 3 CNN features .*num_keypoints=5"):
        head.check_model(16, 5, "cnn")
    save_reward_head(head, tmp_path / "features")
    fields = json.loads((tmp_path / "features" / "head.json").read_text())
    assert fields["inputs"] == "hidden+features" and fields["num_keypoints"] == 4
    loaded = load_reward_head(tmp_path / "features")
    assert loaded.config == config
    torch.testing.assert_close(loaded(hidden, keypoints=wild)[0], head(hidden, keypoints=wild)[0])


def test_the_command_line_offers_every_input_from_one_list(capsys):
    from keypoint_wm.cli.main import build_parser
    from keypoint_wm.reward_inputs import INPUTS as ALL

    assert ALL == ("hidden", "hidden+keypoints", "hidden+features")
    parser = build_parser()
    for command in ("train", "evaluate"):
        argv = ["rewards", command, "--run", "R", "--data", "D", "--inputs", "hidden+features"]
        assert parser.parse_args(argv).inputs in ("hidden+features", ["hidden+features"])
        with pytest.raises(SystemExit):
            parser.parse_args(["rewards", command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(f"{name}:" in text for name in ALL), text
    with pytest.raises(SystemExit):
        parser.parse_args(["rewards", "train", "--run", "R", "--data", "D", "--inputs", "cnn"])
    assert "choose from 'hidden', 'hidden+keypoints', 'hidden+features'" in capsys.readouterr().err
    assert RewardTrainConfig(inputs="hidden+features").inputs == "hidden+features"


@pytest.mark.integration
def test_a_cnn_vrnn_run_trains_heads_on_its_features_and_they_predict(tmp_path_factory, tmp_path):
    """End to end on a tiny trained CNN-VRNN run: ``hidden+features`` heads train on the
    windows' encoder features, record what they read, are scored by ``rewards evaluate`` on
    the same windows and predict along imagined futures; a Struct-VRNN run refuses them."""
    import keypoint_wm
    from keypoint_wm.rewards import train_reward_heads
    from keypoint_wm.rewards.evaluate import evaluate_reward_prediction

    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base, representation="cnn"), tiny_dmc_data(base)
    model = keypoint_wm.load(run, device="cpu")
    assert model.config.model.representation == "cnn"
    out, task = tmp_path / "features", "cartpole-balance"
    config = RewardTrainConfig(steps=5, inputs="hidden+features")
    summary = train_reward_heads(model, data, out, config, [task], progress=False)
    assert summary.tasks[task].inputs == "hidden+features"
    fields = json.loads((out / task / "head.json").read_text())
    assert fields["inputs"] == "hidden+features"
    assert fields["num_keypoints"] == model.num_keypoints
    assert fields["metadata"]["inputs"] == "hidden+features"
    head = load_reward_head(out, task)
    assert head.config.inputs == "hidden+features"
    result = evaluate_reward_prediction([run], data, heads=[out], tasks=[task], progress=False)
    scores = result.variants[0].results[0]
    assert scores.representation == "cnn" and scores.tasks[task].inputs == "hidden+features"
    # The same windows observed again (seeded noise): the same score up to float rounding.
    assert scores.tasks[task].normalized_mse == pytest.approx(
        summary.tasks[task].test_normalized_mse, rel=1e-3
    )
    episode = load_episode(sorted((data / task).glob("*.npz"))[0])
    frames, actions = episode.image[None, :3], episode.action[None, :6]
    imagined = imagine_rewards(model, head, frames, actions, num_future=3, num_samples=2)
    assert imagined.rewards.shape == (1, 2, 6) and torch.isfinite(imagined.rewards).all()
    features = model.observe(frames, actions[:, :3]).keypoints
    torch.testing.assert_close(imagined.head_keypoints[0, 0, :3], features[0], atol=1e-5, rtol=0)
    struct = tiny_dmc_run(base)
    with pytest.raises(UsageError, match=r"--heads: the head .* reads hidden\+features, but "):
        evaluate_reward_prediction([struct], data, heads=[out], tasks=[task], progress=False)


@pytest.mark.parametrize("tasks", [["cartpole-balance"], None], ids=["tasks", "every-task"])
def test_evaluate_reads_inputs_per_run_and_observes_a_repeated_run_once(
    tasks, tmp_path_factory, tmp_path, monkeypatch
):
    """One comparison, as the protocol runs it: the same Struct-VRNN run twice, its heads
    reading ``hidden+keypoints`` in one folder and ``hidden`` in another (``--inputs`` once
    per ``--run``); the run's windows are observed once and shared by both, with
    ``--tasks`` or without (every task of the data, as ``reproduce rewards`` runs it)."""
    from keypoint_wm.rewards import evaluate as evaluate_module
    from keypoint_wm.rewards.evaluate import evaluate_reward_prediction

    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    calls = []
    real_collect = evaluate_module._collect
    monkeypatch.setattr(
        evaluate_module, "_collect", lambda *a, **k: calls.append(a[0]) or real_collect(*a, **k)
    )
    both, hidden = tmp_path / "both", tmp_path / "hidden"
    result = evaluate_reward_prediction(
        [run, run], data, labels=["with keypoints", "hidden"], heads=[both, hidden],
        tasks=tasks, train_missing=True, train_config=RewardTrainConfig(steps=5),
        inputs=["hidden+keypoints", "hidden"], progress=False,
    )  # fmt: skip
    assert len(calls) == 1
    read = [v.results[0].tasks["cartpole-balance"].inputs for v in result.variants]
    assert read == ["hidden+keypoints", "hidden"]
    for folder, inputs in ((both, "hidden+keypoints"), (hidden, "hidden")):
        assert (
            json.loads((folder / "cartpole-balance" / "head.json").read_text())["inputs"] == inputs
        )
    with pytest.raises(UsageError, match="--inputs: give it once for every run"):
        evaluate_reward_prediction([run, run], data, heads=[both, hidden], inputs=["hidden"] * 3)
