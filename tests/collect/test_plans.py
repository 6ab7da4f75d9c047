"""Collection plans: shards, seeds and flag validation (no rendering needed)."""

from __future__ import annotations

import pytest

from keypoint_wm.collect.config import (
    CollectConfig,
    CollectError,
    Shard,
    plan_jobs,
    resolve_tasks,
)
from keypoint_wm.envs.registration import PAPER_TASKS as PAPER_TASK_NAMES

KNOWN = (*PAPER_TASK_NAMES, "cartpole-swingup", "ball_in_cup-catch")


def test_shards_partition_the_plan_exactly():
    config = CollectConfig(tasks=PAPER_TASK_NAMES[:3], episodes=7)
    full = plan_jobs(config)
    parts = [plan_jobs(config, Shard(i, 4)) for i in range(4)]
    joined = [job for part in parts for job in part]
    assert sorted(joined, key=str) == sorted(full, key=str)
    assert len(set(joined)) == len(joined) == 21


def test_episode_seeds_depend_on_task_and_index_only():
    a = plan_jobs(CollectConfig(tasks=("cheetah-run",), episodes=3))
    b = plan_jobs(CollectConfig(tasks=("walker-walk", "cheetah-run"), episodes=5))
    by_key = {(j.task, j.index): j.seed for j in b}
    assert all(by_key[(j.task, j.index)] == j.seed for j in a)
    assert len({j.seed for j in b}) == len(b)


@pytest.mark.parametrize("text", ["1", "a/b", "2/2", "-1/3", "0/0", "1/2/3"])
def test_malformed_shard_names_the_flag(text):
    with pytest.raises(CollectError, match="--shard"):
        Shard.parse(text)


def test_resolve_tasks():
    assert resolve_tasks("all", KNOWN, PAPER_TASK_NAMES) == PAPER_TASK_NAMES
    assert resolve_tasks("cheetah-run,walker-walk", KNOWN, PAPER_TASK_NAMES) == (
        "cheetah-run",
        "walker-walk",
    )
    assert resolve_tasks("walker", KNOWN, PAPER_TASK_NAMES) == ("walker-stand", "walker-walk")
    assert resolve_tasks("ball_in_cup", KNOWN, PAPER_TASK_NAMES) == ("ball_in_cup-catch",)
    with pytest.raises(CollectError, match="--domains.*'chess-play'"):
        resolve_tasks("cheetah-run,chess-play", KNOWN, PAPER_TASK_NAMES)


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("episodes", 0, "--episodes"),
        ("steps", -3, "--steps"),
        ("action_repeat", 0, "--action-repeat"),
        ("size", 0, "--size"),
    ],
)
def test_non_positive_numbers_name_the_flag(field, value, flag):
    with pytest.raises(CollectError, match=flag):
        CollectConfig(**{field: value}).validate()


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    with pytest.raises(CollectError, match="--out .* is a file"):
        CollectConfig(out=target).validate()
    assert target.read_text() == "keep me"
