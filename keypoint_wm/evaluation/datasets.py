"""Evaluation splits and per-episode labels.

Datasets whose episodes all carry a ``"split"`` in their metadata (Human3.6M: by subject;
the figure stand-in: the training split's hash rule) are split by it; others by the same
path hash as training (:func:`keypoint_wm.data.sequences.is_test_file`). Splitting by
file keeps windows of one video out of both sides (paper S2.1).

``evaluate`` reports the test split, which no run trained on and no choice was made on
(choices are made on the validation split, which the in-training probe scores). Readouts
and classifiers that an evaluation fits (the tracking regression, the action classifier) are
fitted on every file outside the test split: the world model's training and validation
files, as before validation splits existed, so that earlier figures stay comparable.
"""

from __future__ import annotations

from pathlib import Path

from keypoint_wm.data.sequences import EpisodeIndex, EpisodeRecord


def split_index(
    data_dir: str | Path, test_fraction: float = 0.2, min_frames: int = 1
) -> tuple[EpisodeIndex, EpisodeIndex, str]:
    """``(train, test, how)``: the dataset's episodes split as training splits them.

    ``train`` holds every file outside the test split (the world model's training and
    validation files: what an evaluation fits its readouts on), ``test`` the files it
    reports. ``how`` is ``"metadata"`` (every file names its split) or ``"hash"`` (by path,
    with ``test_fraction``); see :class:`~keypoint_wm.data.sequences.EpisodeIndex`.
    """
    train = EpisodeIndex(data_dir, "train", test_fraction, min_frames=min_frames)
    test = EpisodeIndex(data_dir, "test", test_fraction, min_frames=min_frames)
    return train, test, test.split_source


def task_records(index: EpisodeIndex, task: str, window: int) -> list[EpisodeRecord]:
    """The records :func:`~keypoint_wm.evaluation.windows.iter_windows` numbers as
    ``WindowBatch.episode`` for ``task``."""
    return [r for r in index.records if r.task == task and r.frames >= window]
