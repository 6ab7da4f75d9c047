"""The settings of ``reproduce agents``: the budget, the benchmark tasks, the published rows
and the unit names, shared by the protocol (:mod:`~keypoint_wm.reproduce.agents`) and its
page (:mod:`~keypoint_wm.reproduce.agents_page`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keypoint_wm.reproduce.dmcs import DmcsSettings, Variant, chosen_variant

__all__ = [
    "ACTION_REPEAT",
    "BENCHMARK_TASKS",
    "MAX_RETURN",
    "PUBLISHED",
    "AgentSettings",
    "Published",
    "unit_name",
    "world_model",
]

ACTION_REPEAT = 2
"""Physics control steps per agent step: the DMCS collection's (``collect``'s default), which
``evaluate agents`` takes from the world model's data."""

BENCHMARK_TASKS = ("reacher-easy", "walker-walk", "cheetah-run")
"""The tasks of CURL's Table 1 among the paper's six: the ones the bars are checked on."""

MAX_RETURN = 1000.0
"""A DMC episode's highest return (1000 control steps, rewards in [0, 1]): returns are divided
by it before they are aggregated across tasks."""


@dataclass(frozen=True)
class Published:
    """A published row at 100,000 environment steps: ``figures[task] = (mean, std or None)``,
    measured at ``action_repeat[task]`` with the authors' own agent."""

    method: str
    source: str
    figures: dict[str, tuple[float, float | None]]
    action_repeat: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def label(self) -> str:
        return f"{self.method} (published: {self.source}{self.note})"


CURL_REPEATS = {"reacher-easy": 4, "walker-walk": 2, "cheetah-run": 4}

PUBLISHED = (
    Published(
        "pixel SAC",
        "CURL Table 1",
        {"reacher-easy": (145, 30), "walker-walk": (42, 12), "cheetah-run": (197, 15)},
        CURL_REPEATS,
    ),
    Published(
        "CURL",
        "CURL Table 1",
        {"reacher-easy": (538, 233), "walker-walk": (403, 24), "cheetah-run": (299, 48)},
        CURL_REPEATS,
    ),
    Published(
        "state SAC",
        "CURL Table 1",
        {"reacher-easy": (746, 25), "walker-walk": (891, 82), "cheetah-run": (616, 18)},
        CURL_REPEATS,
    ),
    Published(
        "state SAC",
        "DrQ Table 1",
        {"reacher-easy": (919, None), "walker-walk": (604, None), "cheetah-run": (228, None)},
        note=", means only",
    ),
)
"""Srinivas et al. 2020 (CURL), Table 1, mean ± std; Kostrikov et al. 2020 (DrQ), Table 1,
which re-ran state SAC (means as issue 26 quotes them)."""


@dataclass(frozen=True)
class AgentSettings:
    """The agents' budget and scoring. Steps are environment (physics control) steps; the
    ``evaluate agents`` flags count agent steps, ``action_repeat`` of them each."""

    tasks: tuple[str, ...] = (*BENCHMARK_TASKS, "cartpole-balance")
    variants: tuple[str, ...] = ("random", "state", "latent", "dream")
    seeds: tuple[int, ...] = (0, 1, 2)
    algo: str = "sac"
    env_steps: int = 100_000
    eval_every: int = 10_000
    eval_episodes: int = 10
    time_limit: float | None = None  # simulated seconds per episode; None: the task's own
    smoke: bool = False

    @property
    def agent_steps(self) -> int:
        return self.env_steps // ACTION_REPEAT

    @classmethod
    def smoke_setting(cls) -> AgentSettings:
        """Every variant on cartpole-balance for a few hundred steps, one seed, 2 episodes of
        100 control steps per evaluation."""
        return cls(
            tasks=("cartpole-balance",),
            seeds=(0,),
            env_steps=400,
            eval_every=200,
            eval_episodes=2,
            time_limit=1.0,
            smoke=True,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "variants": list(self.variants),
            "seeds": list(self.seeds),
            "algo": self.algo,
            "env_steps": self.env_steps,
            "agent_steps": self.agent_steps,
            "action_repeat": ACTION_REPEAT,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "time_limit": self.time_limit,
        }


def world_model(dmcs: DmcsSettings) -> Variant:
    """The world model the latent and dream agents read: the chosen Struct-VRNN
    (:data:`~keypoint_wm.reproduce.dmcs.CHOSEN`), seed 0."""
    return chosen_variant(dmcs)


def unit_name(task: str, variant: str, seed: int) -> str:
    return f"agent-{task}-{variant}-seed{seed}"
