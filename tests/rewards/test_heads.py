"""Reward heads: the module, training on real hidden states, the CLI, imagined rewards."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from latent_testing import tiny_dmc_data, tiny_dmc_run

import keypoint_wm
from keypoint_wm.errors import DataError
from keypoint_wm.rewards import (
    RewardHead,
    RewardHeadConfig,
    RewardSequences,
    RewardTrainConfig,
    fit_reward_head,
    imagine_rewards,
    load_reward_head,
    normalized_mse,
    save_reward_head,
    split_episodes,
    split_sequences,
    split_windows,
)


@pytest.fixture(scope="module")
def dmc(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    return tiny_dmc_run(base), tiny_dmc_data(base)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", *args],
        capture_output=True,
        text=True,
        timeout=200,
    )


def test_head_shapes_and_files_round_trip(tmp_path):
    head = RewardHead(RewardHeadConfig(input_size=16, units=8, reward_mean=2.0, reward_std=3.0))
    rewards, state = head(torch.randn(5, 20, 16))
    assert rewards.shape == (5, 20) and state.shape == (2, 5, 8)
    # Online steps give what the sequence call gives.
    hidden = torch.randn(2, 6, 16)
    state = None
    online = []
    for t in range(6):
        reward, state = head.step(hidden[:, t], state)
        online.append(reward)
    torch.testing.assert_close(torch.stack(online, 1), head(hidden)[0])
    save_reward_head(head, tmp_path / "heads" / "cheetah-run")
    loaded = load_reward_head(tmp_path / "heads", task="cheetah-run")
    torch.testing.assert_close(loaded(hidden)[0], head(hidden)[0])
    with pytest.raises(DataError, match="heads found: cheetah-run"):
        load_reward_head(tmp_path / "heads", task="walker-walk")
    with pytest.raises(ValueError, match="input_size"):
        RewardHeadConfig(input_size=0)


def test_split_and_normalized_mse():
    train, test = split_windows(10, 0.8, seed=1)
    assert len(train) == 8 and len(test) == 2 and not set(train) & set(test)
    assert np.array_equal(split_windows(10, 0.8, seed=1)[1], test)
    reward = np.array([[0.0, 2.0], [2.0, 0.0]])
    assert normalized_mse(np.full((2, 2), 1.0), reward, 1.0)[0] == pytest.approx(1.0)
    overall, per_step, ci = normalized_mse(reward, reward, 1.0)
    assert overall == 0 and per_step.shape == (2,) and np.all(ci == 0)
    assert np.isnan(normalized_mse(reward, np.ones((2, 2)), 1.0)[0])  # nothing to learn


def test_episode_split_keeps_every_episode_on_one_side():
    episode = np.repeat(np.arange(10), 5)
    train, test = split_episodes(episode, 0.8, seed=3)
    assert len(train) == 40 and len(test) == 10
    assert not set(episode[train]) & set(episode[test])
    assert np.array_equal(split_episodes(episode, 0.8, seed=3)[1], test)
    seqs = RewardSequences("toy", np.zeros((50, 4, 2)), np.zeros((50, 4)), episode, episode, [])
    fit, held = split_sequences(seqs, 0.8, seed=3, by="episodes")
    assert len(fit) == 40 and np.array_equal(held.episode, episode[test])
    assert len(split_sequences(seqs, 0.8, seed=3, by="windows")[1]) == 10
    with pytest.raises(ValueError, match="--split must be one of windows, episodes"):
        split_sequences(seqs, 0.8, seed=3, by="frames")
    with pytest.raises(DataError, match="at least 2 test-split episodes"):
        split_episodes(np.zeros(8), 0.8, seed=0)
    with pytest.raises(ValueError, match="--split"):
        RewardTrainConfig(split="frames")


def test_head_learns_a_reward_that_depends_on_the_hidden_state():
    rng = np.random.default_rng(0)
    hidden = rng.uniform(-1, 1, (240, 20, 8)).astype(np.float32)
    reward = (hidden[..., 0] * 2 + hidden[..., 1] ** 2).astype(np.float32)
    seqs = RewardSequences("toy", hidden, reward, np.zeros(240), np.zeros(240), [])
    config = RewardTrainConfig(steps=300, units=32, batch_size=32)
    head = fit_reward_head(seqs.subset(np.arange(200)), None, config, progress=False)
    test = seqs.subset(np.arange(200, 240))
    from keypoint_wm.rewards.train import predict

    score = normalized_mse(predict(head, test.hidden), test.reward, head.config.reward_mean)[0]
    assert score < 0.2


def test_validation_holds_out_whole_episodes():
    from keypoint_wm.rewards.train import split_validation

    episode = np.repeat(np.arange(10), 5)
    seqs = RewardSequences("toy", np.zeros((50, 4, 2)), np.zeros((50, 4)), episode, episode, [])
    fit, val = split_validation(seqs, 0.2, seed=0)
    assert len(fit) + len(val) == 50 and len(val) == 10
    assert not set(fit.episode) & set(val.episode)
    assert split_validation(seqs, 0.0, seed=0)[1] is None
    assert split_validation(seqs.subset(np.arange(5)), 0.2, seed=0)[1] is None  # one episode


def test_early_stopping_keeps_a_head_from_fitting_noise():
    """Rewards unrelated to the hidden state: the last step's head fits the noise of its
    training windows (worse than the mean on new ones); the kept head does not."""
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(300, 20, 16)).astype(np.float32)
    reward = rng.normal(size=(300, 20)).astype(np.float32)
    episode = np.repeat(np.arange(60), 5)
    seqs = RewardSequences("noise", hidden, reward, episode, episode, [])
    train, test = seqs.subset(np.arange(200)), seqs.subset(np.arange(200, 300))
    from keypoint_wm.rewards.train import predict, split_validation

    scores = {}
    for fraction in (0.0, 0.2):
        config = RewardTrainConfig(
            steps=600, units=64, batch_size=32, eval_every=50, validation_fraction=fraction
        )
        head = fit_reward_head(train, None, config, progress=False)
        predicted = predict(head, test.hidden)
        scores[fraction] = normalized_mse(predicted, test.reward, head.config.reward_mean)[0]
    assert head.config.metadata["validation_windows"] == 40
    # The null model is the mean of all the head's training windows, validation included.
    assert head.config.reward_mean == pytest.approx(float(train.reward.mean()))
    assert scores[0.0] > 1.05  # overfitted
    assert scores[0.2] < min(scores[0.0], 1.05)
    # The kept weights' score on the validation windows is recorded, to choose settings on.
    validation = split_validation(train, 0.2, seed=0)[1]
    kept = normalized_mse(
        predict(head, validation.hidden), validation.reward, head.config.reward_mean
    )[0]
    assert head.config.metadata["validation_normalized_mse"] == pytest.approx(kept, rel=1e-5)


@pytest.mark.integration
def test_cli_train_then_evaluate_two_runs_side_by_side(dmc, tmp_path):
    from kwm_testing import tiny_config

    from keypoint_wm.train import train

    run, data = dmc
    other = tmp_path / "other-run"  # the same recipe from another seed: another model
    config = tiny_config(4, preset="dmcs-cpu", seed=4, **{"train.test_fraction": 0.5})
    train(config, data, other, progress=False)
    heads, other_heads = tmp_path / "heads", tmp_path / "other-heads"
    for model, out in ((run, heads), (other, other_heads)):
        result = cli(
            "rewards", "train", "--run", str(model), "--data", str(data), "--out", str(out),
            "--steps", "20", "--quiet",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    assert "cartpole-balance" in result.stdout
    assert list((heads / "tensorboard" / "cartpole-balance").glob("events.out.tfevents.*"))
    meta = json.loads((heads / "cartpole-balance" / "head.json").read_text())["metadata"]
    # The default split holds out whole episodes: head-test episodes are unseen in training.
    assert meta["split"] == "episodes"
    assert meta["window"] == 20 and meta["train_windows"] >= meta["test_windows"] > 0
    out, plot = tmp_path / "rewards.json", tmp_path / "fig8.png"
    result = cli(
        "rewards", "evaluate", "--run", str(run), "--run", str(other), "--heads", str(heads),
        "--heads", str(other_heads), "--label", "struct", "--label", "other", "--data", str(data),
        "--json", str(out), "--plot", str(plot), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(out.read_text())
    assert [r["label"] for r in payload["runs"]] == ["struct", "other"]
    # Each column is its own run with its own heads, scored on the very windows the heads
    # were tested on in training.
    for entry, head_dir in zip(payload["runs"], (heads, other_heads), strict=True):
        scores = entry["tasks"]["cartpole-balance"]
        assert len(scores["per_step"]) == 20
        summary = json.loads((head_dir / "train_summary.json").read_text())["tasks"]
        assert scores["normalized_mse"] == pytest.approx(
            summary["cartpole-balance"]["test_normalized_mse"], rel=1e-5
        )
    first, second = (r["tasks"]["cartpole-balance"]["normalized_mse"] for r in payload["runs"])
    assert first != pytest.approx(second, rel=1e-6)
    assert plot.stat().st_size > 0 and "normalized reward MSE" in result.stdout
    assert "other" in result.stdout


@pytest.mark.integration
def test_evaluate_trains_missing_heads_on_the_windows_it_scores(dmc, tmp_path):
    from keypoint_wm.rewards.evaluate import evaluate_reward_prediction

    run, data = dmc
    config = RewardTrainConfig(steps=10, split="episodes")
    result = evaluate_reward_prediction(
        [run], data, heads=[tmp_path / "heads"], tasks=["cartpole-balance"],
        train_missing=True, train_config=config, progress=False,
    )  # fmt: skip
    scores = result.variants[0].results[0].tasks["cartpole-balance"]
    summary = json.loads((tmp_path / "heads" / "train_summary.json").read_text())["tasks"]
    facts = summary["cartpole-balance"]
    assert scores.split == facts["split"] == "episodes"
    assert scores.test_windows == facts["test_windows"]
    assert scores.normalized_mse == pytest.approx(facts["test_normalized_mse"], rel=1e-5)
    # The figure to choose settings on travels with the scores: the head's validation score.
    assert scores.validation_normalized_mse == facts["validation_normalized_mse"]
    # (None here: two training windows leave no whole episode for validation.)
    assert facts["validation_windows"] == 0 and facts["validation_normalized_mse"] is None


@pytest.mark.integration
@pytest.mark.parametrize("tasks", [["cartpole-balance", "reacher-easy"], None])
def test_train_missing_trains_only_the_missing_heads(dmc, tmp_path, tasks):
    """A run killed part-way through a folder of heads keeps the heads it finished: the
    next --train-missing trains the others (with --tasks, or every task of the data) and
    leaves those as they are, and scores every task."""
    from keypoint_wm.rewards.evaluate import evaluate_reward_prediction

    run, data = dmc
    heads, config = tmp_path / "heads", RewardTrainConfig(steps=5, split="episodes")
    kwargs = {"heads": [heads], "train_missing": True, "train_config": config, "progress": False}
    evaluate_reward_prediction([run], data, tasks=["cartpole-balance"], **kwargs)
    weights = heads / "cartpole-balance" / "head.safetensors"
    first = weights.stat()
    result = evaluate_reward_prediction([run], data, tasks=tasks, **kwargs)
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert (heads / "reacher-easy" / "head.json").is_file()
    summary = json.loads((heads / "train_summary.json").read_text())["tasks"]
    assert sorted(summary) == ["cartpole-balance", "reacher-easy"]
    assert sorted(result.variants[0].results[0].tasks) == ["cartpole-balance", "reacher-easy"]


@pytest.mark.integration
def test_train_again_keeps_finished_heads_of_the_same_model_and_settings(dmc, tmp_path):
    """`rewards train` killed part-way and run again keeps the heads it finished (same
    settings, same weights) and trains the rest; other settings retrain everything."""
    from keypoint_wm.rewards.train import train_reward_heads

    run, data = dmc
    model = keypoint_wm.load(run, device="cpu")
    heads, config = tmp_path / "heads", RewardTrainConfig(steps=5, split="episodes")
    train_reward_heads(model, data, heads, config, ["cartpole-balance"], progress=False)
    weights = heads / "cartpole-balance" / "head.safetensors"
    first = weights.stat()
    again = train_reward_heads(model, data, heads, config, progress=False)
    assert again.kept == ("cartpole-balance",)
    assert (weights.stat().st_ino, weights.stat().st_mtime_ns) == (first.st_ino, first.st_mtime_ns)
    assert sorted(again.tasks) == ["cartpole-balance", "reacher-easy"]
    other = RewardTrainConfig(steps=6, split="episodes")
    assert train_reward_heads(model, data, heads, other, progress=False).kept == ()
    assert weights.stat().st_mtime_ns != first.st_mtime_ns


@pytest.mark.integration
def test_cli_errors_name_the_flag(dmc, tmp_path):
    run, data = dmc
    result = cli("rewards", "evaluate", "--run", str(tmp_path), "--data", str(data))
    assert result.returncode == 2 and "--run" in result.stderr
    result = cli("rewards", "evaluate", "--run", str(run), "--data", str(data), "--heads",
                 str(tmp_path / "none"))  # fmt: skip
    assert result.returncode == 1 and "keypoint-wm rewards train" in result.stderr
    result = cli("rewards", "evaluate", "--run", str(run), "--data", str(data), "--inputs",
                 "hidden", "--inputs", "hidden")  # fmt: skip
    assert result.returncode == 2 and "--inputs: give it once for every run" in result.stderr


@pytest.mark.integration
def test_imagined_rewards_follow_the_actions(dmc):
    run, _ = dmc
    model = keypoint_wm.load(run, device="cpu", precision="fp32")
    head = RewardHead(RewardHeadConfig(input_size=model.config.model.rnn_units, units=8))
    frames = np.random.default_rng(0).integers(0, 255, (2, 3, 32, 32, 3), dtype=np.uint8)
    actions = np.zeros((2, 7, model.action_size), np.float32)
    out = imagine_rewards(model, head, frames, actions, num_future=4, num_samples=3)
    assert out.rewards.shape == (2, 3, 7) and out.num_observed == 3
    other = actions.copy()
    other[:, 4:] = 1.0
    torch.manual_seed(0)
    a = imagine_rewards(model, head, frames, actions, 4).rewards
    torch.manual_seed(0)
    b = imagine_rewards(model, head, frames, other, 4).rewards
    torch.testing.assert_close(a[..., :4], b[..., :4])  # the past does not see the future
    assert not torch.allclose(a[..., 5:], b[..., 5:])  # the imagined frames do
