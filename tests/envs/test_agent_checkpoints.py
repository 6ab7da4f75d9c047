"""Checkpoints of agent units: a killed ``evaluate agents`` resumes its unit where it stood.

The round trips use SB3's own agents on Gymnasium's Pendulum; the kill is a real SIGKILL of
the command, run as a user runs it, on the tiny world model of ``test_agents``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.callbacks import CallbackList

from keypoint_wm.checkpoint import CheckpointError
from keypoint_wm.envs.agents.checkpoints import UnitCheckpoints, partial_dir, resume_unit
from keypoint_wm.envs.agents.config import Unit
from keypoint_wm.errors import UsageError

SETTINGS = {"algo": "sac", "steps": 120}


def _sac(seed: int = 0) -> SAC:
    return SAC("MlpPolicy", "Pendulum-v1", buffer_size=200, learning_starts=20, batch_size=16,
               seed=seed, device="cpu")  # fmt: skip


def _train_with_checkpoints(agent, folder: Path, steps: int) -> UnitCheckpoints:
    curve: list[list[float]] = [[50, -1234.5]]
    saver = UnitCheckpoints(folder, SETTINGS, curve, lambda: 100, every=0.0)
    agent.learn(steps, callback=CallbackList([saver]))
    return saver


def _same_state_dicts(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _same_state_dicts(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
        else:
            assert a[key] == b[key], key


def test_a_resumed_sac_agent_has_every_weight_moment_transition_and_counter(tmp_path):
    folder = tmp_path / "state-seed0.partial"
    trained = _sac()
    _train_with_checkpoints(trained, folder, 60)
    # The last checkpoint is taken between updates, at the start of the last step's rollout.
    saved = sorted((folder / "checkpoints").iterdir())
    assert [p.name for p in saved] == ["step_00000059"]  # keep=1: older ones pruned
    fresh = _sac(seed=7)
    progress, path = resume_unit(fresh, folder, SETTINGS)
    assert path == saved[0] and progress.env_steps == fresh.num_timesteps == 59
    assert progress.curve == [[50, -1234.5]] and progress.next_eval == 100
    assert fresh._n_updates == 59 - 20 and fresh.log_ent_coef.requires_grad
    # The checkpoint holds the agent as it was then: replay its last step's state by hand.
    buffer = fresh.replay_buffer
    assert buffer.pos == 59 and not buffer.full
    np.testing.assert_array_equal(buffer.observations[:59], trained.replay_buffer.observations[:59])
    np.testing.assert_array_equal(buffer.actions[:59], trained.replay_buffer.actions[:59])
    # The resumed agent trains on from there to the budget, as SB3 counts it.
    fresh.learn(61, reset_num_timesteps=False)
    assert fresh.num_timesteps == 120 and fresh.replay_buffer.pos == 120


def test_a_checkpoint_restores_the_exact_parameters_and_optimiser_state(tmp_path):
    folder = tmp_path / "u.partial"
    agent = PPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0,
                device="cpu")  # fmt: skip
    saver = UnitCheckpoints(folder, SETTINGS, [], lambda: 64, every=0.0)
    agent.learn(64, callback=CallbackList([saver]))  # checkpoint after the first rollout
    expected = PPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, n_epochs=1, seed=0,
                   device="cpu")  # fmt: skip
    expected.learn(32)  # the same agent, stopped where the checkpoint was taken
    fresh = PPO("MlpPolicy", "Pendulum-v1", n_steps=32, batch_size=32, n_epochs=1, seed=3,
                device="cpu")  # fmt: skip
    progress, _ = resume_unit(fresh, folder, SETTINGS)
    assert progress.env_steps == 32
    _same_state_dicts(fresh.get_parameters(), expected.get_parameters())


def test_a_checkpoint_of_other_settings_is_refused_and_kept(tmp_path):
    folder = tmp_path / "u.partial"
    _train_with_checkpoints(_sac(), folder, 30)
    files = sorted(folder.rglob("*"))
    with pytest.raises(UsageError, match="--out.*steps: 120 now 240"):
        resume_unit(_sac(), folder, {**SETTINGS, "steps": 240})
    assert sorted(folder.rglob("*")) == files


def test_a_damaged_checkpoint_is_named(tmp_path):
    folder = tmp_path / "u.partial"
    _train_with_checkpoints(_sac(), folder, 30)
    (path,) = (folder / "checkpoints").iterdir()
    (path / "agent.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=str(path)):
        resume_unit(_sac(), folder, SETTINGS)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert resume_unit(_sac(), tmp_path / "absent.partial", SETTINGS) is None


def test_partial_dir_sits_beside_the_units_result(tmp_path):
    unit = Unit("cartpole-balance", "pixels", 2)
    assert partial_dir(unit, tmp_path) == tmp_path / "units/cartpole-balance/pixels-seed2.partial"


@pytest.mark.integration
def test_a_killed_command_resumes_its_unit_without_losing_its_steps(tmp_path):
    from kwm_testing import tiny_config

    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.train import train

    task = "cartpole-balance"
    data, run, out = tmp_path / "data", tmp_path / "run", tmp_path / "out"
    collect_dataset(
        CollectConfig(tasks=(task,), episodes=2, steps=10, action_repeat=2, size=64, out=data),
        workers=1,
        progress=False,
    )
    train(
        tiny_config(2, preset="dmcs-cpu", **{"train.probe_every": 0}),
        data,
        run,
        progress=False,
        action_conditioned=True,
    )
    command = [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "agents", "--run", str(run),
               "--out", str(out), "--tasks", task, "--variants", "state", "--algo", "sac",
               "--steps", "1200", "--seeds", "1", "--eval-every", "300", "--eval-episodes", "1",
               "--time-limit", "0.2", "--checkpoint-minutes", "60", "--device", "cpu",
               "--quiet"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    checkpoints = out / "units" / task / "state-seed0.partial" / "checkpoints"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            steps = [int(p.name[5:]) for p in checkpoints.glob("step_*")]
            if steps and max(steps) >= 600:  # saved after each evaluation: two in
                break
            time.sleep(0.02)
        assert process.poll() is None, "the unit finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    # Killed at any moment: one checkpoint, or two when the newer was in place but the older
    # not yet pruned; a re-run resumes from the newest.
    killed_at = max(checkpoints.glob("step_*"))
    reached = int(killed_at.name[5:])
    state = json.loads((killed_at / "state.json").read_text())
    assert [point[0] for point in state["curve"]][:2] == [300, 600]

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {killed_at} ({reached} steps)" in result.stdout + result.stderr
    unit = json.loads((out / "units" / task / "state-seed0.json").read_text())
    assert unit["env_steps"] == 1200
    steps = [point[0] for point in unit["curve"]]
    assert steps == list(range(300, 1201, 300))  # the evaluations before the kill are kept
    assert unit["curve"][:2] == state["curve"][:2]
    assert not (out / "units" / task / "state-seed0.partial").exists()
