"""``reproduce agents``: SAC on the field's small-budget benchmark, 100,000 environment steps.

The protocol of the issue on agents (docs/design.md, "Published results: `reproduce`"): on
reacher-easy, walker-walk and cheetah-run (the three of the paper's six tasks that CURL's
Table 1 has) and cartpole-balance, the same SAC agent learns from the true state, from the
world model's latent state and inside its imagination, beside a uniform random policy, for
100,000 environment steps each (50,000 agent steps at the data's action repeat of 2), with
3 agent seeds, 10 evaluation episodes at the end and a point of the learning curve every
10,000 environment steps. The pixel SAC is not run on the CPU, where its convolutional
updates are far too slow for this budget: its row is the published one.

The world model is the one shipped in the package (``--run default``: the chosen variant's
seed 0, exported by ``reproduce default-model`` with its reward heads, which the dream
reads): the same weights on every machine, so that agent units run on different machines
pool, where a world model trained again on another CPU would differ in its last bits and
start the table over. Units: the DMCS dataset shared with the other DMCS protocols (the
dream's start frames; the default model's own data), and one ``evaluate agents`` per
(task, variant, agent seed) in its own folder of ``--out``, which resumes from its
checkpoint when killed. The page is :mod:`~keypoint_wm.reproduce.agents_page`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from keypoint_wm.bundled import DEFAULT, resolve_run
from keypoint_wm.reproduce.agents_page import headline, page
from keypoint_wm.reproduce.agents_settings import (
    ACTION_REPEAT,
    BENCHMARK_TASKS,
    PUBLISHED,
    AgentSettings,
    Published,
    unit_name,
)
from keypoint_wm.reproduce.dmcs import DmcsSettings, data_path, data_unit
from keypoint_wm.reproduce.identity import exported_from, weights_hash
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, read_json

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
    folder = _folder(task, variant, seed)
    argv = [
        "evaluate",
        "agents",
        "--run",
        DEFAULT,
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
    needs: tuple[str, ...] = ()
    if variant == "dream":  # the shipped heads (RUN/rewards), start frames from the data
        argv += ["--data", data_path(dmcs)]
        needs = ("data",)
    if settings.time_limit is not None:
        argv += ["--time-limit", str(settings.time_limit)]
    result = f"{folder}/units/{task}/{variant}-seed{seed}.json"

    def figures(out: Path) -> dict[str, Any]:
        return agent_figures(read_json(result, out))

    return Unit(
        unit_name(task, variant, seed),
        tuple(argv),
        needs=needs,
        figures=figures,
        uses=shipped_uses,
    )


def shipped_uses(out: Path) -> dict[str, Any]:
    """The shipped default model's identity as the other DMCS targets record a world model
    (``world_model``: the step and weight hash of the run it was exported from), and the
    hash of the shipped (float16) weights (``export``)."""
    shipped = resolve_run(DEFAULT)
    return {"world_model": exported_from(shipped), "export": weights_hash(shipped)["weights"]}


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: every variant end to end on a minutes-long setting."""
    dmcs, settings = DmcsSettings(), AgentSettings()
    if smoke:
        dmcs = dmcs.smoke_setting(chosen=True, size=64)  # the shipped model's frames
        settings = AgentSettings.smoke_setting()
    units = [data_unit(dmcs)]
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
            "world_model": DEFAULT,
            "heads": f"{DEFAULT}/rewards",
        },
        units=tuple(units),
        page=lambda results, root: page(dmcs, settings, results, root),
        title=f"Agents at {settings.env_steps:,} environment steps: SAC on the latent state "
        f"against the state, random and published pixel SAC ({len(settings.tasks)} tasks, "
        f"{len(settings.seeds)} agent seeds)",
        headline=lambda results: headline(settings, results),
    )
