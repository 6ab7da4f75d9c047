"""The report of ``keypoint-wm evaluate agents``: aggregation over agent seeds, table, plot.

:func:`build_report` turns the finished units into the JSON the command writes::

    {"tasks": {TASK: {VARIANT: {
        "final_return": {"mean", "ci95", "per_run"},
        "env_steps": real env steps each agent trained on (0: random, dream),
        "curve": [[env_steps, mean return], ...],
        "curve_ci95": [half-width per point, ...],
        "seeds": [agent seeds, in the order of per_run],
        # dream only:
        "imagined_steps", "imagined_curve": [[imagined steps, mean real return], ...]}}},
     "variants": [...], "run", "algo", "steps", "seeds" (how many), "agent_seeds",
     "action_repeat", ...}

Means are over agent seeds; ``ci95`` is the half-width of the 95% confidence interval of
that mean, Student t with n - 1 degrees of freedom (None for a single seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.envs.agents.config import AgentEvalConfig
from keypoint_wm.evaluation.metrics import mean_ci
from keypoint_wm.viz import save_figure

__all__ = ["build_report", "format_report", "plot_report", "t_interval"]


def t_interval(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and 95% half-width (Student t, n - 1 degrees of freedom; None for n < 2), by
    the package's one rule (:func:`keypoint_wm.evaluation.metrics.mean_ci`).

    >>> mean, half = t_interval([1.0, 2.0, 3.0])   # t(0.975, 2) = 4.303, s = 1
    >>> mean, round(half, 3)
    (2.0, 2.484)
    >>> t_interval([5.0])
    (5.0, None)
    """
    mean, half = mean_ci(np.asarray(values, dtype=np.float64))
    return float(mean), (float(half) if np.isfinite(half) else None)


def _curve(curves: list[list[list[float]]]) -> tuple[list[list[float]], list[float | None]]:
    """Mean curve over runs (point by point; runs share their evaluation steps) and the
    half-width per point."""
    length = min(len(c) for c in curves)
    mean, half = [], []
    for i in range(length):
        value, width = t_interval([c[i][1] for c in curves])
        steps = curves[0][i][0]
        mean.append([int(steps), value])
        half.append(width)
    return mean, half


def _variant(results: list[dict[str, Any]]) -> dict[str, Any]:
    results = sorted(results, key=lambda r: r["seed"])
    per_run = [float(r["final_return"]) for r in results]
    mean, half = t_interval(per_run)
    curve, curve_half = _curve([r["curve"] for r in results])
    entry: dict[str, Any] = {
        "final_return": {"mean": mean, "ci95": half, "per_run": per_run},
        "env_steps": int(max(r["env_steps"] for r in results)),
        "curve": curve,
        "curve_ci95": curve_half,
        "seeds": [r["seed"] for r in results],
    }
    if results[0]["variant"] == "dream":
        entry["imagined_steps"] = int(max(r["imagined_steps"] for r in results))
        entry["imagined_curve"], entry["imagined_curve_ci95"] = _curve(
            [r["imagined_curve"] for r in results]
        )
    return entry


def build_report(
    results: list[dict[str, Any]], meta: dict[str, Any], config: AgentEvalConfig
) -> dict[str, Any]:
    """The report of the finished ``results`` (unit results of the runner), tasks and
    variants in ``config``'s order; ``meta`` (the run and settings) is added at the top."""
    tasks: dict[str, Any] = {}
    for task in config.tasks:
        entry = {}
        for variant in config.variants:
            found = [r for r in results if r["task"] == task and r["variant"] == variant]
            if found:
                entry[variant] = _variant(found)
        if entry:
            tasks[task] = entry
    return {"tasks": tasks, "variants": list(config.variants), **meta}


def _cell(final: dict[str, Any]) -> str:
    half = final["ci95"]
    return f"{final['mean']:.1f}" + ("" if half is None else f" ± {half:.1f}")


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table: one row per task, one column per variant (final return, mean ±
    95% CI over the agent seeds)."""
    variants = report["variants"]
    rows = [["task", *variants]]
    for task, entry in report["tasks"].items():
        rows.append(
            [task, *(_cell(entry[v]["final_return"]) if v in entry else "-" for v in variants)]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        f"final return on the real task, mean ± 95% CI over agent seeds ({report['algo']}, "
        f"{report['steps']} env steps per trained agent, action repeat {report['action_repeat']})"
    ]
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    dreams = [
        f"{task} {entry['dream']['imagined_steps']}"
        for task, entry in report["tasks"].items()
        if "dream" in entry
    ]
    if dreams:
        lines.append(
            "dream: trained on 0 real env steps; imagined steps per agent: " + ", ".join(dreams)
        )
    return "\n".join(lines)


_COLOURS = {"state": "tab:green", "pixels": "tab:orange", "latent": "tab:blue"}


def _with_seeds(label: str, values: dict[str, Any], seeds: int) -> str:
    """``label``, with its count of finished seeds when some of the ``seeds`` are missing.

    >>> _with_seeds("pixels", {"final_return": {"per_run": [374.7]}}, 3)
    'pixels: 1 of 3 seeds'
    """
    done = len(values["final_return"]["per_run"])
    return label if done >= seeds else f"{label}: {done} of {seeds} seeds"


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Learning curves per task (return against real env steps, mean with its 95% band);
    random and dream as horizontal lines (the dream's imagined steps in the legend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(
        1, max(1, len(tasks)), figsize=(5.0 * max(1, len(tasks)), 3.8), squeeze=False
    )
    for ax, task in zip(axes[0], tasks, strict=False):
        entry = report["tasks"][task]
        right = max([1, *(e["env_steps"] for e in entry.values())])
        for variant in ("state", "pixels", "latent"):
            if variant not in entry:
                continue
            curve = np.asarray(entry[variant]["curve"], dtype=np.float64)
            half = np.array([np.nan if h is None else h for h in entry[variant]["curve_ci95"]])
            colour = _COLOURS[variant]
            label = _with_seeds(variant, entry[variant], report["seeds"])
            ax.plot(curve[:, 0], curve[:, 1], marker="o", ms=3, color=colour, label=label)
            if np.isfinite(half).any():
                ax.fill_between(
                    curve[:, 0], curve[:, 1] - half, curve[:, 1] + half, color=colour, alpha=0.2
                )
        if "random" in entry:
            value = entry["random"]["final_return"]["mean"]
            label = _with_seeds("random", entry["random"], report["seeds"])
            ax.axhline(value, color="grey", linestyle="--", label=label)
        if "dream" in entry:
            value = entry["dream"]["final_return"]["mean"]
            steps = entry["dream"]["imagined_steps"]
            label = _with_seeds(
                f"dream ({steps:,} imagined steps, 0 real)", entry["dream"], report["seeds"]
            )
            ax.axhline(value, color="tab:purple", linestyle=":", linewidth=2, label=label)
        ax.set_xlim(0, right)
        ax.set_title(task)
        ax.set_xlabel("real env steps")
        ax.set_ylabel("episode return")
        ax.legend(fontsize=8)
    fig.suptitle(
        f"{report['algo'].upper()}, mean ± 95% CI over {report['seeds']} agent seed(s)",
        fontsize=10,
    )
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
