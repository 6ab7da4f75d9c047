"""`keypoint-wm reproduce rewards`: a score unit records both columns over the same tasks."""

from __future__ import annotations

import json

import pytest

from keypoint_wm.reproduce import rewards
from keypoint_wm.reproduce.protocol import fill


def _entry(tasks: list[str]) -> dict:
    score = {"normalized_mse": 0.5, "validation_normalized_mse": 0.4, "test_windows": 10}
    return {"tasks": {t: dict(score) for t in tasks}, "mean_validation_normalized_mse": 0.4}


def _score_unit():
    protocol = rewards.protocol(smoke=True)
    return next(u for u in protocol.units if u.name.startswith("rewards-"))


def _write(out, unit, runs: list[dict]) -> None:
    path = fill(unit.argv[unit.argv.index("--json") + 1], out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"runs": runs}))


def test_a_score_unit_records_both_columns(tmp_path):
    unit = _score_unit()
    tasks = ["cartpole-balance", "reacher-easy"]
    _write(tmp_path, unit, [_entry(tasks), _entry(tasks)])
    figures = unit.figures(tmp_path)
    assert list(figures) == list(rewards.COLUMNS)
    assert all(sorted(column["tasks"]) == tasks for column in figures.values())


def test_columns_that_score_other_tasks_are_not_a_result(tmp_path):
    """A heads folder left part-way once gave one column a single task: refused, not
    recorded as a figure that pools with complete ones."""
    unit = _score_unit()
    _write(tmp_path, unit, [_entry(["acrobot-swingup", "cartpole-balance"]),
                            _entry(["acrobot-swingup"])])  # fmt: skip
    with pytest.raises(ValueError, match="the columns score other tasks"):
        unit.figures(tmp_path)
