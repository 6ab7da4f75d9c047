"""Side-by-side evaluation of several runs on one dataset (``keypoint-wm evaluate compare``).

Every run (e.g. Struct-VRNN, Struct-RNN, Struct-VRNN without best-of-many, CNN-VRNN) is
evaluated on the same data with the same settings: video metrics (always), tracking (when
the data hold ``true_object_pos``) and action recognition (when episodes carry an
``action`` label). Runs are labelled by their directory names. The result holds every
run's full figures under ``"runs"`` and a summary ``"table"`` (``{metric: {run: value}}``),
also written as one Markdown table; :func:`plot_compare` draws one figure per metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypoint_wm.data.episodes import episode_metadata
from keypoint_wm.errors import UsageError
from keypoint_wm.evaluation.actions import ActionEvalConfig
from keypoint_wm.evaluation.video import VideoEvalConfig

METRICS = ("video", "tracking", "actions")
# (table row, section, key, higher is better, description)
ROWS = (
    ("psnr_closest", "video", "psnr_closest", True, "PSNR dB, closest of N samples"),
    ("psnr_furthest", "video", "psnr_furthest", True, "PSNR dB, furthest of N samples"),
    ("psnr_copy_last_frame", "video", "psnr_copy_last_frame", True, "PSNR dB, copy last frame"),
    ("ssim_closest", "video", "ssim_closest", True, "SSIM, closest of N samples"),
    ("ssim_furthest", "video", "ssim_furthest", True, "SSIM, furthest of N samples"),
    ("ssim_copy_last_frame", "video", "ssim_copy_last_frame", True, "SSIM, copy last frame"),
    ("vgg_similarity_closest", "video", "vgg_similarity_closest", True, "VGG cosine, closest"),
    ("fvd", "video", "fvd", False, "FVD"),
    ("tracking_r2_observed", "tracking", "r2_observed", True, "tracking R2 (observed, mean)"),
    ("tracking_error_observed", "tracking", "error_observed", False, "tracking error, observed"),
    (
        "tracking_error_predicted",
        "tracking",
        "error_predicted",
        False,
        "tracking error, predicted (best)",
    ),
    ("action_accuracy", "actions", "accuracy", True, "action recognition accuracy"),
    (
        "action_most_frequent_class",
        "actions",
        "most_frequent_class_accuracy",
        True,
        "most-frequent-class baseline",
    ),
)


@dataclass
class CompareConfig:
    """Settings shared by every run of a comparison."""

    metrics: tuple[str, ...] = METRICS
    video: VideoEvalConfig = field(default_factory=VideoEvalConfig)
    actions: ActionEvalConfig = field(default_factory=ActionEvalConfig)
    tracking_samples: int = 50
    tracking_max_windows: int = 1000
    test_fraction: float = 0.2


def run_labels(runs: list[str | Path]) -> list[str]:
    """Directory names, made unique with their parent's name where two runs share one."""
    names = [Path(r).resolve().name for r in runs]
    labels = []
    for run, name in zip(runs, names, strict=True):
        labels.append(
            f"{Path(run).resolve().parent.name}/{name}" if names.count(name) > 1 else name
        )
    if len(set(labels)) != len(labels):
        raise UsageError(f"runs must be distinct directories, got {[str(r) for r in runs]}")
    return labels


def applicable_metrics(data_dir: str | Path, wanted: tuple[str, ...]) -> dict[str, str | None]:
    """``{metric: None if it applies, else why not}`` for the dataset."""
    from keypoint_wm.data.sequences import EpisodeIndex

    index = EpisodeIndex(data_dir, "all")
    has_positions = all(r.num_objects > 0 for r in index.records)
    has_labels = "action" in episode_metadata(index.records[0].path)
    reasons: dict[str, str | None] = {}
    for metric in wanted:
        if metric not in METRICS:
            raise UsageError(
                f"--metrics: unknown metric {metric!r}; choose from {', '.join(METRICS)}"
            )
        reasons[metric] = None
        if metric == "tracking" and not has_positions:
            reasons[metric] = "the data hold no true_object_pos"
        if metric == "actions" and not has_labels:
            reasons[metric] = "the episodes carry no 'action' label"
    return reasons


def _mean(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dict):  # several tasks: {task: figure}
        values = [m for m in (_mean(v) for v in value.values()) if m is not None]
        return float(np.mean(values)) if values else None
    if isinstance(value, list):
        return float(np.mean(value)) if value else None
    return float(value)


def compare_runs(
    runs: list[str | Path],
    data_dir: str | Path,
    config: CompareConfig | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every run on ``data_dir``; returns ``runs``, ``table``, ``rows``, ``skipped``.

    Each run is loaded on ``device`` in ``precision`` (see :func:`keypoint_wm.load`)."""
    import keypoint_wm
    from keypoint_wm.evaluation.actions import evaluate_actions
    from keypoint_wm.evaluation.tracking import evaluate_tracking
    from keypoint_wm.evaluation.video import evaluate_video

    config = config or CompareConfig()
    if len(runs) < 1:
        raise UsageError("compare needs at least one run")
    labels = run_labels(runs)
    reasons = applicable_metrics(data_dir, config.metrics)
    results: dict[str, dict[str, Any]] = {}
    for label, run in zip(labels, runs, strict=True):
        model = keypoint_wm.load(run, device=device, precision=precision)
        entry: dict[str, Any] = {
            "run": str(run),
            "step": model.step,
            "config": model.config.model.to_dict(),
        }
        if "video" in reasons and reasons["video"] is None:
            entry["video"] = evaluate_video(model, data_dir, config.video, progress)
        if "tracking" in reasons and reasons["tracking"] is None:
            entry["tracking"] = evaluate_tracking(
                model,
                data_dir,
                test_fraction=config.test_fraction,
                samples=config.tracking_samples,
                max_windows=config.tracking_max_windows,
            )
        if "actions" in reasons and reasons["actions"] is None:
            entry["actions"] = evaluate_actions(model, data_dir, config.actions, progress)
        results[label] = entry
    table: dict[str, dict[str, float | None]] = {}
    rows = []
    for row, section, key, higher, description in ROWS:
        values = {label: _mean(results[label].get(section, {}).get(key)) for label in labels}
        if all(v is None for v in values.values()):
            continue
        table[row] = values
        rows.append({"metric": row, "higher_is_better": higher, "description": description})
    return {
        "data": str(data_dir),
        "labels": labels,
        "table": table,
        "rows": rows,
        "skipped": {m: why for m, why in reasons.items() if why is not None},
        "runs": results,
    }


def format_markdown(result: dict[str, Any]) -> str:
    """The summary table as Markdown (the best value of each row in bold, unless every run has
    the same value, as the baselines that depend only on the data do)."""
    labels = result["labels"]
    lines = [
        f"Evaluation of {len(labels)} runs on `{result['data']}`.",
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for row in result["rows"]:
        values = result["table"][row["metric"]]
        present = [v for v in values.values() if v is not None]
        best = (max if row["higher_is_better"] else min)(present) if present else None
        cells = []
        for label in labels:
            v = values[label]
            text = "-" if v is None else f"{v:.4g}"
            cells.append(
                f"**{text}**" if v is not None and v == best and len(set(present)) > 1 else text
            )
        arrow = "↑" if row["higher_is_better"] else "↓"
        lines.append(f"| {row['description']} {arrow} | " + " | ".join(cells) + " |")
    for metric, why in result["skipped"].items():
        lines.append(f"\n{metric}: skipped ({why}).")
    return "\n".join(lines) + "\n"


def plot_compare(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """One PNG per metric in ``out_dir``: per-step curves for PSNR/SSIM, bars otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = result["labels"]
    paths = []
    for name in ("psnr", "ssim", "vgg_similarity"):
        curves = {
            label: result["runs"][label]["video"]["metrics"][name]
            for label in labels
            if name in result["runs"][label].get("video", {}).get("metrics", {})
        }
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
        for n, (label, curve) in enumerate(curves.items()):
            colour = f"C{n % 10}"
            steps = np.arange(1, len(curve["closest"]["mean"]) + 1)
            ax.plot(
                steps, curve["closest"]["mean"], "-o", color=colour, ms=3, label=f"{label} closest"
            )
            ax.plot(steps, curve["furthest"]["mean"], ":", color=colour, label=f"{label} furthest")
        first = next(iter(curves.values()))["copy_last_frame"]["mean"]
        ax.plot(np.arange(1, len(first) + 1), first, "k--", label="copy last frame")
        ax.set_xlabel("predicted step")
        ax.set_title(name.upper() if name != "vgg_similarity" else "VGG cosine similarity")
        ax.legend(fontsize=6)
        fig.tight_layout()
        paths.append(out_dir / f"compare_{name}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    for row in result["rows"]:
        if row["metric"].startswith(("psnr", "ssim")):
            continue
        values = result["table"][row["metric"]]
        fig, ax = plt.subplots(figsize=(1.4 * len(labels) + 2, 3.2))
        heights = [np.nan if values[label] is None else values[label] for label in labels]
        ax.bar(labels, heights, color=[f"C{n % 10}" for n in range(len(labels))])
        ax.set_title(
            row["description"]
            + (" (higher is better)" if row["higher_is_better"] else " (lower is better)")
        )
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
        fig.tight_layout()
        paths.append(out_dir / f"compare_{row['metric']}.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
