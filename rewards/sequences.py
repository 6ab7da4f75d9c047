"""The reward heads' data: world-model hidden states along observed test sequences.

Paper S2.2: the hidden states of the trained model for length-20 sequences from the test
split of each task, then 80 % of them to train a head and 20 % to test it. Here:

- the episode files of the data's test split (the run's own ``train.test_fraction``, by
  path hash as in training: the world model never saw them), plus every episode of any
  held-out dataset (collected apart, ``--held-out-data``), grouped by task;
- windows of ``window`` frames every ``stride`` frames of each episode, at most
  ``max_windows`` per task (evenly spread over the candidates);
- :meth:`~keypoint_wm.api.WorldModel.observe` over each window with its actions (posterior
  at every step; the noise is seeded), its keypoints detected once per episode frame and
  sliced into the windows that share it
  (:meth:`~keypoint_wm.api.WorldModel.observe_detected`); ``hidden[:, t]`` = h_{t-1} (zeros
  at a window's first frame: each window is observed from a fresh state) and
  ``keypoints[:, t]``, the keypoints detected in frame t (for a CNN-VRNN run its encoder's
  features of frame t, ``[K, 3]`` as :meth:`~keypoint_wm.api.WorldModel.observe` hands them
  out), go with ``reward[:, t]``, the reward received with frame t;
- a deterministic split, by seed, into the head's train and test parts: of the windows
  (:func:`split_windows`, the paper's "80 % of the data") or, stricter, of whole episodes
  (:func:`split_episodes`: windows of one episode overlap, so a held-out window never shares
  frames with a training one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.data.episodes import Episode, load_episode
from keypoint_wm.data.sequences import EpisodeIndex, EpisodeRecord
from keypoint_wm.errors import DataError, UsageError

__all__ = [
    "MIN_SPLIT",
    "SPLITS",
    "RewardSequences",
    "check_held_out",
    "collect_reward_sequences",
    "head_episodes",
    "hold_out_episodes",
    "split_episodes",
    "split_sequences",
    "split_shortfall",
    "split_windows",
    "window_starts",
]

SPLITS = ("windows", "episodes")

DETECT_FRAMES = 256
"""Frames of one episode the detector takes in one call (bounds its memory)."""

MIN_SPLIT = 2
"""A head's train and test parts need one window each (split by windows), or the windows of
one episode each (split by episodes): at least this many of them in all."""


@dataclass
class RewardSequences:
    """The windows of one task.

    Attributes:
        task: task name (the dataset's sub-directory, e.g. ``"cheetah-run"``).
        hidden: float32 ``[N, T, H]`` world-model hidden states (``hidden[:, t]`` = h_{t-1}).
        reward: float32 ``[N, T]`` rewards received with each frame: ``reward[i, t]`` is the
            episode's ``reward[start[i] + t]``.
        episode: ``[N]`` index of the window's episode file in ``files``.
        start: ``[N]`` first frame of each window.
        files: the task's test-split episode files.
        keypoints: float32 ``[N, T, K, 3]`` the model's per-frame representation of each
            frame (frame ``start[i] + t``): the keypoints detected in it, or for a CNN-VRNN
            run its encoder features; for heads that read them (``hidden+keypoints``,
            ``hidden+features``); None where not collected.
    """

    task: str
    hidden: np.ndarray
    reward: np.ndarray
    episode: np.ndarray
    start: np.ndarray
    files: list[str]
    keypoints: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.hidden.shape[0])

    def subset(self, index: np.ndarray) -> RewardSequences:
        return RewardSequences(
            self.task,
            self.hidden[index],
            self.reward[index],
            self.episode[index],
            self.start[index],
            self.files,
            None if self.keypoints is None else self.keypoints[index],
        )


def split_shortfall(count: int, by: str) -> str | None:
    """What ``count`` windows (``by="windows"``), or the windows of ``count`` episodes
    (``by="episodes"``), lack to be split into a head's train and test parts; None when
    they suffice. :func:`split_windows` and :func:`split_episodes` refuse by this rule, and
    ``evaluate agents`` checks a dream's head data by it before training anything.

    >>> split_shortfall(1, "episodes")
    'windows from at least 2 test-split episodes per task, got 1'
    >>> split_shortfall(1, "windows"), split_shortfall(2, "episodes")
    ('at least 2 windows to split into train and test, got 1', None)
    """
    if count >= MIN_SPLIT:
        return None
    if by == "episodes":
        return f"windows from at least {MIN_SPLIT} test-split episodes per task, got {count}"
    return f"at least {MIN_SPLIT} windows to split into train and test, got {count}"


def split_windows(count: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``count`` windows into (train, test) index arrays.

    Raises:
        DataError: fewer than 2 windows (:func:`split_shortfall`).
        ValueError: a fraction outside (0, 1).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    shortfall = split_shortfall(count, "windows")
    if shortfall is not None:
        raise DataError(f"need {shortfall}")
    order = np.random.default_rng(np.random.SeedSequence([seed, count])).permutation(count)
    cut = min(max(1, round(count * train_fraction)), count - 1)
    return np.sort(order[:cut]), np.sort(order[cut:])


def hold_out_episodes(episode: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whole episodes holding about ``fraction`` of the windows: a boolean mask ``[N]``.

    Episodes are drawn in a seeded order until they hold at least ``fraction`` of the
    windows; at least one episode is always left out of the mask. All False when
    ``fraction`` is 0 or there is a single episode.

    Args:
        episode: ``[N]`` the episode of each window.
        fraction: share of the windows to hold out, in [0, 1).
        seed: the episode order.
    """
    episodes, counts = np.unique(episode, return_counts=True)
    if fraction <= 0 or len(episodes) < 2:
        return np.zeros(len(episode), bool)
    order = np.random.default_rng(seed).permutation(len(episodes))
    chosen, held = [], 0
    for i in order[:-1]:  # at least one episode stays out of the mask
        if held >= fraction * len(episode):
            break
        chosen.append(episodes[i])
        held += int(counts[i])
    return np.isin(episode, chosen)


def split_episodes(
    episode: np.ndarray, train_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of windows into (train, test) index arrays by whole episodes.

    Raises:
        DataError: fewer than 2 episodes (:func:`split_shortfall`).
        ValueError: a fraction outside (0, 1).
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    shortfall = split_shortfall(len(np.unique(episode)), "episodes")
    if shortfall is not None:
        raise DataError(f"--split episodes needs {shortfall}")
    is_test = hold_out_episodes(episode, 1.0 - train_fraction, seed)
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def split_sequences(
    sequences: RewardSequences, train_fraction: float, seed: int, by: str = "windows"
) -> tuple[RewardSequences, RewardSequences]:
    """The head's (train, test) parts: ``by`` ``"windows"`` or ``"episodes"``.

    Raises:
        UsageError: an unknown ``by``.
        DataError: too few windows or episodes to split.
    """
    if by == "windows":
        train, test = split_windows(len(sequences), train_fraction, seed)
    elif by == "episodes":
        train, test = split_episodes(sequences.episode, train_fraction, seed)
    else:
        raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {by!r}")
    return sequences.subset(train), sequences.subset(test)


def check_held_out(held_out: tuple[Path, ...], data_dir: str | Path, model: WorldModel) -> None:
    """Refuse a held-out dataset that may hold episodes the world model trained on.

    A held-out dataset is collected apart from the run's (another ``--seed`` of ``collect``,
    into another folder). Refused: the data's own folder or the run's training folder, and
    a dataset whose manifest records the same collection seed as theirs for a task they
    share (episode ``i`` of a task is the same episode for the same seed, whatever the
    episode count).

    Raises:
        UsageError: naming ``--held-out-data`` and the folder.
    """
    from keypoint_wm.data.episodes import read_manifest

    trained = model.config.data.get("root")
    own = [Path(p) for p in (data_dir, trained) if p]
    specs = []
    for folder in own:
        manifest = read_manifest(folder) if folder.is_dir() else None
        if manifest is not None and manifest.get("spec") is not None:
            specs.append(manifest["spec"])
    for extra in held_out:
        if not Path(extra).is_dir():
            raise UsageError(f"--held-out-data {extra}: no such folder")
        if any(Path(extra).resolve() == folder.resolve() for folder in own):
            raise UsageError(
                f"--held-out-data {extra}: that is the run's own dataset, whose non-test "
                "episodes the world model trained on; collect new episodes with another "
                "--seed into another folder"
            )
        spec = (read_manifest(extra) or {}).get("spec") or {}
        for other in specs:
            shared = set(spec.get("tasks") or ()) & set(other.get("tasks") or ())
            if spec.get("seed") == other.get("seed") and shared:
                raise UsageError(
                    f"--held-out-data {extra}: it was collected with the same --seed "
                    f"({spec.get('seed')}) as the run's data, so its episodes of "
                    f"{', '.join(sorted(shared))} are the run's; collect with another --seed"
                )


def window_starts(frames: int, window: int, stride: int) -> list[int]:
    """The first frames of an episode's windows of ``window`` frames every ``stride``.

    >>> window_starts(31, 20, 10), window_starts(19, 20, 10)
    ([0, 10], [])
    """
    return list(range(0, frames - window + 1, stride))


def head_episodes(
    data_dir: str | Path,
    window: int,
    test_fraction: float,
    held_out: tuple[Path, ...] = (),
) -> dict[str, list[EpisodeRecord]]:
    """The episode files reward heads take their windows from, by task: the test split's
    (``test_fraction``, by path hash as in training) and every held-out dataset's, each of
    at least ``window`` frames.

    Raises:
        NoEpisodesError: no such file in the test split (or in a held-out dataset).
    """
    records = list(EpisodeIndex(data_dir, "test", test_fraction, min_frames=window).records)
    for extra in held_out:
        records += EpisodeIndex(extra, "all", min_frames=window).records
    by_task: dict[str, list[EpisodeRecord]] = {}
    for record in records:
        by_task.setdefault(record.task, []).append(record)
    return by_task


def collect_reward_sequences(
    model: WorldModel,
    data_dir: str | Path,
    window: int = 20,
    stride: int = 10,
    max_windows: int = 10_000,
    tasks: list[str] | None = None,
    test_fraction: float | None = None,
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
    held_out: tuple[Path, ...] = (),
) -> dict[str, RewardSequences]:
    """Hidden states, keypoints (CNN-VRNN: features) and rewards of the test split's
    windows, per task.

    Args:
        model: the trained world model.
        data_dir: the dataset (ours, one sub-directory per task).
        window, stride: window length in frames (paper: 20) and spacing of window starts.
        max_windows: at most this many windows per task (paper: 10,000).
        tasks: only these tasks (default: every task of the test split).
        test_fraction: the test split (default: the run's ``train.test_fraction``).
        batch_size: windows per model call.
        seed: seeds the subset choice and the posterior noise.
        held_out: datasets the world model never saw (:func:`check_held_out`), every
            episode of which joins the test split's.

    Raises:
        UsageError: bad window/stride/max_windows, or a task the test split lacks.
    """
    for name, value in (("window", window), ("stride", stride), ("max_windows", max_windows)):
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    if test_fraction is None:
        test_fraction = model.config.train.test_fraction
    found = head_episodes(data_dir, window, test_fraction, held_out)
    by_task = {task: [r.path for r in records] for task, records in found.items()}
    if tasks:
        missing = [t for t in tasks if t not in by_task]
        if missing:
            raise UsageError(
                f"--tasks: no test-split episodes of {', '.join(missing)} under {data_dir} "
                f"(tasks there: {', '.join(sorted(by_task))})"
            )
        by_task = {t: by_task[t] for t in tasks}
    frames_of = {r.path: r.frames for records in found.values() for r in records}
    result = {}
    for task, paths in sorted(by_task.items()):
        candidates = [
            (i, start)
            for i, path in enumerate(paths)
            for start in window_starts(frames_of[path], window, stride)
        ]
        if len(candidates) > max_windows:
            keep = np.linspace(0, len(candidates) - 1, max_windows).round().astype(int)
            candidates = [candidates[i] for i in keep]
        result[task] = _observe_windows(
            model, task, paths, candidates, window, batch_size, seed, progress
        )
    return result


@torch.no_grad()
def _observe_windows(
    model: WorldModel,
    task: str,
    paths: list[Path],
    windows: list[tuple[int, int]],
    window: int,
    batch_size: int,
    seed: int,
    progress: bool,
) -> RewardSequences:
    torch.manual_seed(seed)
    hidden, keypoints, reward = [], [], []
    cache: dict[int, tuple[Episode, torch.Tensor]] = {}
    action_size = model.action_size
    bar = tqdm(total=len(windows), desc=f"hidden states {task}", unit="seq", disable=not progress)
    for begin in range(0, len(windows), batch_size):
        chunk = windows[begin : begin + batch_size]
        detected, actions, rewards = [], [], []
        for episode_index, start in chunk:
            if episode_index not in cache:
                cache.clear()  # windows come episode by episode: keep one in memory
                starts = [s for e, s in windows if e == episode_index]
                cache[episode_index] = _detected_episode(
                    model, paths[episode_index], starts, window
                )
            episode, episode_keypoints = cache[episode_index]
            detected.append(episode_keypoints[start : start + window])
            action = np.zeros((window, action_size), np.float32)
            source = episode.action[start : start + window]
            width = min(action_size, source.shape[1])
            action[:, :width] = source[:, :width]
            actions.append(action)
            rewards.append(episode.reward[start : start + window])
        out = model.observe_detected(
            torch.stack(detected), np.stack(actions) if action_size else None
        )
        hidden.append(out.hidden.numpy().astype(np.float32))
        keypoints.append(out.keypoints.numpy().astype(np.float32))
        reward.append(np.stack(rewards).astype(np.float32))
        bar.update(len(chunk))
    bar.close()
    return RewardSequences(
        task=task,
        hidden=np.concatenate(hidden),
        reward=np.concatenate(reward),
        episode=np.array([w[0] for w in windows]),
        start=np.array([w[1] for w in windows]),
        files=[str(p) for p in paths],
        keypoints=np.concatenate(keypoints),
    )


def _detected_episode(
    model: WorldModel, path: Path, starts: list[int], window: int
) -> tuple[Episode, torch.Tensor]:
    """An episode and the keypoints ``[T, K, 3]`` of the frames its windows (``starts``)
    hold, each frame detected once however many overlapping windows hold it (the others
    stay zero)."""
    episode = load_episode(path)
    needed = np.zeros(len(episode.image), bool)
    for start in starts:
        needed[start : start + window] = True
    frames = np.flatnonzero(needed)
    keypoints = torch.zeros(len(needed), model.num_keypoints, 3)
    for begin in range(0, len(frames), DETECT_FRAMES):
        chosen = frames[begin : begin + DETECT_FRAMES]
        keypoints[chosen] = model.detect(episode.image[None, chosen])[0]
    return episode, keypoints
