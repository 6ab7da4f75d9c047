"""Task names, the embedded task list, and Gymnasium registration."""

from __future__ import annotations

import subprocess
import sys

import gymnasium
import numpy as np
import pytest

from keypoint_wm.envs import (
    ALL_TASKS,
    PAPER_TASKS,
    TASK_NAMES,
    DMCPixelEnv,
    env_id,
    make_env,
    parse_task_name,
)


def test_embedded_task_list_matches_installed_suite():
    from dm_control import suite

    assert tuple(suite.ALL_TASKS) == ALL_TASKS


def test_paper_tasks():
    assert PAPER_TASKS == (
        "acrobot-swingup",
        "cartpole-balance",
        "cheetah-run",
        "reacher-easy",
        "walker-stand",
        "walker-walk",
    )
    assert all(parse_task_name(name) in ALL_TASKS for name in PAPER_TASKS)
    assert set(PAPER_TASKS) <= set(TASK_NAMES)


def test_task_names_round_trip():
    assert len(TASK_NAMES) == len(ALL_TASKS)
    assert tuple(parse_task_name(name) for name in TASK_NAMES) == ALL_TASKS


def test_every_task_is_registered_without_time_limit():
    for domain, task in ALL_TASKS:
        spec = gymnasium.spec(env_id(domain, task))
        assert spec.entry_point == "keypoint_wm.envs.dmc:DMCPixelEnv"
        assert spec.kwargs == {"domain": domain, "task": task}
        assert spec.max_episode_steps is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cheetah-run", ("cheetah", "run")),
        ("ball_in_cup-catch", ("ball_in_cup", "catch")),
        ("point_mass-easy", ("point_mass", "easy")),
        ("cartpole-swingup_sparse", ("cartpole", "swingup_sparse")),
        ("humanoid_CMU-run", ("humanoid_CMU", "run")),
        ("lqr-lqr_2_1", ("lqr", "lqr_2_1")),
        ("KeypointWM/walker-walk-v0", ("walker", "walk")),
        # Loose spellings that are unambiguous among the known tasks.
        ("ball-in-cup-catch", ("ball_in_cup", "catch")),
        ("cartpole_swingup_sparse", ("cartpole", "swingup_sparse")),
        ("walker_walk", ("walker", "walk")),
        # Unknown to the embedded list but with one hyphen: split there.
        ("mydomain-mytask", ("mydomain", "mytask")),
    ],
)
def test_parse_task_name(name, expected):
    assert parse_task_name(name) == expected


@pytest.mark.parametrize("name", ["cheetah", "cheetah-run-fast-now", "-run", "walker-", ""])
def test_parse_task_name_rejects_unparseable(name):
    with pytest.raises(ValueError, match="task name"):
        parse_task_name(name)


def test_parse_task_name_suggests_close_matches():
    with pytest.raises(ValueError, match="cheetah-run"):
        parse_task_name("cheetah-run-x")


@pytest.mark.integration
def test_import_does_not_load_dm_control():
    code = (
        "import sys, gymnasium, keypoint_wm.envs as e;"
        "assert 'dm_control' not in sys.modules, 'dm_control imported';"
        "assert 'mujoco' not in sys.modules, 'mujoco imported';"
        "assert 'stable_baselines3' not in sys.modules, 'sb3 imported';"
        "assert 'KeypointWM/cheetah-run-v0' in gymnasium.registry;"
        "print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_gymnasium_make_with_kwargs():
    env = gymnasium.make("KeypointWM/cheetah-run-v0", size=32, action_repeat=2)
    try:
        assert isinstance(env.unwrapped, DMCPixelEnv)
        assert env.observation_space.shape == (32, 32, 3)
        assert env.unwrapped.action_repeat == 2
        assert env.unwrapped.max_episode_steps == 500
        observation, info = env.reset(seed=0)
        assert observation.shape == (32, 32, 3)
        assert info["true_object_pos"].shape == (7, 2)
        observation, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert observation.dtype == np.uint8
        assert not terminated and not truncated
    finally:
        env.close()


def test_make_env_accepts_task_names():
    env = make_env("ball_in_cup-catch", size=16)
    try:
        assert env.unwrapped.domain == "ball_in_cup"
        assert env.unwrapped.task == "catch"
        assert env.spec is not None and env.spec.id == "KeypointWM/ball_in_cup-catch-v0"
    finally:
        env.close()


def test_make_env_unknown_task_lists_valid_ones():
    with pytest.raises(ValueError, match="swingup"):
        make_env("cartpole-jump")
