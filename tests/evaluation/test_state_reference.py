"""`keypoint-wm evaluate state-reference`: velocities read off the true position history."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from keypoint_wm.data.episodes import Episode, save_episode
from keypoint_wm.data.state_layout import layout_from_sizes
from keypoint_wm.evaluation.state_probe import StateProbeConfig
from keypoint_wm.evaluation.state_reference import evaluate_state_reference, history_features


def write_task(root, task: str, rng: np.random.Generator, knowable: bool, episodes: int = 30):
    """Episodes whose velocity is the last position step (``knowable``) or pure noise."""
    parts = layout_from_sizes([("position", 2), ("velocity", 2)])
    for number in range(episodes):
        steps = 60
        action = rng.uniform(-1, 1, (steps, 2)).astype(np.float32)
        action[0] = 0
        position = np.cumsum(0.1 * action + 0.02 * rng.normal(size=(steps, 2)), axis=0)
        step = np.diff(position, axis=0, prepend=position[:1])
        velocity = 10 * step if knowable else rng.normal(size=(steps, 2))
        save_episode(
            root / task / f"episode_{number:04d}.npz",
            Episode(
                image=np.zeros((steps, 8, 8, 3), np.uint8),
                action=action,
                reward=np.zeros(steps, np.float32),
                true_object_pos=None,
                metadata={
                    "domain": task.split("-")[0],
                    "task": task.split("-")[1],
                    "state_keys": [p.to_json() for p in parts],
                },
                state=np.concatenate([position, velocity], axis=1).astype(np.float32),
            ),
        )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    rng = np.random.default_rng(0)
    write_task(root, "easy-knowable", rng, knowable=True)
    write_task(root, "hard-noise", rng, knowable=False)
    return root


def test_history_rows_hold_the_earlier_positions_and_the_actions_between():
    positions = np.arange(8.0).reshape(4, 2)
    actions = 10 + np.arange(4.0)[:, None]
    rows = history_features(positions, actions, lags=2)
    assert rows.shape == (4, 3 * 2 + 2 * 1)
    # frame 3: positions of 3, 2, 1; the actions that led to frames 3 and 2
    assert rows[3].tolist() == [6, 7, 4, 5, 2, 3, 13, 12]
    # frame 0: the first positions repeat, no action came before
    assert rows[0].tolist() == [0, 1, 0, 1, 0, 1, 10, 0]


def test_knowable_velocities_score_one_and_unknowable_ones_zero(data):
    config = StateProbeConfig(test_fraction=0.25, untrained=False)
    result = evaluate_state_reference(
        data, config, lags=1, validation_fraction=0.25, progress=False
    )
    knowable, noise = result.tasks["easy-knowable"], result.tasks["hard-noise"]
    for reader in ("linear", "mlp"):
        assert knowable[reader].positions is None  # the positions are the input
        assert noise[reader].velocities is not None and noise[reader].velocities < 0.1
    assert knowable["linear"].velocities == pytest.approx(1.0, abs=1e-4)
    assert knowable["mlp"].velocities > 0.9
    assert knowable["linear"].frames["test"] > 0


@pytest.mark.integration
def test_the_command_prints_the_table_and_writes_json(data, tmp_path):
    out = tmp_path / "reference.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keypoint_wm.cli",
            "evaluate",
            "state-reference",
            "--data",
            str(data),
            "--tasks",
            "easy-knowable",
            "--lags",
            "1",
            "--validation-fraction",
            "0.25",
            "--mlp-steps",
            "250",
            "--json",
            str(out),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "easy-knowable" in done.stdout and "MLP" in done.stdout
    result = json.loads(out.read_text())
    assert result["lags"] == 1 and set(result["tasks"]) == {"easy-knowable"}
    assert set(result["tasks"]["easy-knowable"]) == {"linear", "mlp"}
    assert result["mean"]["linear"] > 0.99
