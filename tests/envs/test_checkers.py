"""Gymnasium's and Stable-Baselines3's environment checkers pass on the registered envs."""

from __future__ import annotations

import warnings

import gymnasium
import pytest

from keypoint_wm.envs import ALL_TASKS, PAPER_TASKS, env_id, parse_task_name

PAPER = [parse_task_name(name) for name in PAPER_TASKS]
OTHERS = [pair for pair in ALL_TASKS if pair not in PAPER]


def _check(domain: str, task: str) -> None:
    from gymnasium.utils.env_checker import check_env as gymnasium_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gymnasium.make(env_id(domain, task), size=64)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gymnasium_check_env(env.unwrapped)
            sb3_check_env(env.unwrapped)
        messages = [str(warning.message) for warning in caught]
        assert not messages, messages
    finally:
        env.close()


@pytest.mark.parametrize(("domain", "task"), PAPER)
def test_checkers_pass_on_paper_tasks(domain, task):
    _check(domain, task)


@pytest.mark.slow
@pytest.mark.parametrize(("domain", "task"), OTHERS)
def test_checkers_pass_on_all_tasks(domain, task):
    _check(domain, task)
