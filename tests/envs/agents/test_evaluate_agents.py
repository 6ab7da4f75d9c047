"""``keypoint-wm evaluate agents`` end to end on a tiny budget, its resumption and its doors.

A tiny action-conditioned world model is trained for a few steps on a tiny collected
cartpole-balance dataset at 64x64 (SB3's CnnPolicy needs frames of at least 36x36); the
command then trains PPO for 64 env steps per variant on 10-step episodes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keypoint_wm.cli.main import main as cli_main
from keypoint_wm.envs.agents import AgentEvalConfig, StateEnv, build_report
from keypoint_wm.errors import UsageError

pytestmark = pytest.mark.integration

TASK = "cartpole-balance"
VARIANTS = ("random", "state", "pixels", "latent", "dream")
# cartpole's control timestep is 0.01 s: 0.2 s at action repeat 2 is a 10-step episode.
FLAGS = ["--tasks", TASK, "--algo", "ppo", "--steps", "64", "--seeds", "1", "--envs", "2",
         "--eval-every", "32", "--eval-episodes", "2", "--time-limit", "0.2",
         "--head-steps", "3", "--device", "cpu"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """(run, data): 6 episodes of 30 steps at 64x64, action repeat 2; a 4-step model."""
    from kwm_testing import tiny_config

    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset
    from keypoint_wm.train import train

    base = tmp_path_factory.mktemp("agents")
    data, run = base / "data", base / "run"
    collect_dataset(
        CollectConfig(
            tasks=(TASK,), episodes=6, steps=30, action_repeat=2, size=64, seed=1, out=data
        ),
        workers=1,
        progress=False,
    )
    # Half of the episodes held out: the dream's reward head trains on the test split.
    config = tiny_config(4, preset="dmcs-cpu", **{"train.test_fraction": 0.5})
    train(config, data, run, progress=False)
    return run, data


@pytest.fixture(scope="module")
def first(world, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The command run once, in a subprocess, as a user runs it."""
    run, _ = world
    out = tmp_path_factory.mktemp("agents-out") / "out"
    scratch = tmp_path_factory.mktemp("agents-tmp")  # the command's TMPDIR
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "agents", "--run", str(run),
         "--out", str(out), "--quiet", *FLAGS],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(scratch)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    # Nothing left behind in the temporary folder (SB3's default logger makes one per agent).
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("SB3-")]
    return out, result


def test_the_command_writes_every_variant_json_and_png(world, first):
    run, _ = world
    out, result = first
    report = json.loads((out / "agents.json").read_text())
    assert list(report["tasks"]) == [TASK]
    entry = report["tasks"][TASK]
    assert tuple(entry) == VARIANTS
    for variant, values in entry.items():
        final = values["final_return"]
        assert set(final) == {"mean", "ci95", "per_run"}
        assert len(final["per_run"]) == 1 and final["ci95"] is None  # one seed: no interval
        assert final["mean"] == pytest.approx(final["per_run"][0])
        assert np.isfinite(final["mean"]) and final["mean"] >= 0  # cartpole rewards are >= 0
        assert values["curve"][-1][1] == pytest.approx(final["mean"])
        assert values["env_steps"] == (64 if variant in ("state", "pixels", "latent") else 0)
    for variant in ("state", "pixels", "latent"):  # an evaluation every 32 env steps
        assert [point[0] for point in entry[variant]["curve"]] == [32, 64]
    assert entry["random"]["curve"] == [[0, entry["random"]["final_return"]["mean"]]]
    dream = entry["dream"]
    assert dream["imagined_steps"] == 64 and dream["curve"][0][0] == 0
    assert [point[0] for point in dream["imagined_curve"]] == [32, 64]
    # The dream's episodes are the model's training windows: observed, then predicted steps.
    trained = json.loads((run / "config.json").read_text())["model"]
    settings = json.loads((out / "units" / TASK / "dream-seed0.json").read_text())["settings"]
    assert settings["dream_context"] == trained["num_observed_steps"]
    assert settings["dream_horizon"] == trained["num_predicted_steps"]
    assert settings["dream_starts"] == "any"
    assert report["action_repeat"] == 2  # the run's data's
    assert (out / "agents.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (out / "units" / TASK).iterdir()) == sorted(
        f"{v}-seed0.json" for v in VARIANTS
    )
    # The run had no reward head: one was trained into OUT, the run folder left as it was.
    assert (out / "reward_heads" / TASK / "head.json").is_file()
    assert not (run / "rewards").exists()
    assert dream["final_return"]["mean"] == pytest.approx(
        json.loads((out / "units" / TASK / "dream-seed0.json").read_text())["final_return"]
    )
    assert "final return on the real task" in result.stdout and "dream" in result.stdout


def test_a_rerun_skips_finished_units_and_reruns_a_missing_one(world, first, capsys):
    run, _ = world
    out, _ = first
    units = sorted((out / "units" / TASK).iterdir())
    stamps = {p: p.stat().st_mtime_ns for p in units}
    head = out / "reward_heads" / TASK / "head.safetensors"
    head_stamp = head.stat().st_mtime_ns
    before = json.loads((out / "agents.json").read_text())
    random_unit = out / "units" / TASK / "random-seed0.json"
    random_unit.unlink()

    started = time.perf_counter()
    assert cli_main(["evaluate", "agents", "--run", str(run), "--out", str(out), "--quiet",
                     *FLAGS]) == 0  # fmt: skip
    elapsed = time.perf_counter() - started
    assert "4 of 5 units already finished" in capsys.readouterr().out
    for path, stamp in stamps.items():
        if path != random_unit:
            assert path.stat().st_mtime_ns == stamp, f"{path.name} was rewritten"
    assert head.stat().st_mtime_ns == head_stamp  # the reward head was not retrained
    after = json.loads((out / "agents.json").read_text())
    assert after == before  # the seeded random unit returns what it returned before
    assert elapsed < 30  # nothing trained (the first run trained four agents)


def test_a_rerun_with_other_settings_is_refused(world, first, capsys):
    run, _ = world
    out, _ = first
    flags = [*FLAGS]
    flags[flags.index("--steps") + 1] = "32"
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    code = cli_main(["evaluate", "agents", "--run", str(run), "--out", str(out), *flags])
    error = capsys.readouterr().err
    assert code == 2 and "--out" in error and "steps" in error
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_a_task_the_run_was_not_trained_on_is_refused(world, tmp_path, capsys):
    run, _ = world
    flags = [*FLAGS]
    flags[flags.index("--tasks") + 1] = f"{TASK},reacher-easy"
    out = tmp_path / "out"
    code = cli_main(["evaluate", "agents", "--run", str(run), "--out", str(out), *flags])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1
    assert "--tasks" in error[0] and "reacher-easy" in error[0] and TASK in error[0]
    assert not out.exists()


def test_the_dream_reads_the_heads_given_by_heads(world, first, tmp_path):
    run, _ = world
    heads = first[0] / "reward_heads"  # trained by the first run, now a user's own folder
    out = tmp_path / "out"
    flags = [*FLAGS]
    flags[flags.index("--seeds") + 1] = "1"
    assert cli_main(["evaluate", "agents", "--run", str(run), "--out", str(out), "--quiet",
                     "--variants", "dream", "--heads", str(heads), *flags]) == 0  # fmt: skip
    unit = json.loads((out / "units" / TASK / "dream-seed0.json").read_text())
    assert Path(unit["reward_head"]) == heads / TASK
    assert unit["settings"]["heads"] == str(heads.resolve())
    assert not (out / "reward_heads").exists()  # nothing trained: the given head was used


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--variants", "state,pixel"), ("--variants", "state,state"), ("--steps", "0"),
     ("--heads", "no-such-folder")],
)  # fmt: skip
def test_bad_flags_are_usage_errors_naming_the_flag(world, tmp_path, capsys, flag, value):
    run, _ = world
    flags = [*FLAGS]
    if flag in flags:
        flags[flags.index(flag) + 1] = value
    else:
        flags += [flag, value]
    code = None
    try:
        code = cli_main(["evaluate", "agents", "--run", str(run), "--out", str(tmp_path / "o"),
                         *flags])  # fmt: skip
    except SystemExit as exit_:  # argparse's own type checks
        code = exit_.code
    assert code == 2 and flag in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def few(tmp_path_factory) -> Path:
    """A real dataset too small for the dream's head: the world's first 2 episodes, of
    which 1 falls in the run's test split (episode 1 at train.test_fraction 0.5)."""
    from keypoint_wm.collect.config import CollectConfig
    from keypoint_wm.collect.runner import collect_dataset

    data = tmp_path_factory.mktemp("few") / "data"
    collect_dataset(
        CollectConfig(
            tasks=(TASK,), episodes=2, steps=30, action_repeat=2, size=64, seed=1, out=data
        ),
        workers=1,
        progress=False,
    )
    return data


def test_too_few_episodes_for_the_dream_are_refused_before_any_unit_trains(
    world, few, tmp_path, capsys
):
    """The dream comes last; its head's data is checked before random, state, pixels and
    latent train: one line naming --data, what it lacks and what to collect."""
    run, _ = world
    out = tmp_path / "out"
    started = time.perf_counter()
    code = cli_main(["evaluate", "agents", "--run", str(run), "--out", str(out), "--quiet",
                     "--data", str(few), *FLAGS])  # fmt: skip
    elapsed = time.perf_counter() - started
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1, error
    assert f"--data {few}" in error[0] and TASK in error[0]
    # The rule and numbers of the head's own training (rewards/sequences.py).
    assert "windows from at least 2 test-split episodes per task, got 1" in error[0]
    assert "--episodes 3" in error[0] and "--heads" in error[0]
    assert not list(out.rglob("*.json")) and not (out / "reward_heads").exists()
    assert elapsed < 30  # nothing trained: loading the model and checking


def _setup(world, data: Path, heads: Path, variants: tuple[str, ...] = ("dream",)):
    import keypoint_wm
    from keypoint_wm.envs.agents.variants import AgentSetup

    run, _ = world
    model = keypoint_wm.load(run, device="cpu")
    config = AgentEvalConfig(tasks=(TASK,), variants=variants, steps=64, head_steps=3)
    return AgentSetup(
        model=model, config=config, action_repeat=2, device=model.device, data=data,
        heads=(heads, heads.parent / "out" / "reward_heads"), progress=False,
    )  # fmt: skip


def test_the_dream_check_takes_a_given_head_instead_of_the_data(world, few, tmp_path):
    """With a head for the task in --heads, the data only gives start windows; one made for
    another model is refused naming --heads."""
    from keypoint_wm.envs.agents.variants import check_variants
    from keypoint_wm.rewards import RewardHead, RewardHeadConfig, save_reward_head

    heads = tmp_path / "heads"
    with pytest.raises(UsageError, match="--data .*2 test-split episodes.*got 1"):
        check_variants(_setup(world, few, heads))
    check_variants(_setup(world, few, heads, ("random", "state")))  # no dream: no check
    setup = _setup(world, few, heads)
    units = int(setup.model.config.model.rnn_units)
    save_reward_head(RewardHead(RewardHeadConfig(input_size=units, task=TASK)), heads / TASK)
    check_variants(setup)
    save_reward_head(RewardHead(RewardHeadConfig(input_size=units + 1, task=TASK)), heads / TASK)
    with pytest.raises(UsageError, match=f"--heads {heads}: the reward head of {TASK}"):
        check_variants(setup)


def test_the_dream_check_refuses_data_without_the_task_or_rewards(world, tmp_path):
    from keypoint_wm.envs.agents.variants import check_variants

    _, data = world
    heads = tmp_path / "heads"
    with pytest.raises(UsageError, match="--data .*no such folder.*--variants"):
        check_variants(_setup(world, tmp_path / "nowhere", heads))
    (tmp_path / "other" / "reacher-easy").mkdir(parents=True)
    with pytest.raises(UsageError, match=f"no folder {TASK}/ .*folders there: reacher-easy"):
        check_variants(_setup(world, tmp_path / "other", heads))
    silent = tmp_path / "silent"
    for episode in (data / TASK).glob("*.npz"):  # the same episodes without their rewards
        arrays = dict(np.load(episode))
        del arrays["reward"]
        (silent / TASK).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(silent / TASK / episode.name, **arrays)
    with pytest.raises(UsageError, match=r"needs rewards, which 2 of its 2 episodes .*--heads"):
        check_variants(_setup(world, silent, heads))
    check_variants(_setup(world, data, heads))  # the run's own data serves the dream


def test_state_env_is_the_pixel_env_without_the_pixels():
    """Same seed and actions: the same dm_control observation, rewards and episode end."""
    from keypoint_wm.envs import DMCPixelEnv

    kwargs = {"time_limit": 0.1}
    state = StateEnv(TASK, action_repeat=2, time_limit=0.1)
    pixel = DMCPixelEnv("cartpole", "balance", size=32, action_repeat=2, pixels_only=False,
                        task_kwargs=kwargs)  # fmt: skip
    observation, _ = state.reset(seed=5)
    expected, info = pixel.reset(seed=5)
    assert state.observation_space.shape == (5,)  # cartpole: position (3) and velocity (2)
    np.testing.assert_array_equal(observation, info["state"])  # what the collector stores

    def flat(obs: dict) -> np.ndarray:
        return np.concatenate([obs["position"], obs["velocity"]]).astype(np.float32)

    np.testing.assert_array_equal(observation, flat(expected))
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, 1).astype(np.float32)
        observation, reward, terminated, truncated, _ = state.step(action)
        expected, reward_p, terminated_p, truncated_p, info = pixel.step(action)
        np.testing.assert_array_equal(observation, flat(expected))
        np.testing.assert_array_equal(observation, info["state"])
        assert (reward, terminated, truncated) == (reward_p, terminated_p, truncated_p)
    assert truncated  # 0.1 s is 5 steps at action repeat 2
    state.close()
    pixel.close()


def test_report_means_and_student_t_intervals_over_seeds():
    config = AgentEvalConfig(tasks=(TASK,), variants=("state",), steps=20, seeds=3)
    finals = [10.0, 12.0, 17.0]
    results = [
        {"task": TASK, "variant": "state", "seed": seed, "final_return": final,
         "env_steps": 20, "curve": [[10, final - 5], [20, final]]}
        for seed, final in zip((2, 0, 1), finals, strict=True)
    ]  # fmt: skip
    report = build_report(results, {"algo": "ppo"}, config)
    entry = report["tasks"][TASK]["state"]
    # Sorted by seed: 12, 17, 10; mean 13, sample std sqrt(13), t(0.975, 2) = 4.303.
    assert entry["final_return"]["per_run"] == [12.0, 17.0, 10.0]
    assert entry["final_return"]["mean"] == pytest.approx(13.0)
    assert entry["final_return"]["ci95"] == pytest.approx(4.303 * np.sqrt(13 / 3))
    assert entry["curve"] == [[10, pytest.approx(8.0)], [20, pytest.approx(13.0)]]
    assert entry["seeds"] == [0, 1, 2] and report["algo"] == "ppo"


def test_config_refuses_what_no_flag_allows():
    with pytest.raises(UsageError, match="--variants"):
        AgentEvalConfig(tasks=(TASK,), variants=())
    with pytest.raises(UsageError, match="--algo"):
        AgentEvalConfig(tasks=(TASK,), algo="dqn")
    config = AgentEvalConfig(tasks=(TASK,), steps=1000, algo="sac")
    assert (config.eval_interval, config.num_envs, config.imagined_steps) == (100, 1, 1000)


def test_agent_updates_run_on_one_thread_and_rollouts_on_all_threads():
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    from keypoint_wm.envs.agents.runner import _SingleThreadUpdates

    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    updates, rollouts = [], []

    class RecordRollouts(BaseCallback):
        def _on_step(self) -> bool:
            rollouts.append(torch.get_num_threads())
            return True

    try:
        agent = PPO("MlpPolicy", "Pendulum-v1", n_steps=16, batch_size=16, n_epochs=1,
                    device="cpu", seed=0)  # fmt: skip
        train = agent.train

        def recording_train() -> None:
            updates.append(torch.get_num_threads())
            train()

        agent.train = recording_train  # type: ignore[method-assign]
        agent.learn(48, callback=CallbackList([RecordRollouts(), _SingleThreadUpdates()]))
        assert updates == [1, 1, 1]  # three rollouts of 16 steps, each followed by updates
        assert set(rollouts) == {2} and len(rollouts) == 48
        assert torch.get_num_threads() == 2  # restored after the last updates
    finally:
        torch.set_num_threads(previous)


def test_the_parser_names_what_the_runner_accepts():
    """The CLI repeats the variant and dream-start names to build its parser without SB3."""
    from keypoint_wm.cli.agents import DREAM_STARTS, VARIANT_NAMES
    from keypoint_wm.envs.agents import VARIANTS
    from keypoint_wm.envs.latent.dream import STARTS

    assert VARIANT_NAMES == VARIANTS and sorted(DREAM_STARTS) == sorted(STARTS)
