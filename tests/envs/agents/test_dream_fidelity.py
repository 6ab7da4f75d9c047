"""``keypoint-wm evaluate dream-fidelity`` end to end on a tiny run and real cartpole-balance.

The tiny action-conditioned run of :mod:`latent_testing` (32x32, action repeat 2, 3 observed
+ 2 predicted steps) is copied, and a random reward head for cartpole-balance is saved where
``keypoint-wm rewards train`` puts heads (``RUN/rewards/<task>``). The command then rolls 4
policies from 2 initial states for 2 + 4 agent steps.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from latent_testing import tiny_dmc_run

from keypoint_wm.cli.main import main as cli_main
from keypoint_wm.rewards.head import RewardHead, RewardHeadConfig, save_reward_head

pytestmark = pytest.mark.integration

TASK = "cartpole-balance"
POLICIES = ("zero", "plus", "random", "pd")
FLAGS = ["--long-horizon", "4", "--episodes", "2", "--policies", ",".join(POLICIES),
         "--device", "cpu", "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A copy of the tiny DMCS run with a random "hidden+keypoints" head for cartpole."""
    source = tiny_dmc_run(tmp_path_factory.getbasetemp())
    run = tmp_path_factory.mktemp("fidelity") / "run"
    shutil.copytree(source, run, ignore=shutil.ignore_patterns("tensorboard", "media"))
    torch.manual_seed(0)
    config = RewardHeadConfig(
        input_size=16, units=8, reward_mean=0.5, inputs="hidden+keypoints", num_keypoints=4
    )
    save_reward_head(RewardHead(config), run / "rewards" / TASK)
    return run


@pytest.fixture(scope="module")
def first(run, tmp_path_factory) -> tuple[Path, dict]:
    """The command run once: (its folder, its JSON)."""
    out = tmp_path_factory.mktemp("fidelity-out")
    argv = ["evaluate", "dream-fidelity", "--run", str(run), "--tasks", TASK, *FLAGS,
            "--json", str(out / "fidelity.json")]  # fmt: skip
    assert cli_main(argv) == 0
    return out, json.loads((out / "fidelity.json").read_text())


def test_the_command_writes_json_plot_and_cache(run, first):
    out, report = first
    assert (out / "fidelity.png").stat().st_size > 1000  # the plot goes beside --json
    assert report["horizon"] == 2 and report["long_horizon"] == 4  # num_predicted_steps, flag
    assert report["horizons"] == [2, 4] and report["context"] == 3
    assert report["seed_ci95"] is None and len(report["per_run"]) == 1
    assert report["per_run"][0]["run"] == str(run)
    entry = report["tasks"][TASK]
    assert entry["policies"] == list(POLICIES) and entry["rollouts"] == 8
    columns = {"real", "filtered", "imagined_mean", "imagined_sampled"}
    for h in ("2", "4"):
        figures = entry["horizons"][h]
        assert set(figures["correlation"]) == columns - {"real"}
        for value in figures["correlation"].values():
            assert value is None or -1.0 <= value <= 1.0
        assert set(figures["returns"]) == set(POLICIES)
        for policy in POLICIES:
            assert set(figures["returns"][policy]) == columns
            errors = figures["keypoint_error"][policy]
            assert set(errors) == {"imagined_mean", "imagined_sampled"}
            assert all(0.0 <= e <= 2.0 * 2**0.5 for e in errors.values())
        assert len(entry["per_rollout"]["returns"][h]["real"]) == 8
    # The real return of the first 2 steps is part of the return over 4 (rewards in [0, 1]).
    returns = entry["per_rollout"]["returns"]
    assert all(
        a <= b + 1e-6 for a, b in zip(returns["2"]["real"], returns["4"]["real"], strict=True)
    )
    assert entry["per_rollout"]["task_seed"] == [1000, 1001] * 4
    assert len(entry["keypoint_error_per_step"]["zero"]["imagined_mean"]) == 4
    assert len(list((run / "dream_fidelity").glob(f"{TASK}-*.json"))) == 1


def test_a_second_run_reuses_the_cached_results(run, first, tmp_path, monkeypatch, capsys):
    from keypoint_wm.envs.agents import dream_fidelity

    def refuse(*args, **kwargs):
        raise AssertionError("rolled out again instead of reusing the cached result")

    monkeypatch.setattr(dream_fidelity, "real_rollouts", refuse)
    argv = ["evaluate", "dream-fidelity", "--run", str(run), "--tasks", TASK, *FLAGS,
            "--json", str(tmp_path / "again.json"), "--plot", str(tmp_path / "again.png")]  # fmt: skip
    assert cli_main(argv) == 0
    assert json.loads((tmp_path / "again.json").read_text()) == first[1]
    assert (tmp_path / "again.png").is_file()
    assert "correlation with the real returns over 8 rollouts" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tasks", "walker-walk"], "--tasks: the world model was not trained on walker-walk"),
        (["--tasks", "nonsense"], "--tasks"),
        (["--tasks", "reacher-easy"], "no reward head for reacher-easy"),
        (["--tasks", TASK, "--heads", "nowhere"], "--heads nowhere: no such folder"),
        (["--tasks", "reacher-easy", "--policies", "pd"], "--policies pd: none is defined"),
        (["--tasks", TASK, "--policies", "zero,dance"], "--policies must be"),
    ],
)
def test_bad_flags_give_one_line_errors(run, capsys, flags, message):
    assert cli_main(["evaluate", "dream-fidelity", "--run", str(run), *flags, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert err.startswith("keypoint-wm evaluate dream-fidelity: error:")


def test_the_parser_repeats_the_policy_names():
    from keypoint_wm.cli.fidelity import POLICY_NAMES
    from keypoint_wm.envs.agents.dream_fidelity import POLICIES

    assert POLICY_NAMES == POLICIES
