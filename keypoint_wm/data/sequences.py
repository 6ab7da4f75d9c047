"""Random windows of episodes for training: observed + predicted steps, in constant memory.

:class:`EpisodeIndex` reads only the array headers of each file (cheap, no decompression)
and splits files deterministically into train, validation and test. :class:`WindowDataset`
maps a
*global sample number* to a (file, start) pair through a counter-based RNG, so the data
order is a pure function of (seed, sample number): a resumed run continues with exactly the
batches it would have seen, whatever the number of loader workers. Files are read on demand,
so memory does not grow with the dataset (a dataset larger than RAM still trains).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from keypoint_wm.config import REFERENCE_FRAMES
from keypoint_wm.data.episodes import (
    DatasetNotFoundError,
    EpisodeFileReport,
    EpisodeFormatError,
    inspect_episode_file,
    iter_episode_files,
    load_episode,
)
from keypoint_wm.data.inspect import mixed_image_shapes


class NoEpisodesError(DatasetNotFoundError):
    """No episode file of the wanted split and length under a dataset directory."""


@dataclass(frozen=True)
class EpisodeRecord:
    """What the index knows about one episode file without loading it."""

    path: Path
    frames: int
    image_shape: tuple[int, int, int]
    action_size: int
    num_objects: int  # 0 when the file has no true_object_pos
    task: str


def _task_of(root: Path, path: Path) -> str:
    parent = path.parent.relative_to(root)
    return str(parent) if str(parent) != "." else "all"


SPLITS = ("train", "validation", "test", "all")
VALIDATION_SALT = "validation:"
"""Prefixed to a file's key before the validation hash, so that it is independent of the
test hash (:func:`is_validation_file`)."""


def _hash_fraction(key: str) -> float:
    """A number in [0, 1) from the first 4 bytes of the SHA-1 of ``key``."""
    digest = hashlib.sha1(key.encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32


def is_test_file(relative_path: str, test_fraction: float) -> bool:
    """Deterministic, order-free split: a file is in the test split by a hash of its path."""
    return _hash_fraction(relative_path) < test_fraction


def is_validation_file(key: str, validation_fraction: float) -> bool:
    """Whether a training file is held out for validation: by a hash of ``VALIDATION_SALT +
    key`` (:func:`validation_key`), independent of the test hash, so that it takes the
    same fraction of every task's training files.

    >>> is_validation_file("a/episode_000001.npz", 0.0), is_validation_file("x", 0.999999)
    (False, True)
    """
    return _hash_fraction(VALIDATION_SALT + key) < validation_fraction


def validation_key(report: EpisodeFileReport, root: Path) -> str:
    """What the validation hash reads for a file: its path under ``root``, or, for a file
    whose metadata names its ``subject`` and ``action_raw`` (Human3.6M: one file per camera
    of a recording), the recording, so that every camera of it falls on the same side."""
    subject, recording = report.metadata.get("subject"), report.metadata.get("action_raw")
    if isinstance(subject, str) and isinstance(recording, str):
        return f"{subject}/{recording}"
    return str(report.path.relative_to(root))


class EpisodeIndex:
    """All episode files under ``root`` with their lengths, shapes and task names.

    Three disjoint splits. The test split: when every file's metadata names its split
    (``"train"``/``"test"``, e.g. Human3.6M's subjects, the figure stand-in's own hash),
    that split (``split_source == "metadata"``); otherwise a hash of the path
    (``split_source == "hash"``, :func:`is_test_file`). The validation split: the fraction
    ``validation_fraction`` of the other files, by a second, salted hash
    (:func:`is_validation_file`) of the path, or of the recording for Human3.6M (its
    cameras on one side; :func:`validation_key`), for both kinds of data. ``"train"`` is
    what remains: the world model trains on it and never on validation or test files.

    Args:
        root: a dataset directory (ours, laid out by task, or a flat folder of
            reference-implementation ``.npz`` files).
        split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"``.
        test_fraction: fraction of files (per task, by path hash) held out as ``"test"``;
            unused for metadata splits.
        min_frames: drop files shorter than this (a window must fit; episodes that ended
            early); ``short_files`` counts them, :meth:`describe_skipped` says so.
        validation_fraction: fraction of the non-test files held out as ``"validation"``.
            0 (the default) keeps them all in ``"train"``: what evaluation fits its readouts
            on (every file outside the test split). Training passes ``train.validation_fraction``.

    Raises:
        EpisodeFormatError: a file breaks the format (the check ``keypoint-wm data check``
            applies, :func:`~keypoint_wm.data.episodes.inspect_episode_file`), or the files
            do not share one image shape; the message names the file and the reason.
        NoEpisodesError: no file of ``split`` with ``min_frames`` frames (a DataError and
            a FileNotFoundError).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        test_fraction: float = 0.2,
        min_frames: int = 1,
        validation_fraction: float = 0.0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0.0 <= test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
        self.root = Path(root)
        self.split = split
        self.split_source = "all"
        # Every file passes the format check `keypoint-wm data check` applies (cheap: array
        # headers and the small arrays; the frames are checked when a window loads them).
        reports = [inspect_episode_file(p, read_images=False) for p in iter_episode_files(root)]
        for report in reports:
            if report.problems:
                raise EpisodeFormatError(
                    f"{report.path}: {'; '.join(report.problems)} "
                    f"(`keypoint-wm data check {self.root}` lists every bad file)"
                )
        mixed = mixed_image_shapes(reports)
        if mixed:
            report, problem = mixed[0]
            raise EpisodeFormatError(
                f"{report.path}: {problem}"
                + (f" (and {len(mixed) - 1} more files)" if len(mixed) > 1 else "")
            )
        splits = (
            self._splits(reports, test_fraction, validation_fraction) if split != "all" else None
        )
        records = []
        self.short_files = 0
        for number, report in enumerate(reports):
            if splits is not None and splits[number] != split:
                continue
            if report.frames < min_frames:  # an episode that ended early (collect --env)
                self.short_files += 1
                continue
            records.append(
                EpisodeRecord(
                    path=report.path,
                    frames=report.frames,
                    image_shape=report.image_shape,
                    action_size=report.action_size,
                    num_objects=report.num_objects,
                    task=_task_of(self.root, report.path),
                )
            )
        if not records:
            hint = f" ({len(reports)} files in all)" if split != "all" and reports else ""
            if split == "validation" and reports and validation_fraction == 0:
                hint = f" ({len(reports)} files in all; validation_fraction is 0)"
            if self.short_files:
                hint += f" ({self.short_files} shorter ones skipped)"
            raise NoEpisodesError(
                f"no {split} episode files with at least {min_frames} frames under "
                f"{self.root}{hint}"
            )
        self.records = records
        self.min_frames = min_frames

    def describe_skipped(self) -> str | None:
        """One line on the files of the split too short for ``min_frames`` (None: none)."""
        if not self.short_files:
            return None
        return (
            f"{self.root}: {self.short_files} {self.split} episode files shorter than "
            f"{self.min_frames} frames skipped ({len(self.records)} used)"
        )

    def _splits(
        self, reports: list[EpisodeFileReport], test_fraction: float, validation_fraction: float
    ) -> list[str]:
        """Each file's split: test by metadata if all files say, else by path hash; then
        validation by the salted hash among the others; the rest train."""
        declared = [r.metadata.get("split") for r in reports]
        if declared and all(s in ("train", "test") for s in declared):
            self.split_source = "metadata"
            is_test = [s == "test" for s in declared]
        else:
            self.split_source = "hash"
            is_test = [
                is_test_file(str(r.path.relative_to(self.root)), test_fraction) for r in reports
            ]
        return [
            "test"
            if test
            else "validation"
            if is_validation_file(validation_key(r, self.root), validation_fraction)
            else "train"
            for r, test in zip(reports, is_test, strict=True)
        ]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.records[0].image_shape

    @property
    def action_size(self) -> int:
        """The largest action size among the tasks (smaller ones are zero-padded)."""
        return max(r.action_size for r in self.records)

    @property
    def tasks(self) -> list[str]:
        return sorted({r.task for r in self.records})

    def __len__(self) -> int:
        return len(self.records)

    def describe(self) -> dict:
        return {
            "root": str(self.root),
            "episodes": len(self.records),
            "frames": sum(r.frames for r in self.records),
            "tasks": self.tasks,
            "image_shape": list(self.image_shape),
            "action_size": self.action_size,
        }


def _counter_rng(seed: int, number: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFF, number]))


class WindowDataset(Dataset):
    """Window number ``i`` -> a dict of tensors for ``window`` consecutive frames.

    Items: ``image`` uint8 [T, H, W, 3]; ``action`` float32 [T, A] (zero-padded to the
    index's largest action size); ``reward`` float32 [T]; ``true_object_pos`` float32
    [T, N, 2] (N = 0 when absent); ``task`` int (index into ``index.tasks``); with
    ``reference="other_episode"`` also ``reference`` uint8 [H, W, 3], a random frame of
    another episode of the same task (the same episode when the task has only one).

    ``action_size=0`` (a model without action conditioning) on data with actions ignores
    the actions, with a warning: the items' ``action`` is ``[T, 0]``. An ``action_size``
    between 0 and the data's is refused (:class:`EpisodeFormatError`), as is a file that
    no longer matches the index when a window loads it.
    """

    def __init__(
        self,
        index: EpisodeIndex,
        window: int,
        seed: int = 0,
        action_size: int | None = None,
        reference: str = "first",
    ):
        if reference not in REFERENCE_FRAMES:
            raise ValueError(f"reference must be one of {REFERENCE_FRAMES}, got {reference!r}")
        self.index = index
        self.window = window
        self.seed = seed
        self.reference = reference
        self.action_size = index.action_size if action_size is None else action_size
        if self.action_size == 0 and index.action_size > 0:
            warnings.warn(
                f"{index.root}: the data has actions ({index.action_size} per step) but the "
                "model is not action-conditioned (model.action_size=0); the actions are ignored",
                stacklevel=2,
            )
        elif self.action_size < index.action_size:
            raise EpisodeFormatError(
                f"{index.root}: the data has {index.action_size} actions per step, more than "
                f"the model's model.action_size={self.action_size}"
            )
        self.records = [r for r in index.records if r.frames >= window]
        if not self.records:
            raise NoEpisodesError(
                f"{index.root}: no episode has the {window} frames a training window needs"
            )
        starts = np.array([r.frames - window + 1 for r in self.records], np.float64)
        self._cumulative = np.cumsum(starts) / starts.sum()
        self._task_ids = {task: i for i, task in enumerate(index.tasks)}
        self._num_objects = max(r.num_objects for r in self.records)
        self._by_task: dict[str, list[EpisodeRecord]] = {}
        for record in index.records:
            self._by_task.setdefault(record.task, []).append(record)

    def __len__(self) -> int:  # windows are drawn by number; any non-negative int works
        return 2**62

    @property
    def num_objects(self) -> int:
        """N of the items' ``true_object_pos`` ``[T, N, 2]`` (the most among the episodes)."""
        return self._num_objects

    def task_id(self, task: str) -> int:
        """The items' ``task`` value for ``task`` (its index in ``index.tasks``)."""
        return self._task_ids[task]

    def locate(self, number: int) -> tuple[EpisodeRecord, int]:
        """The (episode, first frame) of window ``number``."""
        rng = _counter_rng(self.seed, number)
        which = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
        record = self.records[min(which, len(self.records) - 1)]
        start = int(rng.integers(0, record.frames - self.window + 1))
        return record, start

    def reference_of(self, number: int, record: EpisodeRecord) -> tuple[EpisodeRecord, int]:
        """The (episode, frame) whose image is window ``number``'s reference frame."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed & 0xFFFFFFFF, number, 1]))
        others = [r for r in self._by_task[record.task] if r.path != record.path] or [record]
        other = others[int(rng.integers(0, len(others)))]
        return other, int(rng.integers(0, other.frames))

    def __getitem__(self, number: int) -> dict[str, torch.Tensor]:
        record, start = self.locate(number)
        episode = load_episode(record.path)
        if episode.image.shape != (record.frames, *record.image_shape):
            raise EpisodeFormatError(
                f"{record.path}: changed since the dataset was indexed (image "
                f"{list(episode.image.shape)}, was {[record.frames, *record.image_shape]})"
            )
        stop = start + self.window
        action = np.zeros((self.window, self.action_size), np.float32)
        if self.action_size:
            action[:, : episode.action.shape[1]] = episode.action[start:stop]
        pos = episode.true_object_pos
        positions = np.zeros((self.window, self._num_objects, 2), np.float32)
        if pos is not None:
            positions[:, : pos.shape[1]] = pos[start:stop]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(episode.image[start:stop])),
            "action": torch.from_numpy(action),
            "reward": torch.from_numpy(episode.reward[start:stop].copy()),
            "true_object_pos": torch.from_numpy(positions),
            "task": torch.tensor(self._task_ids[record.task]),
        }
        if self.reference == "other_episode":
            other, frame = self.reference_of(number, record)
            image = load_episode(other.path, keys=("image",)).image[frame]
            item["reference"] = torch.from_numpy(np.ascontiguousarray(image))
        return item


class CountingSampler(Sampler[int]):
    """Yields global sample numbers ``first, first + 1, ...`` (optionally strided by rank)."""

    def __init__(self, first: int, rank: int = 0, world_size: int = 1) -> None:
        self.first, self.rank, self.world_size = first, rank, world_size

    def __iter__(self):
        number = self.first * self.world_size + self.rank
        while True:
            yield number
            number += self.world_size

    def __len__(self) -> int:
        return 2**62


def make_loader(
    dataset: WindowDataset,
    batch_size: int,
    first_batch: int = 0,
    workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless loader whose batch ``b`` holds windows ``b*batch_size ... + batch_size - 1``.

    With ``world_size`` > 1 each rank draws a disjoint interleaved stream.
    """
    sampler = CountingSampler(first_batch * batch_size, rank, world_size)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
        drop_last=True,
        pin_memory=pin_memory,  # page-locked batches copy to a GPU without a host stall
        # Its own generator: the loader draws a base seed when iterated, which must not
        # consume the global RNG that the model samples from (exact resume).
        generator=torch.Generator().manual_seed(0),
    )


def dataset_fingerprint(index: EpisodeIndex) -> str:
    """A short hash of the files a run trained on (recorded in the run's config)."""
    names = json.dumps([str(r.path.relative_to(index.root)) for r in index.records])
    return hashlib.sha1(names.encode()).hexdigest()[:12]
