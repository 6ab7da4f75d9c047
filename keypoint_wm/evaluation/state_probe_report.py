"""The report of ``keypoint-wm evaluate state-probe``: the Markdown table and the bar plot of
test R^2 per task, over the runs (seeds) of one variant (:mod:`keypoint_wm.evaluation.state_probe`
measures it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.viz import write_figure

__all__ = ["format_state_probe", "plot_state_probe"]


def format_state_probe(summary: Any) -> str:
    """A Markdown table of an :class:`~keypoint_wm.evaluation.seeds.OverSeeds` of results:
    per task, test R^2 of positions and velocities (mean ± 95% CI over the runs), the
    untrained floor, and each observation key's R^2 (then each named entry's, as an Atari
    game's ball and paddle bytes, beside the untrained model's)."""
    from keypoint_wm.evaluation.seeds import plus_minus

    mean, half = summary.mean, summary.ci
    has_floor = "untrained" in mean
    header = "| task | positions | velocities |"
    rule = "|---|---|---|"
    if has_floor:
        header += " untrained positions | untrained velocities |"
        rule += "---|---|"
    lines = [
        f"state probe, features {mean['features']}, {summary.count} run(s): test R^2 "
        "(mean ± 95% CI over runs)",
        "",
        header + " parts |",
        rule + "---|",
    ]

    def cell(*path: str) -> str:
        value, width = mean, half
        for key in path:
            value = value[key]
            width = None if width is None else width[key]
        return plus_minus(value, width, ".3f")

    rows = [*mean["tasks"], "mean"]
    for task in rows:
        base = ("mean",) if task == "mean" else ("tasks", task)
        row = f"| {task} | {cell(*base, 'positions')} | {cell(*base, 'velocities')} |"
        if has_floor:
            floor = ("untrained", *base)
            row += f" {cell(*floor, 'positions')} | {cell(*floor, 'velocities')} |"
        parts = ""
        if task != "mean":
            entry = mean["tasks"][task]
            parts = ", ".join(
                f"{name} {plus_minus(v, None, '.3f')}" for name, v in entry["parts"].items()
            )
            if entry.get("named"):
                floor = mean.get("untrained", {}).get("tasks", {}).get(task, {})
                parts += "; " + ", ".join(
                    f"{name} {cell(*base, 'named', name)}"
                    + (
                        f" (untrained {cell('untrained', *base, 'named', name)})"
                        if name in floor.get("named", {})
                        else ""
                    )
                    for name in entry["named"]
                )
        lines.append(row + f" {parts} |")
    return "\n".join(lines)


def plot_state_probe(summary: Any, path: str | Path) -> Path:
    """Bars of test R^2 per task (positions, velocities), trained against untrained, with the
    95% interval over runs; the 0.9 / 0.8 lines of the project's bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean, half = summary.mean, summary.ci
    tasks = list(mean["tasks"])
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(tasks) + 2), 3.6), dpi=100)
    for ax, kind, bar in zip(axes, ("positions", "velocities"), (0.9, 0.8), strict=True):
        x = np.arange(len(tasks))
        sources = [("trained", mean["tasks"], None if half is None else half["tasks"])]
        if "untrained" in mean:
            floor_half = None if half is None else half["untrained"]["tasks"]
            sources.append(("untrained", mean["untrained"]["tasks"], floor_half))
        width = 0.8 / len(sources)
        for i, (label, values, halves) in enumerate(sources):
            heights = [values[t][kind] if values[t][kind] is not None else np.nan for t in tasks]
            errors = (
                None
                if halves is None
                else [halves[t][kind] if halves[t][kind] is not None else 0.0 for t in tasks]
            )
            ax.bar(x + (i - (len(sources) - 1) / 2) * width, heights, width, yerr=errors,
                   label=label, capsize=2)  # fmt: skip
        ax.axhline(bar, color="grey", linestyle="--", linewidth=0.8)
        ax.set_xticks(x, tasks, rotation=30, ha="right", fontsize=8)
        ax.set_ylim(min(0.0, np.nanmin([mean["tasks"][t][kind] or 0.0 for t in tasks])), 1.02)
        ax.set_title(f"{kind} (test R^2)")
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"state probe: features {mean['features']}, {summary.count} run(s)")
    fig.tight_layout()
    return write_figure(fig, path)
