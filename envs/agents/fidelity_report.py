"""The table and the plot of ``keypoint-wm evaluate dream-fidelity``: one run's figures
(:class:`~keypoint_wm.envs.agents.fidelity_scores.DreamFidelity`) or several runs' (seeds of
one variant, :class:`~keypoint_wm.evaluation.seeds.OverSeeds`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from keypoint_wm.choices import DREAM_POLICIES as POLICIES
from keypoint_wm.envs.agents.fidelity_scores import COLUMNS, IMAGINED, DreamFidelity
from keypoint_wm.evaluation.seeds import OverSeeds, as_seeds, plus_minus
from keypoint_wm.viz import save_figure

__all__ = ["format_fidelity", "plot_fidelity"]

_SHORT = {"real": "real", "filtered": "filtered", "imagined_mean": "imag mean"}
_SHORT["imagined_sampled"] = "imag sampled"


def format_fidelity(result: DreamFidelity | OverSeeds[DreamFidelity]) -> str:
    """The printed table: per task and horizon, each policy's mean return per column and
    keypoint error of the imagined futures, then the correlations with the real returns;
    over several runs (seeds) each figure is the mean ± the half-width of its 95% interval."""
    summary = as_seeds(result)
    mean = summary.mean
    over = f"; mean ± 95% CI over {summary.count} runs" if summary.count > 1 else ""
    lines = [
        f"dream fidelity: returns over H agent steps after {mean['context']} observed frames, "
        f"mean over {mean['episodes']} initial states per policy (action repeat "
        f"{mean['action_repeat']}){over}",
        "kp err: mean distance of the imagined keypoints to the filtered ones (keypoint "
        "units; the image spans [-1, 1])",
    ]
    names = [
        "policy",
        *(_SHORT[c] for c in COLUMNS),
        *(f"kp err {_SHORT[c][5:]}" for c in IMAGINED),
    ]
    for task, entry in mean["tasks"].items():
        for h in entry["horizons"]:
            at = ("tasks", task, "horizons", h)
            rows = [names]
            for policy in entry["policies"]:
                cells = [plus_minus(*summary.at(*at, "returns", policy, c), ".2f") for c in COLUMNS]
                cells += [
                    plus_minus(*summary.at(*at, "keypoint_error", policy, c), ".3f")
                    for c in IMAGINED
                ]
                rows.append([policy, *cells])
            widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
            lines += ["", f"{task}, H = {h} agent steps"]
            for row in rows:
                first, *rest = row
                lines.append(
                    f"{first:<{widths[0]}}"
                    + "".join(f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))
                )
            corr = [
                _SHORT[c] + " " + plus_minus(*summary.at(*at, "correlation", c), ".2f")
                for c in COLUMNS[1:]
            ]
            figures = entry["horizons"][h]
            dropped = figures["dropped"]
            ended = f" ({dropped:g} ended sooner: dropped)" if dropped else ""
            lines.append(
                f"correlation with the real returns over {figures['rollouts']:g} rollouts"
                f"{ended}: " + ", ".join(corr)
            )
    return "\n".join(lines)


def plot_fidelity(result: DreamFidelity | OverSeeds[DreamFidelity], path: str | Path) -> Path:
    """Imagined (prior mean) against real returns, one point per rollout (and run), coloured
    by policy; one panel per task (columns) and horizon (rows), with the y = x line. The
    rollouts dropped at a horizon (their episode ended sooner) are counted in its title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = as_seeds(result)
    tasks = list(summary.mean["tasks"])
    horizons = [str(h) for h in summary.mean["horizons"]]
    fig, axes = plt.subplots(
        len(horizons),
        max(1, len(tasks)),
        figsize=(4.2 * max(1, len(tasks)), 3.8 * len(horizons)),
        squeeze=False,
    )
    names = [*POLICIES, *(p for e in summary.mean["tasks"].values() for p in e["policies"])]
    order = list(dict.fromkeys(names))  # action-<k> after the named policies
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(order)}
    for col, task in enumerate(tasks):
        for row, h in enumerate(horizons):
            ax = axes[row][col]
            values: list[float] = []
            for number, (_, run_result) in enumerate(summary):
                entry = run_result.tasks[task]
                returns = entry["per_rollout"]["returns"][h]
                kept = np.asarray([v is not None for v in returns["real"]], bool)  # not dropped
                real = np.asarray(returns["real"], object)[kept].astype(float)
                imagined = np.asarray(returns["imagined_mean"], object)[kept].astype(float)
                values += [*real, *imagined]
                policies = np.asarray(entry["per_rollout"]["policy"])[kept]
                for policy in entry["policies"]:
                    rows = policies == policy
                    if not rows.any():  # every rollout of it ended sooner
                        continue
                    ax.scatter(
                        real[rows],
                        imagined[rows],
                        s=18,
                        color=colours[policy],
                        label=policy if number == 0 else None,
                        alpha=0.8,
                    )
            low, high = (min(values), max(values)) if values else (0.0, 1.0)
            pad = 0.05 * (high - low or 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", lw=1, label="y = x")
            r = plus_minus(*summary.at("tasks", task, "horizons", h, "correlation",
                                       "imagined_mean"), ".2f")  # fmt: skip
            counts = summary.mean["tasks"][task]["horizons"][h]
            dropped = f" ({counts['dropped']:g} dropped)" if counts["dropped"] else ""
            ax.set_title(f"{task}, {h} steps: r = {r}{dropped}", fontsize=10)
            ax.set_xlabel("real return")
            ax.set_ylabel("imagined return (prior mean)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
