"""A keypoint-overlay GIF of test episodes: where the model's keypoints sit, frame by frame.

``keypoint-wm evaluate state-probe --gif PATH`` writes one for the first run it probes: the
first test-split episode of each task (the episodes the probe scores), its filtered keypoints
(:meth:`keypoint_wm.api.WorldModel.filter`, what an agent's latent holds) drawn on its
frames as discs as strong as the reconstructor draws them (:func:`keypoint_wm.viz.as_drawn`),
the tasks side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm import viz
from keypoint_wm.data.episodes import load_episode
from keypoint_wm.data.sequences import EpisodeIndex
from keypoint_wm.errors import UsageError

__all__ = ["keypoint_overlay", "write_keypoint_gif"]


def keypoint_overlay(
    model: Any,
    data: str | Path,
    test_fraction: float,
    validation_fraction: float,
    tasks: tuple[str, ...] | None = None,
    max_frames: int = 80,
) -> tuple[np.ndarray, float]:
    """The overlay frames, uint8 ``[T, 4H, n * (4W + 1) - 1, 3]`` (n tasks side by side, T
    at most ``max_frames``, the shortest episode's length), and the data's frame rate.

    Raises:
        UsageError: the run is a CNN-VRNN (no keypoints) or a task has no test episode.
    """
    if model.config.model.representation != "keypoints":
        raise UsageError(
            "--gif draws keypoints; this run is a CNN-VRNN (model.representation="
            f"{model.config.model.representation!r}), which has none"
        )
    index = EpisodeIndex(data, "test", test_fraction, validation_fraction=validation_fraction)
    wanted = tasks or tuple(index.tasks)
    columns, fps = [], 10.0
    for task in wanted:
        record = next((r for r in index.records if r.task == task), None)
        if record is None:
            raise UsageError(f"--gif: {data} has no test-split episode of {task}")
        episode = load_episode(record.path)
        frames = episode.image[:max_frames]
        actions = None if episode.action is None else episode.action[None, : len(frames)]
        out = model.filter(frames[None], actions if model.action_size else None)
        keypoints = viz.as_drawn(
            out.keypoints[0].detach().cpu().numpy(), model.config.model.heatmap_amplitude
        )
        columns.append(viz.draw_keypoints(frames, keypoints))
        fps = float(episode.metadata.get("fps") or fps)
    length = min(len(c) for c in columns)
    gap = np.full((length, columns[0].shape[1], 1, 3), 255, np.uint8)
    pieces = [piece for c in columns for piece in (c[:length], gap)][:-1]
    return np.concatenate(pieces, axis=2), fps


def write_keypoint_gif(
    model: Any,
    data: str | Path,
    path: str | Path,
    test_fraction: float,
    validation_fraction: float,
    tasks: tuple[str, ...] | None = None,
    max_frames: int = 80,
) -> Path:
    """Write :func:`keypoint_overlay` to ``path`` as a looping GIF at the data's frame rate
    (at most 15 frames per second, so that a fast game stays readable)."""
    frames, fps = keypoint_overlay(
        model, data, test_fraction, validation_fraction, tasks, max_frames
    )
    return viz.write_gif(path, frames, fps=min(fps, 15.0))
