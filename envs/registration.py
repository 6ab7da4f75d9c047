"""Task names and Gymnasium registration of the DeepMind Control Suite pixel environments.

Importing this module must not import dm_control (that selects a GL backend and costs about a
second), so the suite's task list is embedded here as data. ``tests/envs`` checks it against
``dm_control.suite.ALL_TASKS`` of the installed dm_control.

Ids are ``KeypointWM/<domain>-<task>-v0``, e.g. ``KeypointWM/cheetah-run-v0``. They are
registered without a Gymnasium ``TimeLimit``: dm_control's own time limit ends every episode
(as ``truncated=True``), see :class:`keypoint_wm.envs.dmc.DMCPixelEnv`.
"""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium
from gymnasium.envs.registration import EnvSpec

from keypoint_wm.choices import PAPER_TASKS

__all__ = [
    "ALL_TASKS",
    "ENV_NAMESPACE",
    "PAPER_TASKS",
    "TASK_NAMES",
    "env_id",
    "latent_env_id",
    "make_env",
    "parse_task_name",
    "register_envs",
]

ENV_NAMESPACE = "KeypointWM"
"""Gymnasium namespace of the ids registered here."""

ALL_TASKS: tuple[tuple[str, str], ...] = (
    ("acrobot", "swingup"),
    ("acrobot", "swingup_sparse"),
    ("ball_in_cup", "catch"),
    ("cartpole", "balance"),
    ("cartpole", "balance_sparse"),
    ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"),
    ("cartpole", "two_poles"),
    ("cartpole", "three_poles"),
    ("cheetah", "run"),
    ("dog", "stand"),
    ("dog", "walk"),
    ("dog", "trot"),
    ("dog", "run"),
    ("dog", "fetch"),
    ("finger", "spin"),
    ("finger", "turn_easy"),
    ("finger", "turn_hard"),
    ("fish", "upright"),
    ("fish", "swim"),
    ("hopper", "stand"),
    ("hopper", "hop"),
    ("humanoid", "stand"),
    ("humanoid", "walk"),
    ("humanoid", "run"),
    ("humanoid", "run_pure_state"),
    ("humanoid_CMU", "stand"),
    ("humanoid_CMU", "walk"),
    ("humanoid_CMU", "run"),
    ("lqr", "lqr_2_1"),
    ("lqr", "lqr_6_2"),
    ("manipulator", "bring_ball"),
    ("manipulator", "bring_peg"),
    ("manipulator", "insert_ball"),
    ("manipulator", "insert_peg"),
    ("pendulum", "swingup"),
    ("point_mass", "easy"),
    ("point_mass", "hard"),
    ("quadruped", "walk"),
    ("quadruped", "run"),
    ("quadruped", "escape"),
    ("quadruped", "fetch"),
    ("reacher", "easy"),
    ("reacher", "hard"),
    ("stacker", "stack_2"),
    ("stacker", "stack_4"),
    ("swimmer", "swimmer6"),
    ("swimmer", "swimmer15"),
    ("walker", "stand"),
    ("walker", "walk"),
    ("walker", "run"),
)
"""Every ``(domain, task)`` pair of ``dm_control.suite.ALL_TASKS`` (dm-control 1.0.50), in its
order."""

TASK_NAMES: tuple[str, ...] = tuple(f"{domain}-{task}" for domain, task in ALL_TASKS)
"""Every task of :data:`ALL_TASKS` as a ``"domain-task"`` name, e.g. ``"ball_in_cup-catch"``."""

_KNOWN = frozenset(ALL_TASKS)


def _loose(text: str) -> str:
    return text.replace("-", "_").lower()


def parse_task_name(name: str) -> tuple[str, str]:
    """Split ``"domain-task"`` into ``(domain, task)``, e.g. ``"cheetah-run"``.

    Domains and tasks may contain underscores (``"ball_in_cup-catch"``,
    ``"cartpole-swingup_sparse"``), so the name is split at the hyphen that yields a known
    pair. A full id (``"KeypointWM/cheetah-run-v0"``) is accepted too, and so are loose
    spellings that are unambiguous among the known tasks, with ``_``/``-`` interchangeable and
    case ignored (``"ball-in-cup-catch"``, ``"walker_walk"``, as DreamerV3 writes them).
    A name that matches no known task but has exactly one hyphen is split there and returned
    (the environment then checks it against the installed dm_control).

    Raises:
        ValueError: the name cannot be split unambiguously.
    """
    if not isinstance(name, str):
        raise TypeError(f"task name must be a str, got {type(name).__name__}")
    text = name
    if text.startswith(ENV_NAMESPACE + "/"):
        text = text[len(ENV_NAMESPACE) + 1 :]
        if text.endswith("-v0"):
            text = text[: -len("-v0")]
    parts = text.split("-")
    exact = [
        ("-".join(parts[:i]), "-".join(parts[i:]))
        for i in range(1, len(parts))
        if ("-".join(parts[:i]), "-".join(parts[i:])) in _KNOWN
    ]
    if len(exact) == 1:
        return exact[0]
    loose = [pair for pair in ALL_TASKS if _loose(f"{pair[0]}_{pair[1]}") == _loose(text)]
    if len(loose) == 1:
        return loose[0]
    if len(exact) + len(loose) > 1:
        options = ", ".join(f"{d}-{t}" for d, t in sorted(set(exact + loose)))
        raise ValueError(f"task name {name!r} is ambiguous: it could be any of {options}")
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1]
    close = difflib.get_close_matches(text, [f"{d}-{t}" for d, t in ALL_TASKS], n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"cannot parse task name {name!r}: expected 'domain-task' with a DeepMind Control "
        f"Suite domain and task, e.g. 'cheetah-run' or 'ball_in_cup-catch'.{hint}"
    )


def env_id(domain: str, task: str) -> str:
    """The Gymnasium id of a task: ``env_id("cheetah", "run") == "KeypointWM/cheetah-run-v0"``."""
    return f"{ENV_NAMESPACE}/{domain}-{task}-v0"


def latent_env_id(domain: str, task: str) -> str:
    """The id of a task seen through a world model (:class:`~keypoint_wm.envs.LatentObservation`):
    ``latent_env_id("cheetah", "run") == "KeypointWM/cheetah-run-latent-v0"``."""
    return f"{ENV_NAMESPACE}/{domain}-{task}-latent-v0"


def register_envs() -> None:
    """Register ``KeypointWM/<domain>-<task>-v0`` and ``KeypointWM/<domain>-<task>-latent-v0``
    for every pair in :data:`ALL_TASKS`.

    Idempotent; imports neither dm_control nor the environment modules (the entry points are
    strings that Gymnasium resolves when an environment is made). A ``-latent-v0`` id takes
    ``run=PATH`` (``gymnasium.make("KeypointWM/cheetah-run-latent-v0", run="runs/dmcs")``);
    without it, the world model shipped in the package.
    """
    for domain, task in ALL_TASKS:
        for name, entry_point in (
            (env_id(domain, task), "keypoint_wm.envs.dmc:DMCPixelEnv"),
            (latent_env_id(domain, task), "keypoint_wm.envs.latent.wrapper:make_latent_env"),
        ):
            if name in gymnasium.registry:
                continue
            gymnasium.register(
                id=name,
                entry_point=entry_point,
                kwargs={"domain": domain, "task": task},
                max_episode_steps=None,
            )


def make_env(name: str, **kwargs: Any) -> gymnasium.Env:
    """Make a registered pixel environment by task name: ``make_env("cheetah-run", size=32)``.

    ``name`` is anything :func:`parse_task_name` accepts; ``kwargs`` go to
    :class:`~keypoint_wm.envs.dmc.DMCPixelEnv` (``size``, ``action_repeat``, ...) or to
    :func:`gymnasium.make` (e.g. ``max_episode_steps`` for a shorter ``TimeLimit``).
    Returns the environment wrapped the way :func:`gymnasium.make` wraps it.
    """
    domain, task = parse_task_name(name)
    name_id = env_id(domain, task)
    if name_id in gymnasium.registry:
        return gymnasium.make(name_id, **kwargs)
    # A pair missing from the embedded list (e.g. a newer dm_control): make it from a spec of
    # its own, without adding it to the registry; the environment validates the names.
    spec = EnvSpec(
        id=name_id,
        entry_point="keypoint_wm.envs.dmc:DMCPixelEnv",
        kwargs={"domain": domain, "task": task},
        max_episode_steps=None,
    )
    return gymnasium.make(spec, **kwargs)
