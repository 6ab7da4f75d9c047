"""Tracking on DMCS-style data: several tasks, actions of different sizes, per-task objects."""

from __future__ import annotations

import numpy as np
import pytest

from keypoint_wm.conventions import keypoint_to_pixel
from keypoint_wm.data.episodes import Episode, save_episode

pytestmark = pytest.mark.integration

TASKS = {"cartpole-balance": (1, 2), "reacher-easy": (2, 3)}  # action size, bodies


def _episode(rng: np.random.Generator, action_size: int, bodies: int, frames: int = 16) -> Episode:
    """Coloured squares moving with the (random) actions, like bodies in a DMCS frame."""
    velocity = rng.uniform(-0.08, 0.08, size=(bodies, 2))
    start = rng.uniform(-0.6, 0.6, size=(bodies, 2))
    t = np.arange(frames)[:, None, None]
    positions = np.clip(start[None] + velocity[None] * t, -0.9, 0.9).astype(np.float32)
    images = np.full((frames, 32, 32, 3), 40, np.uint8)
    colours = np.array([[250, 60, 60], [60, 250, 60], [60, 60, 250]], np.uint8)
    pixels = np.rint(keypoint_to_pixel(positions, 32)).astype(int)
    for f in range(frames):
        for b in range(bodies):
            col, row = pixels[f, b]
            images[f, max(row - 2, 0) : row + 2, max(col - 2, 0) : col + 2] = colours[b]
    action = rng.uniform(-1, 1, size=(frames, action_size)).astype(np.float32)
    action[0] = 0
    reward = rng.uniform(0, 1, size=frames).astype(np.float32)
    reward[0] = 0
    return Episode(images, action, reward, positions, {"dataset": "dmcs-like"})


def test_tracking_reports_every_task_of_an_action_conditioned_run(tmp_path):
    from kwm_testing import tiny_config

    from keypoint_wm import load
    from keypoint_wm.evaluation.tracking import evaluate_tracking
    from keypoint_wm.train import train

    rng = np.random.default_rng(0)
    data = tmp_path / "dmcs"
    for task, (action_size, bodies) in TASKS.items():
        for i in range(10):
            save_episode(data / task / f"episode_{i:06d}.npz", _episode(rng, action_size, bodies))
    run = tmp_path / "run"
    train(tiny_config(2, "dmcs-cpu"), data, run, progress=False)
    model = load(run, device="cpu")
    assert model.action_size == 2  # padded to the largest action size
    result = evaluate_tracking(model, data, test_fraction=0.4, samples=2, max_windows=20)
    assert set(result.tasks) == set(TASKS)
    for task, (_, bodies) in TASKS.items():
        figures = result.tasks[task]
        assert figures.objects == bodies and len(figures.r2_observed) == bodies
        assert np.isfinite(figures.error_predicted)
    # Several tasks: the headline figures are {task: value}.
    headline = result.to_json()["error_predicted"]
    assert headline == {task: result.tasks[task].error_predicted for task in TASKS}
