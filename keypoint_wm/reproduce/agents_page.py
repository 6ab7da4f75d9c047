"""The page of ``reproduce agents``: returns per task and variant, their aggregate, the bars.

Written from the current unit records (:mod:`keypoint_wm.reproduce.agents`): per task and
variant the final return, mean ± 95% CI over the agent seeds done and each seed's value,
beside the published rows (marked as published, with their action repeats); across tasks
the interquartile mean of the returns divided by :data:`~keypoint_wm.reproduce.agents.
MAX_RETURN`, with stratified-bootstrap 95% intervals from ``rliable`` (Agarwal et al.
2021, the field's standard); the learning curves as a PNG beside the page; the environment
steps per second of the state and latent agents; and the bars of issue 26, met or not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keypoint_wm.reproduce.agents_bars import (
    CURL,
    Done,
    bars,
    done_records,
    fidelity_correlations,
    returns_of,
)
from keypoint_wm.reproduce.agents_settings import (
    ACTION_REPEAT,
    MAX_RETURN,
    PUBLISHED,
    AgentSettings,
    world_model,
)
from keypoint_wm.reproduce.dmcs import DmcsSettings
from keypoint_wm.reproduce.pages import header, mean_ci_cell, units_table
from keypoint_wm.reproduce.protocol import UnitResult

__all__ = ["BOOTSTRAP_REPS", "headline", "iqm_intervals", "page"]

BOOTSTRAP_REPS = 5_000
"""Bootstrap resamples of the aggregate's interval (seeded: a page is regenerated equal)."""


def _cell(values: list[float]) -> str:
    return mean_ci_cell(values, ".1f")


def iqm_intervals(scores: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    """Per variant, the interquartile mean of its ``[runs, tasks]`` scores and its 95%
    stratified-bootstrap interval (``rliable``: runs resampled within each task, percentile
    method, the resamples seeded per variant): ``(iqm, low, high)``."""
    from rliable import library, metrics

    def aggregate(matrix: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(matrix)])

    found = {}
    for name, matrix in scores.items():
        # rliable draws its resamples from NumPy's global generator (its random_state seeds
        # arch's, which the stratified draws do not use): seeded alike for every variant, so
        # a figure depends on its data alone, and restored after.
        state = np.random.get_state()  # noqa: NPY002 (the generator rliable draws from)
        try:
            np.random.seed(0)  # noqa: NPY002
            points, intervals = library.get_interval_estimates(
                {name: matrix}, aggregate, reps=BOOTSTRAP_REPS
            )
        finally:
            np.random.set_state(state)  # noqa: NPY002
        found[name] = (
            float(points[name][0]),
            float(intervals[name][0, 0]),
            float(intervals[name][1, 0]),
        )
    return found


def _aggregate(settings: AgentSettings, done: Done) -> dict[str, tuple[float, float, float, int]]:
    """IQM over the tasks, per variant with a seed on every task: ``(iqm, low, high, runs)``
    over the seeds done on every task."""
    scores = {}
    for variant in settings.variants:
        common = set(settings.seeds)
        for task in settings.tasks:
            common &= set(done[(task, variant)])
        if common:
            scores[variant] = np.array(
                [
                    [
                        done[(t, variant)][s].figures["final_return"] / MAX_RETURN
                        for t in settings.tasks
                    ]
                    for s in sorted(common)
                ]
            )
    found = iqm_intervals(scores) if scores else {}
    return {v: (*found[v], len(scores[v])) for v in found}


def _count(n: int, thing: str) -> str:
    """``"1 task"``, ``"4 tasks"``."""
    return f"{n} {thing}" + ("" if n == 1 else "s")


def _iqm_text(values: tuple[float, float, float, int]) -> str:
    return f"{values[0]:.3f} [{values[1]:.3f}, {values[2]:.3f}]"


def headline(settings: AgentSettings, results: dict[str, UnitResult]) -> str:
    """The README row: the IQM of each variant (the page's aggregate), or while some task has
    no seed yet the latent and state returns per task (the page's cells)."""
    done = done_records(settings, results)
    units = len(settings.tasks) * len(settings.variants) * len(settings.seeds)
    finished = sum(len(d) for d in done.values())
    if not finished:
        return f'in progress: "No unit finished yet (of {units} units)."'
    aggregate = _aggregate(settings, done)
    budget = f"SAC at {settings.env_steps:,} env steps"
    if aggregate:
        cells = ", ".join(f"{v} {_iqm_text(a)}" for v, a in aggregate.items())
        return (
            f"{budget}, IQM of return / {MAX_RETURN:.0f} over "
            f"{_count(len(settings.tasks), 'task')} [95% bootstrap interval]: {cells} "
            f"({finished} of {units} units)"
        )
    cells = "; ".join(
        f"{task} latent {_cell(returns_of(done, task, 'latent'))}, "
        f"state {_cell(returns_of(done, task, 'state'))}"
        for task in settings.tasks
        if done[(task, "latent")] or done[(task, "state")]
    )
    return f"{budget}, return: {cells or 'no trained agent yet'} ({finished} of {units} units)"


def page(
    dmcs: DmcsSettings, settings: AgentSettings, results: dict[str, UnitResult], root: Path
) -> str:
    """The Markdown page, and its learning-curve PNG ``root/agents-curves.png``."""
    done = done_records(settings, results)
    units = len(settings.tasks) * len(settings.variants) * len(settings.seeds)
    finished = sum(len(d) for d in done.values())
    model = world_model(dmcs)
    data_note = (
        f"The world model's own data is interaction too: {dmcs.episodes} random-action episodes "
        f"of {dmcs.steps} agent steps per task ({dmcs.episodes * dmcs.steps * ACTION_REPEAT:,} "
        f"environment steps per task at action repeat {ACTION_REPEAT})."
    )
    lines = header(
        "agents",
        f"Agents at {settings.env_steps:,} environment steps",
        f"The same Stable-Baselines3 {settings.algo.upper()} (its defaults, but the replay "
        "buffer and the warm-up sized to the budget) learns each task for "
        f"{settings.env_steps:,} environment steps ({settings.agent_steps:,} agent steps at the "
        f"data's action repeat of {ACTION_REPEAT}) from: the true low-dimensional state "
        "(`state`, the ceiling and the check of the agent setup), the "
        "world model's latent state (`latent`, keypoints and GRU state), and only inside the "
        "world model's imagination with its shipped reward heads "
        "(`dream`, zero real steps); `random` acts uniformly at random. Every agent is scored "
        f"on the real task: the mean return of {settings.eval_episodes} deterministic episodes "
        f"at the end, and every {settings.eval_every:,} environment steps for the learning "
        "curves. The pixel SAC is not run on the CPU, where its convolutional updates are far "
        "too slow for this budget: its rows are the published ones, measured with the authors' "
        "own agents and action repeats.",
    )
    lines += [
        "World model: the one shipped in the package (`--run default`, `keypoint_wm.load()`: "
        f"{model.label}, `{model.preset}`, seed 0, exported in float16 by "
        "[`reproduce default-model`](default-model.md)), the same weights on every machine; "
        f"{_weights(done)}. {data_note}",
        "",
        f"{finished} of {units} units done ({_count(len(settings.seeds), 'agent seed')} per task "
        "and variant).",
        "",
    ]
    if not finished:
        lines += [f"No unit finished yet (of {units} units).", ""]
    lines += _returns_table(settings, done)
    lines += [data_note, ""]
    lines += _per_seed_table(settings, done)
    lines += _aggregate_section(settings, done)
    lines += _speed_section(settings, done)
    if finished:
        picture = root / "agents-curves.png"
        _plot(settings, done, picture)
        lines += ["## Learning curves", "", f"![learning curves]({picture.name})", ""]
    lines += bars(settings, done, fidelity_correlations(dmcs, results, root))
    lines += units_table(results)
    return "\n".join(lines) + "\n"


def _weights(done: Done) -> str:
    """The weight hashes the agents' records name: the run the shipped model was exported
    from (its step) and the shipped weights."""
    records = [r for d in done.values() for r in d.values()]
    if not records:
        return "no agent recorded yet"
    found = records[0].uses.get("world_model") or {}
    shipped = records[0].uses.get("export")
    text = f"exported from weights `{found.get('weights')}` at step {found.get('step')}"
    return text + (f", shipped weights `{shipped}`" if shipped else "")


def _returns_table(settings: AgentSettings, done: Done) -> list[str]:
    tasks = settings.tasks
    lines = [
        "## Final return",
        "",
        "Mean ± 95% CI over the agent seeds done (seeds in brackets); the published rows are "
        "mean ± std as published, at the action repeat in brackets.",
        "",
        "| variant | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for variant in settings.variants:
        cells = [
            f"{_cell(returns_of(done, t, variant))} ({len(done[(t, variant)])})"
            if done[(t, variant)]
            else "-"
            for t in tasks
        ]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    for published in PUBLISHED:
        cells = []
        for task in tasks:
            if task not in published.figures:
                cells.append("-")
                continue
            mean, std = published.figures[task]
            text = f"{mean:.0f}" + ("" if std is None else f" ± {std:.0f}")
            repeat = published.action_repeat.get(task)
            cells.append(text + (f" (action repeat {repeat})" if repeat else ""))
        lines.append(f"| {published.label()} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _per_seed_table(settings: AgentSettings, done: Done) -> list[str]:
    lines = ["## Per seed", "", "| task | variant | final return per agent seed |", "|---|---|---|"]
    for task in settings.tasks:
        for variant in settings.variants:
            seeds = sorted(done[(task, variant)].items())
            if seeds:
                values = ", ".join(f"seed {s}: {r.figures['final_return']:.1f}" for s, r in seeds)
                lines.append(f"| {task} | {variant} | {values} |")
    if len(lines) == 4:
        return ["## Per seed", "", "No seed finished yet.", ""]
    return [*lines, ""]


def _aggregate_section(settings: AgentSettings, done: Done) -> list[str]:
    aggregate = _aggregate(settings, done)
    lines = [
        "## Across tasks",
        "",
        f"Interquartile mean of return / {MAX_RETURN:.0f} over "
        f"{_count(len(settings.tasks), 'task')} and the agent seeds done on every task, with "
        "its stratified-bootstrap 95% interval "
        f"(`rliable`, {BOOTSTRAP_REPS:,} resamples, seeded).",
        "",
    ]
    if not aggregate:
        return [*lines, "Not computed until a variant has a seed on every task.", ""]
    lines += ["| variant | IQM [95% interval] | seeds |", "|---|---|---|"]
    lines += [f"| {v} | {_iqm_text(a)} | {a[3]} |" for v, a in aggregate.items()]
    return [*lines, ""]


def _speed_section(settings: AgentSettings, done: Done) -> list[str]:
    lines = [
        "## Environment steps per second",
        "",
        "Real environment steps over each unit's wall time, its evaluations included, mean "
        "over the seeds done (the machines are in the units table).",
        "",
        "| task | state | latent |",
        "|---|---|---|",
    ]
    for task in settings.tasks:
        cells = []
        for variant in ("state", "latent"):
            rates = [
                r.figures["env_steps_per_second"]
                for r in done.get((task, variant), {}).values()
                if r.figures.get("env_steps_per_second")
            ]
            cells.append(f"{np.mean(rates):.1f}" if rates else "-")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _plot(settings: AgentSettings, done: Done, path: Path) -> None:
    """Return against environment steps per task: state and latent mean curves with their
    95% bands, random and dream as lines, the published pixel SAC and CURL at the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from keypoint_wm.evaluation.metrics import mean_ci
    from keypoint_wm.viz import save_figure

    colours = {"state": "tab:green", "latent": "tab:blue", "random": "grey", "dream": "tab:purple"}
    tasks = settings.tasks
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for variant in settings.variants:
            records = list(done[(task, variant)].values())
            if not records:
                continue
            label = f"{variant} ({_count(len(records), 'seed')})"
            if variant in ("random", "dream"):
                value = float(np.mean([r.figures["final_return"] for r in records]))
                ax.axhline(value, color=colours[variant], linestyle="--", label=label)
                continue
            length = min(len(r.figures["curve"]) for r in records)
            curves = np.array([r.figures["curve"][:length] for r in records], dtype=np.float64)
            steps = curves[0, :, 0]
            mean, half = mean_ci(curves[:, :, 1])
            ax.plot(steps, mean, marker="o", ms=3, color=colours[variant], label=label)
            if len(records) > 1:
                ax.fill_between(steps, mean - half, mean + half, color=colours[variant], alpha=0.2)
        for published, marker in ((PUBLISHED[0], "s"), (CURL, "^")):
            if task in published.figures:
                value, std = published.figures[task]
                ax.errorbar(
                    [settings.env_steps], [value], yerr=[std or 0.0], fmt=marker, color="black",
                    label=f"{published.method} (published)", capsize=3, ms=5,
                )  # fmt: skip
        ax.set_xlim(0, settings.env_steps * 1.05)
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(f"{settings.algo.upper()}, mean ± 95% CI over agent seeds", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
