"""What a collection run gathers: :class:`CollectConfig`, its validation, and the job plan.

The plan is a deterministic list of episodes (task, index, seed) derived from the config
alone, so a re-run, any number of workers, and any ``--shard i/n`` split all agree on what
each episode file holds.

Importing this module imports neither gymnasium nor dm_control (the command line reads the
defaults below while it builds its parser): the paper's task list is read from
:mod:`keypoint_wm.envs` when a config is built without ``tasks``.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.data.frames import FrameCrop
from keypoint_wm.errors import UsageError

DEFAULT_OUT = Path("data") / "dmcs"
"""Where ``keypoint-wm collect`` writes by default and ``keypoint-wm train`` reads by default:
``data/dmcs`` under the current directory, or ``$KEYPOINT_WM_DATA`` when that is set."""


def default_data_dir() -> Path:
    """The default dataset directory (``$KEYPOINT_WM_DATA`` or ``./data/dmcs``)."""
    return Path(os.environ.get("KEYPOINT_WM_DATA", DEFAULT_OUT))


def paper_tasks() -> tuple[str, ...]:
    """The paper's six DMCS tasks (the default of :attr:`CollectConfig.tasks`)."""
    from keypoint_wm.envs.registration import PAPER_TASKS

    return PAPER_TASKS


class CollectError(UsageError):
    """Bad collection input; the message names the flag and what was expected (exit 2)."""


@dataclass(frozen=True)
class Shard:
    """Part ``index`` of ``count`` disjoint parts (``--shard i/n``, 0 <= i < n)."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"i/n"``; raise :class:`CollectError` naming ``--shard`` if malformed."""
        try:
            left, right = text.split("/")
            index, count = int(left), int(right)
        except ValueError:
            raise CollectError(
                f"--shard expects i/n with integers 0 <= i < n, got {text!r}"
            ) from None
        if count < 1 or not 0 <= index < count:
            raise CollectError(f"--shard expects i/n with 0 <= i < n and n >= 1, got {text!r}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class CollectConfig:
    """A random-action dataset of DeepMind Control Suite tasks and Gymnasium environments.

    ``tasks`` are DMCS ``domain-task`` names (frames rendered at ``size`` by dm_control,
    stepped ``action_repeat`` times per action); ``envs`` are Gymnasium ids
    (``--env``, :mod:`keypoint_wm.envs.gym_pixels`), made with ``env_kwargs`` and
    ``render_mode="rgb_array"``, stepped once per action, their rendered frames cropped
    (``crop``) and area-resized to ``size``; their episodes may end early.

    The defaults give a useful dataset for the ``dmcs-cpu`` preset in a few minutes on a
    2-core machine: 6 tasks x 20 episodes x 201 frames (24,120 frames, about 60 MB).
    """

    tasks: tuple[str, ...] = field(default_factory=paper_tasks)
    episodes: int = 20  # per task
    steps: int = 200  # agent steps per episode; a file holds steps + 1 frames
    action_repeat: int = 2  # physics control steps per agent step (rewards summed)
    size: int = 64  # square image side in pixels
    camera_id: int = 0
    seed: int = 0
    out: Path = field(default_factory=default_data_dir)
    envs: tuple[str, ...] = ()  # Gymnasium ids (--env), after the DMCS tasks
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # for every --env
    crop: str | None = None  # --crop of the --env frames: "center" or "T,B,L,R"

    def validate(self) -> None:
        """Raise :class:`CollectError` naming the flag of the first bad value."""
        for flag, value in (
            ("--episodes", self.episodes),
            ("--steps", self.steps),
            ("--action-repeat", self.action_repeat),
            ("--size", self.size),
        ):
            if not isinstance(value, int) or value < 1:
                raise CollectError(f"{flag} must be a positive integer, got {value!r}")
        if self.camera_id < 0:
            raise CollectError(f"--camera must be >= 0, got {self.camera_id}")
        if not self.tasks and not self.envs:
            raise CollectError("--domains selected no task")
        if len(set(self.tasks)) != len(self.tasks):
            raise CollectError(f"--domains lists a task twice: {', '.join(self.tasks)}")
        if len(set(self.all_tasks)) != len(self.all_tasks):
            raise CollectError(
                f"--env: two environments share a dataset folder: {', '.join(self.all_tasks)}"
            )
        if not isinstance(self.env_kwargs, dict):
            raise CollectError(f"--env-kwargs must be a JSON object, got {self.env_kwargs!r}")
        if self.crop is not None:
            self.frame_crop()
        if self.out.exists() and not self.out.is_dir():
            raise CollectError(f"--out {self.out} is a file, expected a directory")

    def dataset_spec(self) -> dict[str, Any]:
        """The part of the config that fixes the content of every episode file.

        Written to the manifest; a re-run into the same directory must match it.
        """
        spec = asdict(self)
        spec.pop("out")
        spec["tasks"] = list(self.tasks)
        if self.envs:
            spec["envs"] = list(self.envs)
        else:  # a DMCS dataset's manifest reads as before --env existed
            for key in ("envs", "env_kwargs", "crop"):
                spec.pop(key)
        return spec

    @property
    def all_tasks(self) -> tuple[str, ...]:
        """Every dataset folder: the DMCS tasks, then each ``--env``'s
        (:func:`env_folder`)."""
        return self.tasks + tuple(env_folder(name) for name in self.envs)

    def env_of(self, task: str) -> str | None:
        """The ``--env`` id collected into folder ``task`` (None: a DMCS task)."""
        return next((name for name in self.envs if env_folder(name) == task), None)

    def frame_crop(self) -> FrameCrop | None:
        """``--crop`` parsed (None: no crop); CollectError naming the flag if malformed."""
        if self.crop is None:
            return None
        try:
            return FrameCrop.parse(self.crop)
        except ValueError as error:
            raise CollectError(f"--crop: {error}") from None


def env_folder(name: str) -> str:
    """The dataset folder of an ``--env`` id: ``module:ID`` -> ``ID``, ``/`` -> ``-``.

    >>> env_folder("my_pkg.envs:Grid-v0"), env_folder("ALE/Pong-v5")
    ('Grid-v0', 'ALE-Pong-v5')
    """
    return name.rsplit(":", 1)[-1].replace("/", "-")


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to collect: which task, which index within the task, which seed."""

    task: str
    index: int
    seed: int

    def relative_path(self) -> Path:
        return Path(self.task) / f"episode_{self.index:06d}.npz"


def episode_seed(base_seed: int, task: str, index: int) -> int:
    """A 32-bit seed that depends only on (base seed, task name, episode index)."""
    sequence = np.random.SeedSequence([base_seed, zlib.crc32(task.encode()), index])
    return int(sequence.generate_state(1)[0])


def plan_jobs(config: CollectConfig, shard: Shard | None = None) -> list[EpisodeJob]:
    """The episodes of ``shard`` (interleaved across tasks so shards get similar work)."""
    shard = shard or Shard()
    jobs = [
        EpisodeJob(task, index, episode_seed(config.seed, task, index))
        for index in range(config.episodes)
        for task in config.all_tasks
    ]
    return jobs[shard.index :: shard.count]


def resolve_tasks(domains: str, known: tuple[str, ...], paper: tuple[str, ...]) -> tuple[str, ...]:
    """Turn ``--domains`` (``all``, or comma-separated ``domain-task`` or ``domain``) into tasks.

    ``all`` means the paper's six tasks; a bare domain name means its paper task(s), or all
    of its suite tasks when it has none among the paper's.
    """
    text = domains.strip()
    if text == "all":
        return paper
    chosen: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise CollectError(f"--domains has an empty entry: {domains!r}")
        if item in known:
            matches = [item]
        else:
            matches = [t for t in paper if t.split("-")[0] == item]
            matches = matches or [t for t in known if t.startswith(item + "-")]
        if not matches:
            raise CollectError(
                f"--domains: unknown domain or task {item!r}; expected 'all' or "
                f"comma-separated names such as {', '.join(paper)}"
            )
        chosen.extend(t for t in matches if t not in chosen)
    return tuple(chosen)
