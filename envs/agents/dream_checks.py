"""What the ``dream`` variant of ``keypoint-wm evaluate agents`` needs, checked before any
unit trains.

A dream unit of a task reads:

- start windows of the run's data episodes (``DATA/<task>/``): episodes of at least the
  frames the model observes, at the model's image size (:class:`~keypoint_wm.envs.DreamEnv`);
- a reward head: the first ``<task>/`` head of the heads folders (``--heads`` or
  ``RUN/rewards``, then ``OUT/reward_heads``), made for this model; or else one trained
  then on the data's test split (:func:`~keypoint_wm.rewards.train_reward_heads`), which
  needs rewards in those episodes and windows from enough of them
  (:func:`~keypoint_wm.rewards.sequences.split_shortfall`, the rule the head's training
  applies).

:func:`check_dream` refuses whatever of that is missing in one line (a
:class:`~keypoint_wm.errors.UsageError` naming ``--data``, ``--heads`` or ``--variants`` and
what to add), so that a run does not fail at its dream units after training the others.
"""

from __future__ import annotations

from pathlib import Path

from keypoint_wm.api import WorldModel
from keypoint_wm.collect.config import EpisodeJob
from keypoint_wm.data.episode_format import inspect_episode_file
from keypoint_wm.data.episodes import iter_episode_files
from keypoint_wm.data.sequences import EpisodeIndex, EpisodeRecord, NoEpisodesError, is_test_file
from keypoint_wm.envs.agents.config import AgentEvalConfig
from keypoint_wm.errors import UsageError
from keypoint_wm.rewards.fit import RewardTrainConfig
from keypoint_wm.rewards.head import HEAD_CONFIG
from keypoint_wm.rewards.sequences import MIN_SPLIT, head_episodes, split_shortfall, window_starts

__all__ = ["check_dream", "episodes_for_test_split", "find_head", "head_train_config"]

LEAVE_OUT = "or leave dream out of --variants"


def head_train_config(config: AgentEvalConfig) -> RewardTrainConfig:
    """How a missing reward head of the dream is trained (``--head-steps``, the rest
    :class:`~keypoint_wm.rewards.RewardTrainConfig`'s defaults)."""
    return RewardTrainConfig(steps=config.head_steps)


def find_head(task: str, heads: tuple[Path, ...]) -> Path | None:
    """The first ``<task>/`` head directory of the folders ``heads``; None: none holds one."""
    for folder in heads:
        if (folder / task / HEAD_CONFIG).is_file():
            return folder / task
    return None


def check_dream(
    model: WorldModel, config: AgentEvalConfig, data: Path | None, heads: tuple[Path, ...]
) -> None:
    """Refuse, in one line, a dream the run's data or heads cannot serve (see the module doc):
    ``model`` the run's, ``config`` the comparison's, ``data`` its dataset (``--data``),
    ``heads`` the folders searched for a task's head, in order.

    Raises:
        UsageError: naming ``--data`` (no such folder, no episodes of a task, frames of
            another size, too few test-split episodes or no rewards to train a missing
            head on) or ``--heads`` (a head made for another model).
    """
    if data is None or not data.is_dir():
        raise UsageError(
            f"--data {data}: no such folder; the dream variant starts its episodes from the "
            f"run's data: pass --data DIR (the dataset the run was trained on), {LEAVE_OUT}"
        )
    for task in config.tasks:
        _check_starts(task, data, model)
        head = find_head(task, heads)
        if head is None:
            _check_head_data(task, data, model, config, heads)
        else:
            _check_head(task, head, model, heads)


def _check_starts(task: str, data: Path, model: WorldModel) -> None:
    """The dream's start windows: ``DATA/<task>/`` episodes of the model's frames."""
    folder = data / task
    context = int(model.config.model.num_observed_steps)
    if not folder.is_dir():
        there = sorted(p.name for p in data.iterdir() if p.is_dir())
        raise UsageError(
            f"--data {data}: no folder {task}/ of episodes for the dream's start windows "
            f"(folders there: {', '.join(there) or 'none'}); pass the dataset the run was "
            f"trained on, {LEAVE_OUT}"
        )
    try:
        index = EpisodeIndex(folder, "all", min_frames=context)
    except NoEpisodesError:
        raise UsageError(
            f"--data {data}: {task}/ holds no episode of at least {context} frames, which "
            f"the dream's start windows need; collect episodes of {task} there, {LEAVE_OUT}"
        ) from None
    size = int(model.config.model.image_size)
    if index.image_shape != (size, size, 3):
        shape = "x".join(str(s) for s in index.image_shape)
        raise UsageError(
            f"--data {data}: {task}/ holds {shape} frames, the run's model reads "
            f"{size}x{size}x3; pass the dataset the run was trained on, {LEAVE_OUT}"
        )


def _check_head(task: str, head: Path, model: WorldModel, heads: tuple[Path, ...]) -> None:
    """A head found for ``task`` must be made for the run's model."""
    from keypoint_wm.rewards import load_reward_head

    try:
        load_reward_head(head).check_model(
            model.config.model.rnn_units, model.num_keypoints, model.config.model.representation
        )
    except ValueError as error:
        flag = "--heads" if head.parent == heads[0] else "--out"
        raise UsageError(
            f"{flag} {head.parent}: the reward head of {task} does not fit the run's model "
            f"({error}); give this run's heads with --heads, {LEAVE_OUT}"
        ) from None


def _check_head_data(
    task: str, data: Path, model: WorldModel, agents: AgentEvalConfig, heads: tuple[Path, ...]
) -> None:
    """A missing head is trained on ``data``'s test split: it must hold rewards and windows
    from enough episodes (:func:`~keypoint_wm.rewards.sequences.split_shortfall`)."""
    config = head_train_config(agents)
    fraction = float(model.config.train.test_fraction)
    records = _test_episodes(task, data, config.window, fraction)
    folders = " or ".join(str(folder) for folder in heads)
    what = (
        f"--data {data}: no reward head of {task} in {folders}, and training one on the "
        f"data's test split (train.test_fraction {fraction:g})"
    )
    given = "give trained heads with --heads DIR"
    silent = [r for r in records if inspect_episode_file(r.path, read_images=False).reward is None]
    if silent:
        raise UsageError(
            f"{what} needs rewards, which {len(silent)} of its {len(records)} episodes of "
            f"{task} lack; {given}, {LEAVE_OUT}"
        )
    if config.split == "episodes":
        count = len(records)
    else:
        count = sum(len(window_starts(r.frames, config.window, config.stride)) for r in records)
    shortfall = split_shortfall(count, config.split)
    if shortfall is None:
        return
    every = _test_episodes(task, data, 1, fraction)
    if len(every) >= MIN_SPLIT > len(records):
        more = f"collect longer episodes: --steps {config.window - 1} or more"
    else:
        have = sum(1 for _ in iter_episode_files(data / task))
        needed = episodes_for_test_split(task, fraction, MIN_SPLIT - len(records), have)
        more = "collect more episodes" + (f": --episodes {needed}" if needed else "")
    raise UsageError(
        f"{what} needs {shortfall} ({config.window}-frame windows); {more}, or {given}"
    )


def _test_episodes(task: str, data: Path, window: int, fraction: float) -> list[EpisodeRecord]:
    """The test-split episodes of ``task`` a head trains on (at least ``window`` frames)."""
    try:
        return head_episodes(data, window, fraction).get(task, [])
    except NoEpisodesError:
        return []


def episodes_for_test_split(
    task: str, test_fraction: float, more: int, have: int, limit: int = 100_000
) -> int | None:
    """How many episodes ``collect`` must hold of ``task`` for ``more`` test-split episodes
    (at ``test_fraction``) beyond the first ``have``: the split is a hash of each file's
    path, and collect names episode ``i`` ``<task>/episode_<i>.npz``. None: not within
    ``limit`` episodes (a test fraction of 0).

    >>> episodes_for_test_split("cartpole-balance", 0.5, 1, 2)
    3
    """
    found = 0
    for index in range(have, limit):
        if is_test_file(EpisodeJob(task, index, 0).relative_path().as_posix(), test_fraction):
            found += 1
            if found >= more:
                return index + 1
    return None
