"""Side-by-side evaluation of several variants on one dataset (``keypoint-wm evaluate compare``).

Every variant (e.g. Struct-VRNN, Struct-RNN, Struct-VRNN without best-of-many, CNN-VRNN) is
evaluated on the same data with the same settings: video metrics (always), tracking (when
the data hold ``true_object_pos``) and action recognition (when episodes carry an
``action`` label). A variant is one run, or several runs that are its training seeds: runs
sharing a label, or the ``seed_<s>/`` runs of a ``train --seeds N`` folder
(:func:`keypoint_wm.run_groups.group_runs`). Without labels, variants are named by their
directories. The JSON holds every variant under ``"variants"`` in the layout of a
one-variant ``evaluate`` command (its mean figures, ``"seed_ci95"`` and ``"per_run"``;
:func:`keypoint_wm.evaluation.seeds.variants_json`) and a summary ``"table"``
(``{metric: {variant: value}}``), also written as one Markdown table (mean ± 95% interval
over seeds where a variant has several); :func:`plot_compare` draws one figure per metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypoint_wm.data.episodes import episode_metadata
from keypoint_wm.errors import UsageError
from keypoint_wm.evaluation.actions import ActionEvalConfig, ActionResult
from keypoint_wm.evaluation.seeds import (
    OverSeeds,
    aggregate,
    check_one_variant,
    plus_minus,
    variants_json,
)
from keypoint_wm.evaluation.tracking import TrackingResult
from keypoint_wm.evaluation.video import VideoEvalConfig, VideoResult
from keypoint_wm.run_groups import group_runs
from keypoint_wm.viz import write_figure

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


@dataclass(frozen=True)
class RunEvaluation:
    """One run's figures in a comparison: each evaluation that applies to the data."""

    run: str
    step: int
    """The checkpoint's training step."""
    config: dict[str, Any]
    """The run's model config."""
    video: VideoResult | None = None
    tracking: TrackingResult | None = None
    actions: ActionResult | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"run": self.run, "step": self.step, "config": self.config}
        for name, section in (
            ("video", self.video),
            ("tracking", self.tracking),
            ("actions", self.actions),
        ):
            if section is not None:
                out[name] = section.to_json()
        return out


@dataclass(frozen=True)
class TableRow:
    """A row of the summary table."""

    metric: str
    higher_is_better: bool
    description: str

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "description": self.description,
        }


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare_runs` measured.

    Attributes:
        data: the dataset.
        labels: the variants, in order.
        rows: the summary table's rows (metrics some variant has a value for).
        table: ``{metric: {variant: value}}``: a run's value is the figure averaged over
            objects and tasks; a variant's the mean over its seeds (None: not measured).
        table_ci: the same keys, the half-width of each value's 95% interval over the
            variant's seeds (None for a one-run variant); None when every variant is one run.
        skipped: ``{evaluation: why it does not apply to the data}``.
        variants: each variant's runs and results.
    """

    data: str
    labels: list[str]
    rows: list[TableRow]
    table: dict[str, dict[str, float | None]]
    table_ci: dict[str, dict[str, float | None]] | None
    skipped: dict[str, str]
    variants: dict[str, OverSeeds[RunEvaluation]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``"variants"``: ``{variant: its mean figures, "seed_ci95" and "per_run"}`` (the
        layout of every ``evaluate`` command over seeds). Kept beside it for the scripts
        that read them: ``"runs"`` (each variant's mean figures), ``"seed_ci95"``
        (``{"table": ..., "runs": {variant: half-widths or None}}``, null when every variant
        is one run) and ``"per_run"`` (``{variant: [each run's figures]}``)."""
        return {
            "data": self.data,
            "labels": self.labels,
            "table": self.table,
            "rows": [row.to_json() for row in self.rows],
            "skipped": self.skipped,
            "runs": {label: v.mean for label, v in self.variants.items()},
            "seed_ci95": None
            if self.table_ci is None
            else {
                "table": self.table_ci,
                "runs": {label: v.ci for label, v in self.variants.items()},
            },
            "per_run": {label: v.per_run for label, v in self.variants.items()},
            "variants": variants_json(self.variants.items()),
        }


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


def _evaluate_run(
    run: Path,
    data_dir: str | Path,
    config: CompareConfig,
    reasons: dict[str, str | None],
    device: str | torch.device | None,
    precision: str,
    progress: bool,
) -> RunEvaluation:
    import keypoint_wm
    from keypoint_wm.evaluation.actions import evaluate_actions
    from keypoint_wm.evaluation.tracking import evaluate_tracking
    from keypoint_wm.evaluation.video import evaluate_video

    def applies(metric: str) -> bool:
        return metric in reasons and reasons[metric] is None

    model = keypoint_wm.load(run, device=device, precision=precision)
    return RunEvaluation(
        run=str(run),
        step=model.step,
        config=model.config.model.to_dict(),
        video=evaluate_video(model, data_dir, config.video, progress) if applies("video") else None,
        tracking=evaluate_tracking(
            model,
            data_dir,
            test_fraction=config.test_fraction,
            samples=config.tracking_samples,
            max_windows=config.tracking_max_windows,
            progress=progress,
        )
        if applies("tracking")
        else None,
        actions=evaluate_actions(model, data_dir, config.actions, progress)
        if applies("actions")
        else None,
    )


def compare_runs(
    runs: list[str | Path],
    data_dir: str | Path,
    config: CompareConfig | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = True,
    labels: list[str] | None = None,
) -> CompareResult:
    """Evaluate every run on ``data_dir``, grouped into variants by
    :func:`keypoint_wm.run_groups.group_runs`.

    Each run is loaded on ``device`` in ``precision`` (see :func:`keypoint_wm.load`).

    Raises:
        UsageError: no runs, bad labels, or runs of one variant with different model configs.
    """
    config = config or CompareConfig()
    groups = group_runs(runs, labels)
    reasons = applicable_metrics(data_dir, config.metrics)
    variants: dict[str, OverSeeds[RunEvaluation]] = {}
    for group in groups:
        members = group.runs
        results: list[RunEvaluation] = []
        for run in members:
            results.append(
                _evaluate_run(run, data_dir, config, reasons, device, precision, progress)
            )
            check_one_variant(members[: len(results)], [r.config for r in results], group.seed_hint)
        variants[group.name] = OverSeeds(tuple(str(r) for r in members), tuple(results))
    table: dict[str, dict[str, float | None]] = {}
    table_ci: dict[str, dict[str, float | None]] = {}
    rows = []
    for row, section, key, higher, description in ROWS:
        values, halves = {}, {}
        for label, variant in variants.items():
            per_run = [_mean(entry.get(section, {}).get(key)) for entry in variant.per_run]
            values[label], halves[label] = aggregate(per_run)
        if all(v is None for v in values.values()):
            continue
        table[row] = values
        table_ci[row] = halves
        rows.append(TableRow(row, higher, description))
    several = any(v.count > 1 for v in variants.values())
    return CompareResult(
        data=str(data_dir),
        labels=list(variants),
        rows=rows,
        table=table,
        table_ci=table_ci if several else None,
        skipped={m: why for m, why in reasons.items() if why is not None},
        variants=variants,
    )


def format_markdown(result: CompareResult) -> str:
    """The summary table as Markdown (the best value of each row in bold, unless every
    variant has the same value, as the baselines that depend only on the data do); a
    variant of several seeds shows mean ± the half-width of its 95% interval over them."""
    labels = result.labels
    seeds = {label: v.count for label, v in result.variants.items()}
    heading = f"Evaluation of {len(labels)} runs on `{result.data}`."
    if any(n > 1 for n in seeds.values()):
        counts = ", ".join(f"{label}: {seeds[label]}" for label in labels)
        heading = (
            f"Evaluation of {len(labels)} variants on `{result.data}`: mean ± 95% CI over "
            f"each variant's seeds ({counts} runs)."
        )
    lines = [
        heading,
        "",
        "| metric | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for row in result.rows:
        values = result.table[row.metric]
        halves = (result.table_ci or {}).get(row.metric, {})
        present = [v for v in values.values() if v is not None]
        best = (max if row.higher_is_better else min)(present) if present else None
        cells = []
        for label in labels:
            v = values[label]
            text = plus_minus(v, halves.get(label), ".4g")
            cells.append(
                f"**{text}**" if v is not None and v == best and len(set(present)) > 1 else text
            )
        arrow = "↑" if row.higher_is_better else "↓"
        lines.append(f"| {row.description} {arrow} | " + " | ".join(cells) + " |")
    for metric, why in result.skipped.items():
        lines.append(f"\n{metric}: skipped ({why}).")
    return "\n".join(lines) + "\n"


def plot_compare(result: CompareResult, out_dir: str | Path) -> list[Path]:
    """One PNG per metric in ``out_dir``: per-step curves for PSNR/SSIM (each variant's mean
    over its seeds), bars otherwise (with the 95% interval over seeds where there is one)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = result.labels
    runs = {label: v.mean for label, v in result.variants.items()}
    paths = []
    for name in ("psnr", "ssim", "vgg_similarity"):
        curves = {
            label: runs[label]["video"]["metrics"][name]
            for label in labels
            if name in runs[label].get("video", {}).get("metrics", {})
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
        paths.append(write_figure(fig, out_dir / f"compare_{name}.png", dpi=110))
    for row in result.rows:
        if row.metric.startswith(("psnr", "ssim")):
            continue
        values = result.table[row.metric]
        halves = (result.table_ci or {}).get(row.metric, {})
        fig, ax = plt.subplots(figsize=(1.4 * len(labels) + 2, 3.2))
        heights = [np.nan if (v := values[label]) is None else v for label in labels]
        errors = [halves.get(label) or 0.0 for label in labels]
        ax.bar(
            labels,
            heights,
            yerr=errors if result.table_ci is not None else None,
            color=[f"C{n % 10}" for n in range(len(labels))],
        )
        ax.set_title(
            row.description
            + (" (higher is better)" if row.higher_is_better else " (lower is better)")
        )
        ax.tick_params(axis="x", labelrotation=20, labelsize=7)
        fig.tight_layout()
        paths.append(write_figure(fig, out_dir / f"compare_{row.metric}.png", dpi=110))
    return paths
