"""What ``keypoint-wm evaluate agents`` runs: :class:`AgentEvalConfig` and its units.

A *unit* is one (task, variant, agent seed): one agent trained and scored. The config says
which units there are and which settings every unit of one ``--out`` folder must share, so
that a re-run can reuse the finished ones (:meth:`AgentEvalConfig.unit_settings`).

Budgets are counted in env steps: agent steps of the real environment at the action repeat
of the world model's data (each covers ``action_repeat`` physics control steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keypoint_wm.choices import AGENT_VARIANTS as VARIANTS
from keypoint_wm.differences import describe_differences
from keypoint_wm.envs.latent.dream import STARTS
from keypoint_wm.errors import UsageError
from keypoint_wm.latent_features import FEATURE_CHOICES

__all__ = ["ALGOS", "FEATURES", "VARIANTS", "AgentEvalConfig", "Unit", "settings_differences"]

ALGOS = ("ppo", "sac")
"""The Stable-Baselines3 algorithms ``--algo`` accepts."""

FEATURES = FEATURE_CHOICES
"""What the latent observation holds (see :mod:`keypoint_wm.latent_features`)."""


@dataclass(frozen=True)
class Unit:
    """One (task, variant, agent seed): one agent trained and scored."""

    task: str
    variant: str
    seed: int

    def path(self, out: str | Path) -> Path:
        """Where its result goes: ``OUT/units/<task>/<variant>-seed<seed>.json``."""
        return Path(out) / "units" / self.task / f"{self.variant}-seed{self.seed}.json"

    def __str__(self) -> str:
        return f"{self.task} {self.variant} seed {self.seed}"


@dataclass(frozen=True)
class AgentEvalConfig:
    """The settings of one comparison (each field is the flag of the same name).

    Attributes:
        tasks: ``"domain-task"`` names or Gymnasium ids, among those the world model was
            trained on.
        variants: a subset of :data:`VARIANTS`, run in that order.
        algo: ``"ppo"`` or ``"sac"``: the same algorithm for every variant.
        steps: real env steps each trained agent gets (the dream agent gets
            ``dream_steps`` imagined steps and no real ones).
        seeds: agent seeds 0 .. seeds - 1 per (task, variant).
        seed: run this agent seed alone instead (``--seed``): one unit per (task, variant),
            e.g. one process or machine per seed; None: ``seeds``.
        eval_every: env steps between evaluations (default ``ceil(steps / 10)``: 10 points).
        eval_episodes: real-env episodes per evaluation, deterministic policy.
        envs: parallel envs per agent (default 4 for PPO, 1 for SAC).
        time_limit: simulated seconds per real episode (default: the task's own, 1000
            control steps); for quick checks.
        dream_steps: imagined steps the dream agent trains for (default ``steps``).
        dream_horizon: imagined steps per dream episode (then it is truncated; the agent
            bootstraps its value there). None: the steps the world model was trained to
            predict (``num_predicted_steps``), after as many observed frames as it was
            trained on; see docs/design.md, "Agents".
        dream_starts: where a dream episode starts in the run's data episodes: ``"any"``
            (anywhere, default) or ``"initial"`` (their first frames, the task's initial
            states).
        features: what the latent observation holds (:data:`FEATURES`).
        head_steps: optimiser steps of a reward head trained for the dream variant when the
            run has none for the task.
    """

    tasks: tuple[str, ...]
    variants: tuple[str, ...] = VARIANTS
    algo: str = "ppo"
    steps: int = 50_000
    seeds: int = 3
    seed: int | None = None
    eval_every: int | None = None
    eval_episodes: int = 5
    envs: int | None = None
    time_limit: float | None = None
    dream_steps: int | None = None
    dream_horizon: int | None = None
    dream_starts: str = "any"
    features: str = "both"
    head_steps: int = 2_000

    def __post_init__(self) -> None:
        if not self.tasks:
            raise UsageError("--tasks: give at least one task, e.g. --tasks cartpole-balance")
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown or not self.variants:
            raise UsageError(
                f"--variants must be a comma-separated subset of {','.join(VARIANTS)}, "
                f"got {','.join(self.variants) or 'nothing'}"
            )
        if len(set(self.variants)) != len(self.variants):
            raise UsageError(f"--variants names a variant twice: {','.join(self.variants)}")
        if self.algo not in ALGOS:
            raise UsageError(f"--algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        if self.dream_starts not in STARTS:
            raise UsageError(f"--dream-starts must be one of {', '.join(STARTS)}")
        if self.features not in FEATURES:
            raise UsageError(f"--features must be one of {', '.join(FEATURES)}")
        positive = ("steps", "seeds", "eval_every", "eval_episodes", "envs", "dream_steps")
        for name in (*positive, "dream_horizon"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                flag = "--" + name.replace("_", "-")
                raise UsageError(f"{flag} expects a positive integer, got {value!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise UsageError(f"--seed expects an agent seed >= 0, got {self.seed!r}")
        if self.head_steps < 1:
            raise UsageError(f"--head-steps expects a positive integer, got {self.head_steps}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise UsageError(f"--time-limit expects seconds > 0, got {self.time_limit}")

    # ------------------------------------------------------------------ derived values
    @property
    def eval_interval(self) -> int:
        """Env steps between evaluations (``eval_every``, default ``ceil(steps / 10)``)."""
        return self.eval_every or max(1, math.ceil(self.steps / 10))

    @property
    def num_envs(self) -> int:
        """Parallel envs per agent (``envs``, default 4 for PPO and 1 for SAC)."""
        return self.envs or (4 if self.algo == "ppo" else 1)

    @property
    def imagined_steps(self) -> int:
        """Imagined steps of the dream agent (``dream_steps``, default ``steps``)."""
        return self.dream_steps or self.steps

    @property
    def agent_seeds(self) -> tuple[int, ...]:
        """The agent seeds run per (task, variant): ``(seed,)``, else ``0 .. seeds - 1``.

        >>> AgentEvalConfig(tasks=("cartpole-balance",), seeds=2).agent_seeds
        (0, 1)
        >>> AgentEvalConfig(tasks=("cartpole-balance",), seed=4).agent_seeds
        (4,)
        """
        return (self.seed,) if self.seed is not None else tuple(range(self.seeds))

    def units(self) -> list[Unit]:
        """Every (task, variant, seed), task by task, variants in order, then seeds."""
        return [
            Unit(task, variant, seed)
            for task in self.tasks
            for variant in self.variants
            for seed in self.agent_seeds
        ]

    def unit_settings(self, variant: str, run: dict[str, Any]) -> dict[str, Any]:
        """What a finished unit of ``variant`` must share with this config to be reused.

        ``run`` describes the world model (path, checkpoint step, action repeat, image
        size, observed steps of its training windows, the dream's horizon, the folder of
        the dream's reward heads) and, when Gymnasium ids are among the tasks, the
        keyword arguments their envs are made with (``env_kwargs``); the random and state
        variants do not use the model but are scored at its action repeat.
        """
        settings: dict[str, Any] = {
            "algo": self.algo,
            "eval_every": self.eval_interval,
            "eval_episodes": self.eval_episodes,
            "time_limit": self.time_limit,
            "action_repeat": run["action_repeat"],
        }
        if run.get("env_kwargs") is not None:
            settings["env_kwargs"] = run["env_kwargs"]
        if variant == "random":
            del settings["algo"], settings["eval_every"]
            return settings
        settings.update(steps=self.steps, envs=self.num_envs)
        if variant in ("latent", "dream"):
            settings.update(
                run=run["path"], checkpoint_step=run["checkpoint_step"], features=self.features
            )
        if variant == "pixels":
            settings["image_size"] = run["image_size"]
        if variant == "dream":
            settings.update(
                steps=self.imagined_steps,
                dream_context=run["observed_steps"],
                dream_horizon=run["dream_horizon"],
                dream_starts=self.dream_starts,
                heads=run["heads"],
            )
        return settings


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The settings in which a saved unit differs from this command's, as text ("" if none):
    :func:`~keypoint_wm.differences.describe_differences`, the one comparison of settings.

    >>> settings_differences({"steps": 100, "algo": "sac"}, {"steps": 200, "algo": "sac"})
    'steps: 100 now 200'
    """
    return describe_differences(old, new)
