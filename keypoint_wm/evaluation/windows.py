"""Deterministic evaluation windows over a dataset split, batched for a world model."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from keypoint_wm.data.episodes import Episode, load_episode
from keypoint_wm.data.sequences import EpisodeIndex


@dataclass
class WindowBatch:
    """A batch of windows of one task: ``frames`` uint8 [B, T, H, W, 3], ``actions``
    float32 [B, T, A], ``rewards`` float32 [B, T], ``positions`` float32 [B, T, N, 2]
    (N = 0 without ground truth), ``episode`` (file index per window)."""

    task: str
    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    positions: np.ndarray
    episode: np.ndarray


def iter_windows(
    index: EpisodeIndex,
    window: int,
    batch_size: int = 16,
    max_windows: int | None = None,
    action_size: int | None = None,
) -> Iterator[WindowBatch]:
    """Non-overlapping windows (starting at frame 0 of each file), grouped by task.

    Deterministic: files in sorted order, windows in order, at most ``max_windows`` per task
    (spread evenly across files by taking every file's first window before any second one).
    """
    action_size = index.action_size if action_size is None else action_size
    for task in index.tasks:
        records = [r for r in index.records if r.task == task and r.frames >= window]
        slots = [
            (i, s) for i, r in enumerate(records) for s in range(0, r.frames - window + 1, window)
        ]
        slots.sort(key=lambda item: (item[1], item[0]))  # first windows of all files first
        if max_windows is not None:
            slots = slots[:max_windows]
        slots.sort()
        pending: list[tuple] = []
        cache: tuple[int, Episode] | None = None
        for position, (file_index, start) in enumerate(slots):
            if cache is None or cache[0] != file_index:
                cache = (file_index, load_episode(records[file_index].path))
            episode = cache[1]
            stop = start + window
            actions = np.zeros((window, action_size), np.float32)
            actions[:, : episode.action.shape[1]] = episode.action[start:stop]
            pos = episode.true_object_pos
            positions = pos[start:stop] if pos is not None else np.zeros((window, 0, 2), np.float32)
            pending.append(
                (
                    episode.image[start:stop],
                    actions,
                    episode.reward[start:stop],
                    positions,
                    file_index,
                )
            )
            if len(pending) == batch_size or position == len(slots) - 1:
                yield WindowBatch(
                    task=task,
                    frames=np.stack([p[0] for p in pending]),
                    actions=np.stack([p[1] for p in pending]),
                    rewards=np.stack([p[2] for p in pending]),
                    positions=np.stack([p[3] for p in pending]),
                    episode=np.array([p[4] for p in pending]),
                )
                pending = []
