"""Checkpoints of agent units: a killed ``evaluate agents`` resumes its unit exactly where it
stood.

The round trips use SB3's own agents on the state variant's environment (cartpole-balance's
true state, 10-step episodes), in this process: an agent "killed" part-way (its training
broken off after a checkpoint) and resumed into a fresh agent and fresh environments must
end bitwise as the agent never stopped. tests/envs/agents/test_resume.py kills the real
command.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecTransposeImage

from keypoint_wm.checkpoint import CheckpointError
from keypoint_wm.envs.agents.checkpoints import UnitCheckpoints, partial_dir, resume_unit
from keypoint_wm.envs.agents.config import Unit
from keypoint_wm.envs.agents.env_state import ReplayableEpisode
from keypoint_wm.envs.agents.state import StateEnv
from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.errors import Stopped, UsageError
from keypoint_wm.stop_signals import StopRequest

SETTINGS = {"algo": "sac", "steps": 120}
TASK = "cartpole-balance"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Agents train on one thread, as the command's do: several threads of a small MLP's
    updates wait on each other while other work shares the cores (runner.py)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _venv(envs: int = 1, seed: int = 0):
    """The state variant's training envs: 10-step episodes (0.2 s at action repeat 2)."""

    def build():
        return ReplayableEpisode(StateEnv(TASK, action_repeat=2, time_limit=0.2))

    return make_vec_env(build, n_envs=envs, seed=seed)


def _pixel_venv(envs: int = 2, seed: int = 0):
    """The pixels variant's training envs at 36x36 (NatureCNN's least), channels first."""

    def build():
        kwargs = {"time_limit": 0.2}
        return ReplayableEpisode(
            DMCPixelEnv("cartpole", "balance", size=36, action_repeat=2, task_kwargs=kwargs)
        )

    return VecTransposeImage(make_vec_env(build, n_envs=envs, seed=seed))


def _sac(seed: int = 0) -> SAC:
    return SAC("MlpPolicy", _venv(), buffer_size=200, learning_starts=20, batch_size=16,
               seed=seed, device="cpu")  # fmt: skip


def _ppo(seed: int = 0) -> PPO:
    return PPO("MlpPolicy", _venv(2), n_steps=8, batch_size=8, n_epochs=2, seed=seed,
               device="cpu")  # fmt: skip


def _pixel_ppo(seed: int = 0) -> PPO:
    return PPO("CnnPolicy", _pixel_venv(), n_steps=8, batch_size=16, n_epochs=1, seed=seed,
               device="cpu")  # fmt: skip


class _BreakOff(BaseCallback):
    """Ends training after ``steps`` env steps, as a kill would (nothing saved then)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = steps

    def _on_step(self) -> bool:
        return self.num_timesteps < self.steps


def _train_with_checkpoints(agent, folder: Path, steps: int, budget: int | None = None):
    """Train ``agent`` towards ``budget`` (default ``steps``), checkpointing every round,
    and break off after ``steps``."""
    curve: list[list[float]] = [[50, -1234.5]]
    saver = UnitCheckpoints(folder, SETTINGS, curve, lambda: 100, every=0.0)
    agent.learn(budget or steps, callback=CallbackList([saver, _BreakOff(steps)]))
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


def _assert_bitwise_equal(resumed: BaseAlgorithm, never_stopped: BaseAlgorithm) -> None:
    """The two agents, their observations, buffers and every generator, bit for bit."""
    assert resumed.num_timesteps == never_stopped.num_timesteps
    assert resumed._episode_num == never_stopped._episode_num
    _same_state_dicts(resumed.get_parameters(), never_stopped.get_parameters())
    np.testing.assert_array_equal(resumed._last_obs, never_stopped._last_obs)
    buffer = getattr(resumed, "replay_buffer", None)
    if buffer is not None:
        for name in ("observations", "next_observations", "actions", "rewards", "dones"):
            np.testing.assert_array_equal(
                getattr(buffer, name), getattr(never_stopped.replay_buffer, name)
            )
    for a, b in zip(resumed.get_env().envs, never_stopped.get_env().envs, strict=True):
        np.testing.assert_array_equal(
            a.unwrapped.dm_env.physics.get_state(), b.unwrapped.dm_env.physics.get_state()
        )
        assert a.rewards == b.rewards  # the Monitor's episode so far


def _rngs() -> tuple:
    numpy_state = np.random.get_state(legacy=False)  # noqa: NPY002
    return torch.get_rng_state().numpy().tobytes(), numpy_state["state"]["key"].tobytes()


@pytest.mark.parametrize(
    ("algo", "budget", "kill", "checkpoint"),
    [
        ("sac", 40, 15, 14),  # in SAC's first 20 steps: random actions from the action space
        ("sac", 120, 57, 56),
        ("ppo", 96, 40, 32),  # two envs, rollouts of 8 steps each
        # Frames: the last observations are a transposed view, whose layout must come back
        # (a convolution's last bits depend on it).
        ("pixels", 48, 20, 16),
    ],
)
def test_a_resumed_agent_ends_bitwise_as_the_one_never_stopped(
    tmp_path, algo, budget, kill, checkpoint
):
    make = {"sac": _sac, "ppo": _ppo, "pixels": _pixel_ppo}[algo]
    folder = tmp_path / "state-seed0.partial"
    _train_with_checkpoints(make(), folder, kill, budget)  # "killed" at step `kill`
    resumed = make(seed=7)  # another seed: everything must come from the checkpoint
    progress, _ = resume_unit(resumed, folder, SETTINGS)
    assert progress.env_steps == checkpoint  # each env part-way through a 10-step episode
    resumed.learn(budget - resumed.num_timesteps, reset_num_timesteps=False)
    after_resumed = _rngs()
    never_stopped = make()
    never_stopped.learn(budget)
    assert after_resumed == _rngs()
    _assert_bitwise_equal(resumed, never_stopped)


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
    buffer = fresh.replay_buffer
    assert buffer.pos == 59 and not buffer.full
    np.testing.assert_array_equal(buffer.observations[:59], trained.replay_buffer.observations[:59])
    np.testing.assert_array_equal(buffer.actions[:59], trained.replay_buffer.actions[:59])
    # The episode in progress (the 6th, 9 steps in) was replayed into the fresh env.
    (env,) = fresh.get_env().envs
    assert env.total_steps == 59 and len(env.rewards) == 9 and not env.needs_reset
    # The resumed agent trains on from there to the budget, as SB3 counts it.
    fresh.learn(61, reset_num_timesteps=False)
    assert fresh.num_timesteps == 120 and fresh.replay_buffer.pos == 120


def test_a_stop_request_saves_at_the_next_round_of_updates_and_raises_stopped(tmp_path):
    folder = tmp_path / "state-seed0.partial"
    stop = StopRequest()

    class Interrupt(BaseCallback):  # SIGINT arrives during step 30
        def _on_step(self) -> bool:
            if self.num_timesteps == 30:
                stop.signum = signal.SIGINT
            return True

    saver = UnitCheckpoints(folder, SETTINGS, [], lambda: 100, every=3600.0, stop=stop,
                            label="cartpole-balance state seed 0", budget=120)  # fmt: skip
    with pytest.raises(Stopped) as stopped:
        _sac().learn(120, callback=CallbackList([Interrupt(), saver]))
    assert stopped.value.exit_code == 130
    where = folder / "checkpoints" / "step_00000030"
    assert "stopped by SIGINT at step 30 of 120 of cartpole-balance state seed 0" in str(
        stopped.value
    )
    assert str(where) in str(stopped.value) and (where / "state.json").is_file()
    progress, _ = resume_unit(_sac(), folder, SETTINGS)
    assert progress.env_steps == 30


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


def test_a_checkpoint_of_the_earlier_inexact_format_is_refused_naming_its_folder(tmp_path):
    folder = tmp_path / "u.partial"
    _train_with_checkpoints(_sac(), folder, 30)
    (path,) = (folder / "checkpoints").iterdir()
    state = json.loads((path / "state.json").read_text())
    del state["format"]
    (path / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError, match=f"earlier format.*delete {folder}"):
        resume_unit(_sac(), folder, SETTINGS)


def test_an_env_that_cannot_be_restored_exactly_is_refused_when_saving(tmp_path):
    agent = SAC("MlpPolicy", "Pendulum-v1", buffer_size=50, learning_starts=5, seed=0,
                device="cpu")  # fmt: skip
    with pytest.raises(TypeError, match="cannot save the state of a TimeLimit exactly"):
        _train_with_checkpoints(agent, tmp_path / "u.partial", 10)


def test_no_checkpoint_means_a_fresh_start(tmp_path):
    assert resume_unit(_sac(), tmp_path / "absent.partial", SETTINGS) is None


def test_partial_dir_sits_beside_the_units_result(tmp_path):
    unit = Unit("cartpole-balance", "pixels", 2)
    assert partial_dir(unit, tmp_path) == tmp_path / "units/cartpole-balance/pixels-seed2.partial"
