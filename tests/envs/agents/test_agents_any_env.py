"""``keypoint-wm evaluate agents`` on a Gymnasium id of the run's ``collect --env`` data.

The tiny world model of tests/any_env_testing.py (trained 2 steps on InvertedPendulum-v5
and a dot of our own, 40x40 renders at 32x32) and PPO for 64 env steps per variant:
``random`` and ``state`` (InvertedPendulum's own observation, its own [-3, 3] actions) and
``latent`` (its rendered frames as collected, through LatentVecEnv). Episodes are capped
at 30 steps through ``--env-kwargs``, on top of the data's ``width``/``height``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from any_env_testing import MUJOCO_ENV, tiny_env_run

from keypoint_wm.cli.main import main as cli_main

pytestmark = pytest.mark.integration

FLAGS = ["--algo", "ppo", "--steps", "64", "--seeds", "1", "--envs", "2", "--eval-every", "32",
         "--eval-episodes", "2", "--device", "cpu", "--quiet",
         "--env-kwargs", '{"max_episode_steps": 30}']  # fmt: skip


DRILL = Path(__file__).with_name("agent_drill.py")
# PPO on 2 envs: 4 rollouts of 16 steps; with --checkpoint-minutes 0 a checkpoint before each
# of the last three (16, 32, 48), part-way through the episodes in progress.
RESUMED = ["--tasks", MUJOCO_ENV, "--variants", "state,latent", "--checkpoint-minutes", "0",
           *FLAGS]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_env_run(tmp_path_factory.getbasetemp())


def drill(run: Path, out: Path, **plan: Any) -> subprocess.CompletedProcess:
    """The command in a subprocess, stopped as ``plan`` says (agent_drill.py)."""
    plan["digests"] = str(out.with_name(out.name + ".digests"))
    return subprocess.run(
        [sys.executable, str(DRILL), json.dumps(plan), "evaluate", "agents", "--run", str(run),
         "--out", str(out), *RESUMED],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def results_and_digests(out: Path) -> tuple[dict[str, Any], set[tuple[str, int, str]]]:
    results = {}
    for path in sorted((out / "units" / MUJOCO_ENV).glob("*.json")):
        result = json.loads(path.read_text())
        result.pop("seconds")
        results[path.stem] = result
    lines = out.with_name(out.name + ".digests").read_text().splitlines()
    digests = {(e["unit"], e["steps"], e["digest"]) for e in map(json.loads, lines)}
    return results, digests


def test_random_state_and_latent_agents_on_a_gymnasium_id(run, tmp_path, capsys):
    out = tmp_path / "out"
    status = cli_main(["evaluate", "agents", "--run", str(run), "--out", str(out),
                       "--tasks", MUJOCO_ENV, "--variants", "random,state,latent", *FLAGS])  # fmt: skip
    assert status == 0, capsys.readouterr().err[-3000:]
    report = json.loads((out / "agents.json").read_text())
    assert list(report["tasks"]) == [MUJOCO_ENV]
    assert set(report["tasks"][MUJOCO_ENV]) == {"random", "state", "latent"}
    for variant in ("random", "state", "latent"):
        unit = json.loads((out / "units" / MUJOCO_ENV / f"{variant}-seed0.json").read_text())
        returns = unit["final_episode_returns"]
        # InvertedPendulum pays 1 per step the pole stays up; at most the 30-step cap
        assert len(returns) == 2 and all(1 <= r <= 30 for r in returns), (variant, returns)
        assert unit["settings"]["env_kwargs"] == {
            "width": 40,
            "height": 40,
            "max_episode_steps": 30,
        }
        if variant != "random":
            assert unit["env_steps"] >= 64 and unit["curve"][-1][0] == unit["env_steps"]
    assert not list((out / "units" / MUJOCO_ENV).glob("*.partial"))  # checkpoints removed


def test_a_gymnasium_envs_episode_is_restored_exactly_from_its_checkpoint(run):
    """The state and latent variants' training envs (a checkpoint holds their episodes in
    progress): saved part-way, loaded into fresh envs, the next steps are the same."""
    import keypoint_wm
    from keypoint_wm.envs.agents import AgentEvalConfig
    from keypoint_wm.envs.agents.env_state import env_state, load_env_state
    from keypoint_wm.envs.agents.variants import AgentSetup, train_env

    model = keypoint_wm.load(run, device="cpu")
    config = AgentEvalConfig(tasks=(MUJOCO_ENV,), envs=2)
    setup = AgentSetup(
        model, config, 1, model.device, None, (), progress=False,
        gym_ids={MUJOCO_ENV: MUJOCO_ENV}, env_kwargs={"width": 40, "height": 40},
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for variant in ("state", "latent"):
        first = train_env(variant, MUJOCO_ENV, setup, seed=0)
        first.reset()
        for _ in range(7):  # some episodes end (the pole falls) and restart on the way
            first.step(rng.uniform(-3, 3, (2, 1)).astype(np.float32))
        saved = env_state(first)
        second = train_env(variant, MUJOCO_ENV, setup, seed=0)
        load_env_state(second, saved)
        for _ in range(5):
            actions = rng.uniform(-3, 3, (2, 1)).astype(np.float32)
            a, b = first.step(actions), second.step(actions)
            np.testing.assert_array_equal(a[0], b[0])  # observations
            np.testing.assert_array_equal(a[1], b[1])  # rewards
            np.testing.assert_array_equal(a[2], b[2])  # dones
        first.close()
        second.close()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--variants", "dream"], "--variants: dream takes DMCS tasks only"),
        (["--variants", "state", "--time-limit", "1"], "--time-limit is in simulated seconds"),
        (["--variants", "state", "--env-kwargs", "[1]"], "--env-kwargs must be a JSON object"),
        (["--variants", "state", "--env-kwargs", '{"nope": 1}'], f"--tasks {MUJOCO_ENV}: "),
    ],
)
def test_what_a_gymnasium_id_cannot_do_is_one_line(run, tmp_path, capsys, flags, message):
    status = cli_main(["evaluate", "agents", "--run", str(run), "--out", str(tmp_path / "o"),
                       "--tasks", MUJOCO_ENV, "--quiet", *flags])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_killed_units_of_a_gymnasium_id_resume_bitwise_as_never_stopped(run, tmp_path):
    """The training envs' episodes are replayed from a checkpoint
    (``ReplayableGymEpisode``): a unit killed after a checkpoint and run again ends with the
    same results and, at every evaluation, the same agent hash as one never stopped."""
    never = tmp_path / "never"
    done = drill(run, never)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "out"
    stops = [
        ({"unit": "state-seed0", "after": 1}, -9, ""),  # state saved at 16, killed
        ({"unit": "latent-seed0", "after": 2}, -9, "state@16"),  # latent saved at 32
        ({}, 0, "latent@32"),
    ]
    for plan, status, resumes in stops:
        result = drill(run, out, **plan)
        output = result.stdout + result.stderr
        assert result.returncode == status, (plan, output[-3000:])
        assert "not bitwise" not in output  # every replayed episode ended where it was
        if resumes:
            variant, step = resumes.split("@")
            partial = out / "units" / MUJOCO_ENV / f"{variant}-seed0.partial"
            checkpoint = partial / "checkpoints" / f"step_{int(step):08d}"
            assert f"resuming from {checkpoint} ({step} steps)" in output, (plan, output)
    assert results_and_digests(out) == results_and_digests(never)


def test_the_latent_variant_sees_what_latent_observation_sees(run):
    """The latent agent's env (LatentVecEnv over RenderedPixels) gives the observations
    LatentObservation gives on the user's own env, for the same seed and actions."""
    import gymnasium

    import keypoint_wm
    from keypoint_wm.envs import LatentObservation
    from keypoint_wm.envs.agents.variants import AgentEvalConfig, AgentSetup, eval_env

    model = keypoint_wm.load(run, device="cpu")
    kwargs = {"width": 40, "height": 40}
    config = AgentEvalConfig(tasks=(MUJOCO_ENV,), eval_episodes=1)
    setup = AgentSetup(
        model, config, 1, model.device, None, (),
        gym_ids={MUJOCO_ENV: MUJOCO_ENV}, env_kwargs=kwargs,
    )  # fmt: skip
    venv = eval_env("latent", MUJOCO_ENV, setup)  # what the latent agent is scored on
    own = LatentObservation(gymnasium.make(MUJOCO_ENV, render_mode="rgb_array", **kwargs), model)
    venv.seed(5)
    vec_obs = venv.reset()
    obs, _ = own.reset(seed=5)
    np.testing.assert_allclose(vec_obs[0], obs, atol=1e-6)
    rng = np.random.default_rng(1)
    for _ in range(4):
        action = rng.uniform(-3, 3, (1,)).astype(np.float32)
        vec_obs, _, dones, _ = venv.step(action[None])
        obs, _, terminated, truncated, _ = own.step(action)
        if dones[0] or terminated or truncated:
            break
        np.testing.assert_allclose(vec_obs[0], obs, atol=1e-6)
    venv.close()
    own.close()
