"""Evaluation splits and per-episode labels.

Datasets whose episodes all carry a ``"split"`` in their metadata (Human3.6M: by subject;
the figure stand-in: the training split's hash rule) are split by it; others by the same
path hash as training (:func:`keypoint_wm.data.sequences.is_test_file`). Splitting by
file keeps windows of one video out of both sides (paper S2.1).
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.data.episodes import EpisodeFormatError
from keypoint_wm.data.sequences import EpisodeIndex, EpisodeRecord, is_test_file


def episode_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of an episode file, reading only that member (no image decompression)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            if "metadata.npy" not in archive.namelist():
                return {}
            with archive.open("metadata.npy") as member:
                value = np.lib.format.read_array(member, allow_pickle=False)
        return json.loads(str(value))
    except (OSError, zipfile.BadZipFile, ValueError) as error:
        raise EpisodeFormatError(f"{path}: cannot read metadata ({error})") from error


def _subset(index: EpisodeIndex, records: list[EpisodeRecord], split: str) -> EpisodeIndex:
    if not records:
        raise FileNotFoundError(f"{index.root}: the {split} split holds no episode")
    subset = copy.copy(index)
    subset.records = records
    return subset


def split_index(
    data_dir: str | Path, test_fraction: float = 0.2, min_frames: int = 1
) -> tuple[EpisodeIndex, EpisodeIndex, str]:
    """``(train, test, how)``: the dataset's episodes split by metadata or by path hash.

    ``how`` is ``"metadata"`` or ``"hash"``. ``test_fraction`` applies to hash splits only.
    """
    index = EpisodeIndex(data_dir, "all", test_fraction, min_frames=min_frames)
    splits = [episode_metadata(r.path).get("split") for r in index.records]
    if all(s in ("train", "test") for s in splits):
        train = [r for r, s in zip(index.records, splits, strict=True) if s == "train"]
        test = [r for r, s in zip(index.records, splits, strict=True) if s == "test"]
        how = "metadata"
    else:
        root = Path(data_dir)
        flags = [is_test_file(str(r.path.relative_to(root)), test_fraction) for r in index.records]
        train = [r for r, t in zip(index.records, flags, strict=True) if not t]
        test = [r for r, t in zip(index.records, flags, strict=True) if t]
        how = "hash"
    return _subset(index, train, "train"), _subset(index, test, "test"), how


def task_records(index: EpisodeIndex, task: str, window: int) -> list[EpisodeRecord]:
    """The records :func:`~keypoint_wm.evaluation.windows.iter_windows` numbers as
    ``WindowBatch.episode`` for ``task``."""
    return [r for r in index.records if r.task == task and r.frames >= window]
