"""Exact resumes of ``keypoint-wm evaluate agents``, drilled on the real command.

Each drill runs the command in a subprocess (tests/envs/agents/agent_drill.py: the CLI's own
``main``, stopped on cue) on the tiny action-conditioned world model of
tests/latent_testing.py, stops it -- SIGKILL right after a checkpoint is written or while
one is being written, SIGTERM -- and runs it again, as a user would, until it finishes.
Every unit must end as in a run never stopped: the same result file (returns, curves) and,
at each evaluation a resumed process makes, the same hash of the agent's weights, optimiser
state and global RNG states -- bitwise, which the returns alone cannot show (SB3's
``Monitor`` rounds them to 6 decimals).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from latent_testing import tiny_dmc_run

pytestmark = pytest.mark.integration

TASK = "cartpole-balance"
DRILL = Path(__file__).with_name("agent_drill.py")
# cartpole's control timestep is 0.01 s: 0.2 s at the run's action repeat of 2 is a 10-step
# episode, so every checkpoint below falls part-way through the episodes in progress.
COMMON = ["--tasks", TASK, "--seeds", "1", "--time-limit", "0.2", "--eval-episodes", "1",
          "--head-steps", "3", "--device", "cpu", "--quiet"]  # fmt: skip
# PPO on 2 envs: 4 rollouts of 16 steps, a checkpoint before each of the last three (16, 32,
# 48); the dream's steps are imagined ones.
PPO = [*COMMON, "--algo", "ppo", "--variants", "random,state,latent,dream", "--steps", "64",
       "--envs", "2", "--eval-every", "32", "--checkpoint-minutes", "0"]  # fmt: skip
# SAC on one env: a checkpoint after each evaluation, every 10 steps; the first at step 10,
# among the 20 random steps (drawn from the action space) before learning starts.
SAC = [*COMMON, "--algo", "sac", "--variants", "state", "--steps", "200", "--eval-every", "10",
       "--checkpoint-minutes", "60"]  # fmt: skip
KILLED = -9  # subprocess's return code of a process killed by SIGKILL


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return tiny_dmc_run(tmp_path_factory.getbasetemp())


def _command(run: Path, out: Path, flags: list[str], **plan: Any) -> subprocess.CompletedProcess:
    """The command, stopped as ``plan`` says (agent_drill.py); digests beside ``out``."""
    plan["digests"] = str(out.with_name(out.name + ".digests"))
    return subprocess.run(
        [sys.executable, str(DRILL), json.dumps(plan), "evaluate", "agents", "--run", str(run),
         "--out", str(out), *flags],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def _results(out: Path) -> dict[str, dict[str, Any]]:
    """Each unit's result file, less its wall time and its own folder's reward head path."""
    results = {}
    for path in sorted((out / "units" / TASK).glob("*.json")):
        result = json.loads(path.read_text())
        result.pop("seconds")
        result.pop("reward_head", None)
        results[path.stem] = result
    return results


def _digests(out: Path) -> dict[tuple[str, int], str]:
    """(unit, step) -> the agent's hash when it was scored there, each the same every time
    an evaluation was made again (after a resume from an earlier checkpoint)."""
    digests: dict[tuple[str, int], str] = {}
    for line in out.with_name(out.name + ".digests").read_text().splitlines():
        entry = json.loads(line)
        key = (entry["unit"], entry["steps"])
        assert digests.setdefault(key, entry["digest"]) == entry["digest"], key
    return digests


def _never_stopped(run: Path, out: Path, flags: list[str]) -> Path:
    result = _command(run, out, flags)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def ppo_never_stopped(run, tmp_path_factory) -> Path:
    return _never_stopped(run, tmp_path_factory.mktemp("ppo") / "out", PPO)


@pytest.fixture(scope="module")
def sac_never_stopped(run, tmp_path_factory) -> Path:
    return _never_stopped(run, tmp_path_factory.mktemp("sac") / "out", SAC)


def _drill(run: Path, out: Path, flags: list[str], stops: list[tuple[dict, int, str]]) -> None:
    """Run the command once per stop: its plan, the status it must end with, and the
    checkpoint it must resume from ("" for none, else ``<variant>@<step>``)."""
    for plan, status, resumes in stops:
        result = _command(run, out, flags, **plan)
        output = result.stdout + result.stderr
        assert result.returncode == status, (plan, output[-3000:])
        assert "not bitwise" not in output  # no replayed episode ended elsewhere
        if resumes:
            variant, step = resumes.split("@")
            partial = out / "units" / TASK / f"{variant}-seed0.partial"
            checkpoint = partial / "checkpoints" / f"step_{int(step):08d}"
            assert f"resuming from {checkpoint} ({step} steps)" in output, (plan, output)
        else:
            assert "resuming" not in output, (plan, output)


def _assert_ends_as_never_stopped(out: Path, never_stopped: Path) -> None:
    assert _results(out) == _results(never_stopped)
    reference, resumed = _digests(never_stopped), _digests(out)
    assert resumed.keys() == reference.keys()  # every evaluation made at least once
    assert resumed == reference
    assert not list((out / "units" / TASK).glob("*.partial"))  # checkpoints removed


def test_ppo_units_killed_at_several_points_end_bitwise_as_never_stopped(
    run, ppo_never_stopped, tmp_path
):
    out = tmp_path / "out"
    state, latent, dream = "state-seed0", "latent-seed0", "dream-seed0"
    _drill(run, out, PPO, [
        ({"unit": state, "after": 1}, KILLED, ""),  # random finished, state saved at 16
        ({"unit": state, "after": 2, "writing": True}, KILLED, "state@16"),  # 48 half-written
        ({"unit": latent, "after": 2}, KILLED, "state@32"),  # state finished, latent at 32
        ({"unit": dream, "after": 3}, KILLED, "latent@32"),  # dream saved at 48
        ({}, 0, "dream@48"),
    ])  # fmt: skip
    _assert_ends_as_never_stopped(out, ppo_never_stopped)


def test_a_sac_unit_killed_at_several_points_ends_bitwise_as_never_stopped(
    run, sac_never_stopped, tmp_path
):
    out = tmp_path / "out"
    _drill(run, out, SAC, [
        ({"unit": "state-seed0", "after": 1}, KILLED, ""),  # at 10, before learning starts
        ({"unit": "state-seed0", "after": 5, "writing": True}, KILLED, "state@10"),  # 60
        ({}, 0, "state@50"),
    ])  # fmt: skip
    _assert_ends_as_never_stopped(out, sac_never_stopped)


def test_sigterm_saves_the_unit_exits_143_and_a_rerun_ends_bitwise_as_never_stopped(
    run, sac_never_stopped, tmp_path
):
    out = tmp_path / "out"
    stopped = _command(run, out, SAC, unit="state-seed0", after=3, signal="SIGTERM")
    # SIGTERM arrives as the checkpoint of step 30 is written: the unit saves at its next
    # round of updates (SAC's rounds are one step) and stops, saying where.
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    checkpoint = out / "units" / TASK / "state-seed0.partial" / "checkpoints" / "step_00000031"
    assert (checkpoint / "state.json").is_file()
    assert (
        f"stopped by SIGTERM at step 31 of 200 of {TASK} state seed 0, its checkpoint saved "
        f"in {checkpoint}; run the same command again" in stopped.stderr
    )
    _drill(run, out, SAC, [({}, 0, "state@31")])
    _assert_ends_as_never_stopped(out, sac_never_stopped)


def test_a_stop_in_a_unit_that_does_not_train_lets_it_finish_then_stops(run, tmp_path):
    out = tmp_path / "out"
    flags = [*COMMON, "--algo", "sac", "--variants", "random,state", "--steps", "20"]
    stopped = _command(run, out, flags, unit="random-seed0", after=0, signal="SIGINT")
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert (
        f"stopped by SIGINT after {TASK} random seed 0 (1 of 2 units to run; the finished ones "
        f"are in {out / 'units'}); run the same command again" in stopped.stderr
    )
    assert sorted(p.name for p in (out / "units" / TASK).glob("*seed0*")) == ["random-seed0.json"]
