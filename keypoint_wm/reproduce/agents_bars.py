"""The bars of issue 26 on the agents' returns, and the records they are read from.

Each bar is checked on the three benchmark tasks (:data:`~keypoint_wm.reproduce.agents.
BENCHMARK_TASKS`) and written out as met, not met, or why it is not checked yet: ``state``
at least 70% of the lower published state SAC figure (the agent setup is sound), ``latent``
above random on all three and at least twice the published pixel SAC on two, ``dream``
above random on one (with the imagined-vs-real return correlation of ``reproduce
dream-fidelity`` beside it), and the moonshot, ``latent`` at or above CURL on one. A task
where the state agent does not clear random counts for no bar.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keypoint_wm.reproduce.agents_settings import (
    BENCHMARK_TASKS,
    PUBLISHED,
    AgentSettings,
    unit_name,
)
from keypoint_wm.reproduce.dmcs import DmcsSettings
from keypoint_wm.reproduce.protocol import UnitResult, load_results

__all__ = [
    "CURL",
    "LATENT_BAR",
    "STATE_BAR",
    "Done",
    "bars",
    "done_records",
    "fidelity_correlations",
    "returns_of",
]

STATE_BAR = {
    task: round(0.7 * min(p.figures[task][0] for p in PUBLISHED if p.method == "state SAC"))
    for task in BENCHMARK_TASKS
}
"""``state``: at least 70% of the lower published state SAC figure (CURL, DrQ) per task."""

LATENT_BAR = {
    task: round(2 * next(p for p in PUBLISHED if p.method == "pixel SAC").figures[task][0])
    for task in BENCHMARK_TASKS
}
"""``latent``: at least twice the published pixel SAC, on at least 2 of the 3 tasks."""

CURL = next(p for p in PUBLISHED if p.method == "CURL")

Done = dict[tuple[str, str], dict[int, UnitResult]]
"""The current records of each (task, variant), by agent seed."""


def done_records(settings: AgentSettings, results: dict[str, UnitResult]) -> Done:
    """The current records of each (task, variant), by agent seed."""
    return {
        (task, variant): {
            seed: results[name]
            for seed in settings.seeds
            if (name := unit_name(task, variant, seed)) in results
        }
        for task in settings.tasks
        for variant in settings.variants
    }


def returns_of(done: Done, task: str, variant: str) -> list[float]:
    """The final returns of the seeds done of (``task``, ``variant``), by seed."""
    return [r.figures["final_return"] for _, r in sorted(done[(task, variant)].items())]


def _above(done: Done, task: str, variant: str, than: str = "random") -> bool | None:
    """Whether ``variant``'s mean minus its 95% half-width is above ``than``'s mean plus its
    half-width on ``task`` (None: fewer than 2 seeds of either)."""
    from keypoint_wm.evaluation.metrics import mean_ci

    a, b = returns_of(done, task, variant), returns_of(done, task, than)
    if len(a) < 2 or len(b) < 2:
        return None
    mean_a, half_a = mean_ci(np.asarray(a))
    mean_b, half_b = mean_ci(np.asarray(b))
    return bool(mean_a - half_a > mean_b + half_b)


def _mean(done: Done, task: str, variant: str) -> float | None:
    values = returns_of(done, task, variant)
    return float(np.mean(values)) if values else None


def fidelity_correlations(
    dmcs: DmcsSettings, results: dict[str, UnitResult], root: Path
) -> dict[str, float]:
    """The imagined-vs-real return correlation per task (the first horizon, prior mean) of
    the shipped model the agents read, as ``reproduce default-model`` measured it
    (``fidelity-export``), when it is recorded for the same weights as the agents'."""
    from keypoint_wm.reproduce import default_model

    agents = [r for r in results.values() if r.unit.startswith("agent-")]
    if not agents:
        return {}
    shipped = default_model.protocol(smoke=dmcs.smoke)
    recorded = shipped.current(load_results(root / shipped.name)).get("fidelity-export")
    if recorded is None or recorded.uses.get("world_model") != agents[0].uses.get("world_model"):
        return {}
    return {  # {task: {horizon: {"imagined_mean": r, ...}}}: the first (shortest) horizon
        task: value
        for task, by_horizon in recorded.figures.items()
        if by_horizon
        and (value := by_horizon[min(by_horizon, key=int)].get("imagined_mean")) is not None
    }


def bars(settings: AgentSettings, done: Done, correlations: dict[str, float]) -> list[str]:
    """Issue 26's bars on the three benchmark tasks: met, not met, or why not checked."""
    lines = [
        "## Bars",
        "",
        "Above random: the mean minus its 95% half-width above random's mean plus its "
        "half-width (at least 2 seeds of each). A task where the state agent does not clear "
        "random counts for no bar.",
        "",
    ]
    missing = [t for t in BENCHMARK_TASKS if t not in settings.tasks]
    if missing:
        return [*lines, f"Not checked: {', '.join(missing)} not in this setting.", ""]
    tasks = BENCHMARK_TASKS
    sound = {t: _above(done, t, "state") for t in tasks}
    unsound = [t for t in tasks if sound[t] is False]
    unknown = "not checked yet (fewer than 2 seeds of a variant or of random)"
    not_counted = f"not counted (the state agent does not clear random on {', '.join(unsound)})"

    state = {t: _mean(done, t, "state") for t in tasks}
    shown = ", ".join(f"{t} {_number(state[t])} (bar {STATE_BAR[t]})" for t in tasks)
    if any(v is None for v in state.values()):
        verdict = "not checked yet"
    else:
        verdict = "met" if all((state[t] or 0.0) >= STATE_BAR[t] for t in tasks) else "not met"
    lines.append(f"- `state` at least 70% of the lower published state SAC: {shown}: {verdict}.")

    above = {t: _above(done, t, "latent") for t in tasks}
    latent = {t: _mean(done, t, "latent") for t in tasks}
    doubled = [t for t in tasks if _reaches(latent[t], LATENT_BAR[t])]
    if unsound:
        verdict = not_counted
    elif None in above.values() or None in sound.values():
        verdict = unknown
    else:
        verdict = "met" if all(above.values()) and len(doubled) >= 2 else "not met"
    cleared = ", ".join(f"{t} {_yes(above[t])}" for t in tasks)
    bars = ", ".join(f"{t} {LATENT_BAR[t]}" for t in tasks)
    lines.append(
        f"- `latent` above random on all three tasks ({cleared}) and at least twice the "
        f"published pixel SAC on 2 of them ({bars}; reached on {', '.join(doubled) or 'none'}): "
        f"{verdict}."
    )

    dream = {t: _above(done, t, "dream") for t in tasks if sound[t]}
    wins = [t for t, v in dream.items() if v]
    if wins:
        verdict = "met"
    elif None in sound.values() or None in dream.values():
        verdict = unknown
    else:
        verdict = "not met" if dream else not_counted
    quoted = ", ".join(f"{t} {correlations[t]:.3f}" for t in (wins or tasks) if t in correlations)
    lines.append(
        f"- `dream` above random on at least 1 task (on {', '.join(wins) or 'none'}; its "
        "imagined-vs-real return correlation, `reproduce default-model`'s dream fidelity of the "
        "same weights: "
        f"{quoted or 'not recorded'}): {verdict}."
    )
    at_curl = [t for t in tasks if _reaches(latent[t], CURL.figures[t][0])]
    lines += [
        "- Moonshot, `latent` at or above the published CURL on at least one task: "
        f"{', '.join(at_curl) or 'on none so far'}.",
        "",
    ]
    return lines


def _reaches(value: float | None, bar: float) -> bool:
    return value is not None and value >= bar


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _yes(value: bool | None) -> str:
    return {None: "not checked", True: "yes", False: "no"}[value]
