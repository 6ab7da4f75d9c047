"""The environments' fast rendering draws what the suite's default rendering draws."""

from __future__ import annotations

import pytest

from keypoint_wm.envs import PAPER_TASKS, parse_task_name
from keypoint_wm.envs.render_check import compare_to_suite_default
from keypoint_wm.envs.rendering import SUITE_SHADOW_SIZE, default_shadow_size


@pytest.mark.parametrize("name", PAPER_TASKS)
def test_default_rendering_matches_suite(name):
    result = compare_to_suite_default(*parse_task_name(name), frames=50, size=64)
    assert result.mean_abs_diff <= 0.1, result
    assert result.fps_default > 0 and result.fps_ours > 0


def test_suite_shadow_size_renders_identically():
    result = compare_to_suite_default(
        "cartpole", "balance", frames=5, size=32, shadow_size=SUITE_SHADOW_SIZE
    )
    assert result.mean_abs_diff == 0.0


def test_default_shadow_size_grows_with_the_image():
    assert default_shadow_size(64, 64) == 256
    assert default_shadow_size(32, 48) == 256
    assert default_shadow_size(84, 84) == 512
    assert default_shadow_size(128, 96) == 1024
    assert default_shadow_size(480, 640) == SUITE_SHADOW_SIZE
