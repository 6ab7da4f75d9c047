"""``keypoint-wm evaluate dream-fidelity`` on the Gymnasium ids of a run's ``collect --env``
data.

The tiny world model of tests/any_env_testing.py's :func:`tiny_classic_run` (trained 2 steps
on 3 short episodes each of Pendulum-v1, a ``Box(-2, 2)``, and CartPole-v1, a
``Discrete(2)``; 32x32, 2 observed + 2 predicted steps) is copied, and random reward heads
are saved where ``keypoint-wm rewards train`` puts them (``RUN/rewards/<env folder>``). The
command rolls every policy of each env from 2 initial states for 1 + 12 agent steps: a
CartPole pushed one way all along falls before that, and is dropped from the long horizon.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from any_env_testing import tiny_classic_run
from gymnasium import spaces

from keypoint_wm.cli.main import main as cli_main
from keypoint_wm.rewards.head import RewardHead, RewardHeadConfig, save_reward_head

pytestmark = pytest.mark.integration

BOX, DISCRETE = "Pendulum-v1", "CartPole-v1"
FLAGS = ["--long-horizon", "12", "--episodes", "2", "--device", "cpu", "--quiet"]
COLUMNS = {"real", "filtered", "imagined_mean", "imagined_sampled"}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A copy of the tiny classic-control run with a random head per env."""
    source = tiny_classic_run(tmp_path_factory.getbasetemp())
    run = tmp_path_factory.mktemp("fidelity-gym") / "run"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("tensorboard", "media"))
    torch.manual_seed(0)
    for task in (BOX, DISCRETE):
        config = RewardHeadConfig(
            input_size=16, units=8, reward_mean=0.5, inputs="hidden+keypoints", num_keypoints=4
        )
        save_reward_head(RewardHead(config), run / "rewards" / task)
    return run


@pytest.fixture(scope="module")
def first(run, tmp_path_factory) -> tuple[Path, dict]:
    """The command run once on both envs: (its folder, its JSON)."""
    out = tmp_path_factory.mktemp("fidelity-gym-out")
    argv = ["evaluate", "dream-fidelity", "--run", str(run), "--tasks", f"{BOX},{DISCRETE}",
            *FLAGS, "--json", str(out / "fidelity.json")]  # fmt: skip
    assert cli_main(argv) == 0
    return out, json.loads((out / "fidelity.json").read_text())


def test_the_command_scores_a_box_and_a_discrete_env(run, first):
    out, report = first
    assert (out / "fidelity.png").stat().st_size > 1000  # the plot goes beside --json
    assert report["horizons"] == [2, 12] and report["context"] == 2
    assert list(report["tasks"]) == [BOX, DISCRETE]
    policies = {
        BOX: ["zero", "plus", "minus", "random", "sine"],
        DISCRETE: ["action-0", "action-1", "random"],
    }
    for task, names in policies.items():
        entry = report["tasks"][task]
        assert entry["env_id"] == task and entry["head"] == str(run / "rewards" / task)
        assert entry["policies"] == names and entry["rollouts"] == 2 * len(names)
        assert entry["per_rollout"]["policy"] == [p for p in names for _ in range(2)]
        assert entry["per_rollout"]["task_seed"] == [1000, 1001] * len(names)
        steps = np.array(entry["per_rollout"]["steps"])
        for h in ("2", "12"):
            figures = entry["horizons"][h]
            kept = steps >= 1 + int(h)  # lasted the observed frames and the horizon
            assert figures["rollouts"] == kept.sum() and figures["dropped"] == (~kept).sum()
            assert set(figures["correlation"]) == COLUMNS - {"real"}
            assert set(figures["returns"]) == set(names) == set(figures["keypoint_error"])
            for policy in names:
                mine = kept[np.array(entry["per_rollout"]["policy"]) == policy]
                assert figures["policy_rollouts"][policy] == mine.sum()
                assert set(figures["returns"][policy]) == COLUMNS
                if not mine.any():
                    assert figures["returns"][policy]["real"] is None
            real = entry["per_rollout"]["returns"][h]["real"]
            assert [r is not None for r in real] == list(kept)
            if task == DISCRETE:  # CartPole pays 1 per step, the step it falls included
                assert all(r == int(h) for r in real if r is not None)
            else:  # Pendulum pays minus a cost
                assert all(r <= 0 for r in real)
        assert len(entry["keypoint_error_per_step"][names[0]]["imagined_mean"]) == 12
    assert (np.array(report["tasks"][BOX]["per_rollout"]["steps"]) == 13).all()
    cart = report["tasks"][DISCRETE]["horizons"]
    assert cart["2"]["dropped"] == 0
    # pushed one way all along, the pole falls within 13 steps
    assert cart["12"]["policy_rollouts"]["action-0"] == 0
    assert cart["12"]["policy_rollouts"]["action-1"] == 0
    assert len(list((run / "dream_fidelity").glob("*.json"))) == 2


def test_a_second_run_reuses_the_cached_results(run, first, tmp_path, monkeypatch):
    from keypoint_wm.envs.agents import dream_fidelity

    def refuse(*args, **kwargs):
        raise AssertionError("rolled out again instead of reusing the cached result")

    monkeypatch.setattr(dream_fidelity, "real_rollouts", refuse)
    argv = ["evaluate", "dream-fidelity", "--run", str(run), "--tasks", f"{BOX},{DISCRETE}",
            *FLAGS, "--json", str(tmp_path / "again.json")]  # fmt: skip
    assert cli_main(argv) == 0
    assert json.loads((tmp_path / "again.json").read_text()) == first[1]


def test_discrete_policies_act_one_hot_and_the_env_gets_the_index():
    from keypoint_wm.envs.agents.fidelity_envs import gym_policies
    from keypoint_wm.envs.gym_pixels import ActionUnits

    units = ActionUnits.of(spaces.Discrete(3, start=-1))
    policies = gym_policies(units)
    assert list(policies) == ["action-0", "action-1", "action-2", "random"]
    rng = np.random.default_rng(0)
    seen = set()
    for name, policy in policies.items():
        for t in range(20):
            action = policy(None, t, rng)
            assert action.dtype == np.float32 and action.shape == (3,)
            assert sorted(action) == [0.0, 0.0, 1.0]
            index = int(units.to_env(action))
            seen.add(index)
            if name != "random":
                assert index == int(name.removeprefix("action-")) - 1
    assert seen == {-1, 0, 1}
    # a Box's policies are the model's [-1, 1], mapped onto its bounds for the env
    box = ActionUnits.of(spaces.Box(-2.0, 2.0, (1,), np.float32))
    moves = {n: float(box.to_env(p(None, 0, rng))[0]) for n, p in gym_policies(box).items()}
    assert (moves["zero"], moves["plus"], moves["minus"]) == (0.0, 2.0, -2.0)


def test_cartpole_rollouts_store_one_hot_actions_and_pad_ended_episodes():
    from keypoint_wm.envs.agents.fidelity_envs import GymTask
    from keypoint_wm.envs.agents.fidelity_rollouts import real_rollouts

    rollouts = real_rollouts(
        DISCRETE, ("action-1", "random"), 1, 15, image_size=32, action_repeat=1,
        gym=GymTask(DISCRETE, {}, None),
    )  # fmt: skip
    assert rollouts.frames.shape == (2, 16, 32, 32, 3) and rollouts.actions.shape == (2, 16, 2)
    pushed, _ = rollouts.lengths
    assert pushed < 15  # pushed right all along, the pole falls
    assert (rollouts.actions[0, 1 : pushed + 1] == [0.0, 1.0]).all()
    for r, length in enumerate(rollouts.lengths):
        assert (rollouts.actions[r, 1 : length + 1].sum(-1) == 1.0).all()
        assert (rollouts.actions[r, length + 1 :] == 0).all()  # padded: no action
        assert (rollouts.rewards[r, 1 : length + 1] == 1).all()
        assert (rollouts.rewards[r, length + 1 :] == 0).all()
        assert (rollouts.frames[r, length:] == rollouts.frames[r, length]).all()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tasks", "InvertedPendulum-v5"], "--tasks: the world model was not trained on"),
        (["--tasks", DISCRETE, "--policies", "pd,sine"], "--policies pd,sine: none is defined"),
        (["--tasks", BOX, "--policies", "action-x"], "--policies must be"),
        (["--tasks", BOX, "--env-kwargs", "[1]"], "--env-kwargs must be a JSON object"),
        (["--tasks", BOX, "--env-kwargs", '{"nope": 1}'], f"--tasks {BOX}: cannot make"),
        (
            ["--tasks", BOX, "--env-kwargs", '{"max_episode_steps": 5}', *FLAGS],
            f"--long-horizon/--horizon: {BOX}'s episodes end after 5 agent steps",
        ),
    ],
)
def test_bad_flags_give_one_line_errors(run, capsys, flags, message):
    assert cli_main(["evaluate", "dream-fidelity", "--run", str(run), *flags, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert err.startswith("keypoint-wm evaluate dream-fidelity: error:")
