"""A reward head stopped (SIGINT, SIGTERM) or killed part-way resumes exactly where it stood."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from latent_testing import tiny_dmc_data, tiny_dmc_run

from keypoint_wm.errors import Stopped
from keypoint_wm.rewards import RewardSequences, RewardTrainConfig, fit_reward_head
from keypoint_wm.rewards.head_checkpoints import HeadCheckpoints, partial_dir
from keypoint_wm.stop_signals import StopRequest

CONFIG = RewardTrainConfig(steps=120, units=16, batch_size=8, eval_every=25)
SETTINGS = {"run": "a run", "weights": "0123"}


def windows() -> RewardSequences:
    rng = np.random.default_rng(0)
    hidden = rng.normal(size=(60, 10, 6)).astype(np.float32)
    reward = (hidden[..., 0] + 0.3 * rng.normal(size=(60, 10))).astype(np.float32)
    episode = np.repeat(np.arange(12), 5)
    return RewardSequences("toy", hidden, reward, episode, episode, [])


class StopAt:
    """A TensorBoard-like writer that asks the fit to stop after optimiser step ``step``, as a
    signal arriving during that step would."""

    def __init__(self, stop: StopRequest, step: int) -> None:
        self.stop, self.step = stop, step

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if step + 1 == self.step:
            self.stop.signum = signal.SIGTERM


def fit(folder: Path, stop_after: int | None = None, settings: dict = SETTINGS):
    stop = StopRequest()
    writer = None if stop_after is None else StopAt(stop, stop_after)
    saves = HeadCheckpoints(folder, settings, stop)
    head = fit_reward_head(windows(), None, CONFIG, writer, False, "cpu", saves)
    return head, saves


def same_head(a, b) -> bool:
    state_a, state_b = a.state_dict(), b.state_dict()
    return all(torch.equal(state_a[k], state_b[k]) for k in state_a) and (
        a.config.metadata == b.config.metadata
    )


def test_a_head_stopped_at_any_step_ends_bitwise_where_the_unstopped_one_ends(tmp_path):
    reference, _ = fit(tmp_path / "never-stopped")
    for stop_after in (1, 25, 26, 60, 119):  # first step, at and after an evaluation, last
        folder = tmp_path / f"stopped-{stop_after}"
        with pytest.raises(Stopped) as stopped:
            fit(folder, stop_after)
        assert stopped.value.exit_code == 128 + signal.SIGTERM
        assert f"saved at step {stop_after} of {CONFIG.steps}" in str(stopped.value)
        assert "the same command continues it" in str(stopped.value)
        head, saves = fit(folder)
        assert saves.resumed == stop_after
        assert same_head(head, reference), stop_after


def test_a_killed_head_resumes_from_its_last_evaluation(tmp_path):
    """Checkpoints are saved at every evaluation step, so a head killed with SIGKILL loses
    the steps since then and no more, and still ends where the unkilled one ends."""
    reference, _ = fit(tmp_path / "reference")
    folder = tmp_path / "killed"
    with pytest.raises(Stopped):
        fit(folder, 60)
    checkpoints = partial_dir(folder) / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step_00000060"]
    # What SIGKILL after step 60 leaves: the checkpoint of the evaluation at step 50.
    with pytest.raises(Stopped):
        fit(tmp_path / "to-50", 50)
    (checkpoints / "step_00000060").rename(tmp_path / "dropped")
    (partial_dir(tmp_path / "to-50") / "checkpoints" / "step_00000050").rename(
        checkpoints / "step_00000050"
    )
    head, saves = fit(folder)
    assert saves.resumed == 50
    assert same_head(head, reference)


def test_a_checkpoint_of_other_settings_is_never_resumed(tmp_path):
    reference, _ = fit(tmp_path / "reference")
    folder = tmp_path / "head"
    with pytest.raises(Stopped):
        fit(folder, 60, settings={**SETTINGS, "weights": "other world model"})
    head, saves = fit(folder)
    assert saves.resumed is None
    assert same_head(head, reference)


FLAGS = ["--tasks", "cartpole-balance", "--steps", "300", "--quiet"]


def rewards_train(run: Path, data: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "keypoint_wm.cli", "rewards", "train", "--run", str(run)]
        + ["--data", str(data), "--out", str(out), *FLAGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def dmc(tmp_path_factory):
    """The tiny run, its data and the heads of an uninterrupted ``rewards train``."""
    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    reference = tmp_path_factory.mktemp("reference-heads")
    process = rewards_train(run, data, reference)
    assert process.wait(timeout=250) == 0, process.stderr.read()
    return run, data, reference


@pytest.mark.integration
@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=["SIGTERM", "SIGINT", "SIGKILL"]
)
def test_rewards_train_stopped_by_a_signal_saves_and_the_same_command_continues(dmc, tmp_path, sig):
    """Stopped (SIGTERM, SIGINT: saved at the step it ends) or killed (SIGKILL: the
    checkpoint of its last evaluation step is what is left) once the head has a checkpoint:
    the same command continues it and ends bitwise where the uninterrupted one ends."""
    run, data, reference = dmc
    stopped = rewards_train(run, data, tmp_path)
    checkpoints = tmp_path / "cartpole-balance.partial" / "checkpoints"
    deadline = time.monotonic() + 200
    while not (
        checkpoints.is_dir() and any(p.name.startswith("step_") for p in checkpoints.iterdir())
    ):
        assert stopped.poll() is None and time.monotonic() < deadline, stopped.stderr.read()
        time.sleep(0.01)
    stopped.send_signal(sig)
    _, err = stopped.communicate(timeout=100)
    if sig == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL, err
        assert (tmp_path / "cartpole-balance.partial").is_dir()  # nothing cleaned up
    else:
        assert stopped.returncode == 128 + sig, err
        assert f"stopped by {signal.Signals(sig).name}" in err and "saved at step" in err, err
    (left,) = [p.name for p in checkpoints.iterdir() if p.name.startswith("step_")]  # newest
    again = rewards_train(run, data, tmp_path)
    out, err = again.communicate(timeout=250)
    assert again.returncode == 0, err
    step = int(left.removeprefix("step_"))
    assert f"continued the head of cartpole-balance from its checkpoint at step {step}" in out
    weights = "cartpole-balance/head.safetensors"
    assert (tmp_path / weights).read_bytes() == (reference / weights).read_bytes()
    assert not (tmp_path / "cartpole-balance.partial").exists()
