"""``reproduce agents``: SAC on the field's small-budget benchmark, 100,000 environment steps.

The protocol of the issue on agents (docs/design.md, "Published results: `reproduce`"): on
reacher-easy, walker-walk and cheetah-run (the three of the paper's six tasks that CURL's
Table 1 has) and cartpole-balance, the same SAC agent learns from the true state, from the
world model's latent state and inside its imagination, beside a uniform random policy, for
100,000 environment steps each (50,000 agent steps at the data's action repeat of 2), with
3 agent seeds, 10 evaluation episodes at the end and a point of the learning curve every
10,000 environment steps. The pixel SAC is not run on the CPU, where its convolutional
updates are far too slow for this budget: its row is the published one.

Units: the DMCS dataset and the world model ``train-struct-seed0`` shared with the other
DMCS protocols (the same names and commands, so a shared ``--out`` makes them once), the
run's reward heads as ``reproduce dream-fidelity`` makes them (the dream reads them), and
one ``evaluate agents`` per (task, variant, agent seed) in its own folder of ``--out``,
which resumes from its checkpoint when killed. The page is :mod:`~keypoint_wm.reproduce.
agents_page`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keypoint_wm.reproduce.dmcs import (
    DmcsSettings,
    Variant,
    data_path,
    data_unit,
    run_dir,
    train_unit,
)
from keypoint_wm.reproduce.dream_fidelity import HEADS, heads_unit
from keypoint_wm.reproduce.identity import weights_hash
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, fill, read_json

__all__ = [
    "ACTION_REPEAT",
    "BENCHMARK_TASKS",
    "PUBLISHED",
    "AgentSettings",
    "Published",
    "agent_figures",
    "protocol",
    "unit_name",
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
    """The world model the latent and dream agents read: Struct-VRNN, seed 0."""
    return next(v for v in dmcs.variants if v.name == "struct")


def unit_name(task: str, variant: str, seed: int) -> str:
    return f"agent-{task}-{variant}-seed{seed}"


def _folder(task: str, variant: str, seed: int) -> str:
    return f"{OUT}/agents/{task}/{variant}-seed{seed}"


def agent_figures(unit: dict[str, Any]) -> dict[str, Any]:
    """The figures of one ``evaluate agents`` unit result (``OUT/units/<task>/...json``),
    with its steps in environment steps (agent steps times the action repeat).

    ``env_steps_per_second`` is the unit's real environment steps over its whole wall time
    (its evaluations included); None for the variants that take no real step.
    """
    repeat = int(unit["settings"]["action_repeat"])
    env_steps = int(unit["env_steps"]) * repeat
    seconds = float(unit["seconds"])
    figures: dict[str, Any] = {
        "final_return": float(unit["final_return"]),
        "final_episode_returns": [float(r) for r in unit["final_episode_returns"]],
        "action_repeat": repeat,
        "env_steps": env_steps,
        "curve": [[int(steps) * repeat, float(value)] for steps, value in unit["curve"]],
        "seconds": seconds,
        "env_steps_per_second": round(env_steps / seconds, 2)
        if env_steps and seconds > 0
        else None,
    }
    if "imagined_steps" in unit:
        figures["imagined_steps"] = int(unit["imagined_steps"])
        figures["imagined_curve"] = unit["imagined_curve"]
    return figures


def _agent_unit(
    dmcs: DmcsSettings, settings: AgentSettings, task: str, variant: str, seed: int
) -> Unit:
    """``evaluate agents`` of one (task, variant, agent seed) in its own folder."""
    model = world_model(dmcs)
    run, folder = run_dir(model, 0), _folder(task, variant, seed)
    argv = [
        "evaluate",
        "agents",
        "--run",
        run,
        "--tasks",
        task,
        "--variants",
        variant,
        "--algo",
        settings.algo,
        "--steps",
        str(settings.agent_steps),
        "--seed",
        str(seed),
        "--eval-every",
        str(settings.eval_every // ACTION_REPEAT),
        "--eval-episodes",
        str(settings.eval_episodes),
        "--out",
        folder,
        "--quiet",
    ]
    needs = (f"train-{model.name}-seed0",)
    if variant == "dream":
        argv += ["--heads", f"{run}/{HEADS}", "--data", data_path(dmcs)]
        needs = (f"heads-{model.name}-seed0",)
    if settings.time_limit is not None:
        argv += ["--time-limit", str(settings.time_limit)]
    result = f"{folder}/units/{task}/{variant}-seed{seed}.json"

    def figures(out: Path) -> dict[str, Any]:
        return agent_figures(read_json(result, out))

    def uses(out: Path) -> dict[str, Any]:
        return {"world_model": weights_hash(fill(run, out))}

    return Unit(
        unit_name(task, variant, seed), tuple(argv), needs=needs, figures=figures, uses=uses
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: every variant end to end on a minutes-long setting."""
    from keypoint_wm.reproduce.agents_page import headline, page

    dmcs, settings = DmcsSettings(), AgentSettings()
    if smoke:
        dmcs, settings = dmcs.smoke_setting(), AgentSettings.smoke_setting()
    model = world_model(dmcs)
    units = [data_unit(dmcs), train_unit(dmcs, model, 0), heads_unit(dmcs, model, 0)]
    for seed in settings.seeds:  # seed 0 of every (task, variant) first: the table fills
        for task in settings.tasks:
            units += [_agent_unit(dmcs, settings, task, v, seed) for v in settings.variants]
    return Protocol(
        name="agents",
        summary="SAC at 100,000 environment steps on the true state, the latent state and in "
        "the dream, beside random and the published pixel SAC and CURL",
        settings={
            "dmcs": dmcs.to_json(),
            "agents": settings.to_json(),
            "world_model": f"train-{model.name}-seed0",
            "heads": HEADS,
        },
        units=tuple(units),
        page=lambda results, root: page(dmcs, settings, results, root),
        title=f"Agents at {settings.env_steps:,} environment steps: SAC on the latent state "
        f"against the state, random and published pixel SAC ({len(settings.tasks)} tasks, "
        f"{len(settings.seeds)} agent seeds)",
        headline=lambda results: headline(settings, results),
    )
