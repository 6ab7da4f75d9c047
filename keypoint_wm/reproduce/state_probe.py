"""``reproduce state-probe``: what the latent knows, per world-model variant and seed.

Units: the DMCS dataset, one world model per (variant, seed), and one
``evaluate state-probe`` per run (features ``both``, the latent wrappers' observation). The
page pools the seeds of each variant (mean ± 95% CI), beside the untrained floor, and says
whether the bars of the issue on what the latent knows are met on its four tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.reproduce.dmcs import (
    DmcsSettings,
    Variant,
    data_path,
    data_unit,
    run_dir,
    seed_results,
    train_unit,
)
from keypoint_wm.reproduce.identity import model_uses
from keypoint_wm.reproduce.pages import Figures, header, over_seeds, units_table
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, UnitResult, read_json

__all__ = ["BARS", "BAR_TASKS", "probe_command", "probe_figures", "protocol"]

BAR_TASKS = ("cartpole-balance", "reacher-easy", "walker-walk", "cheetah-run")
"""The tasks the bars are checked on."""

BARS = {"positions": 0.9, "velocities": 0.8}
"""Test R^2 (features ``both``, mean of the seeds) each bar task must reach."""

MAX_EPISODES = 40


def probe_command(run: str, data: str, json_path: str, smoke: bool) -> list[str]:
    """``evaluate state-probe`` of ``run`` on ``data`` as every protocol's probe unit runs it
    (features ``both``, angles through cosine and sine, :data:`MAX_EPISODES` per split)."""
    return [
        "evaluate", "state-probe", "--run", run, "--data", data, "--features", "both",
        "--angles", "sincos", "--max-episodes", str(4 if smoke else MAX_EPISODES),
        "--json", json_path, "--quiet",
    ]  # fmt: skip


def probe_figures(json_path: str) -> Callable[[Path], dict[str, Any]]:
    """What a probe unit records: the command's JSON less its per-run copies."""

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        return {k: v for k, v in payload.items() if k not in ("per_run", "seed_ci95", "run")}

    return figures


def _probe_unit(settings: DmcsSettings, variant: Variant, seed: int) -> Unit:
    json_path = f"{OUT}/state-probe/{variant.name}-seed{seed}.json"
    argv = probe_command(run_dir(variant, seed), data_path(settings), json_path, settings.smoke)
    return Unit(
        f"probe-{variant.name}-seed{seed}",
        tuple(argv),
        needs=(f"train-{variant.name}-seed{seed}",),
        figures=probe_figures(json_path),
        uses=model_uses(run_dir(variant, seed)),
    )


def _reference_unit(settings: DmcsSettings) -> Unit:
    """``evaluate state-reference`` on the probe's episodes: what the frames can tell."""
    json_path = f"{OUT}/state-probe/reference.json"
    argv = [
        "evaluate",
        "state-reference",
        "--data",
        data_path(settings),
        "--max-episodes",
        str(4 if settings.smoke else MAX_EPISODES),
        "--json",
        json_path,
        "--quiet",
    ]
    if settings.smoke:
        argv += ["--validation-fraction", "0.25", "--test-fraction", "0.25", "--mlp-steps", "50"]

    def figures(out: Path) -> dict[str, Any]:
        return read_json(json_path, out)

    return Unit("reference", tuple(argv), needs=("data",), figures=figures)


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: the same units on a seconds-long setting."""
    settings = DmcsSettings()
    if smoke:
        settings = settings.smoke_setting(seeds=(0, 1))
    units = [data_unit(settings), _reference_unit(settings)]
    for variant in settings.variants:
        for seed in settings.seeds:
            units += [train_unit(settings, variant, seed), _probe_unit(settings, variant, seed)]
    return Protocol(
        name="state-probe",
        summary="what the latent knows: a ridge probe from the filtered latent to the "
        "physics state (positions and velocities), per task, beside an untrained model",
        settings={
            "dmcs": settings.to_json(),
            "probe": {"features": "both", "max_episodes": 4 if smoke else MAX_EPISODES},
        },
        units=tuple(units),
        page=lambda results, root: _page(settings, results, root),
        title="What the latent knows: a ridge probe from the filtered latent to the physics "
        f"state (`dmcs-cpu`, {len(settings.tasks)} tasks)",
        headline=lambda results: _headline(settings, results),
    )


def _headline(settings: DmcsSettings, results: dict[str, UnitResult]) -> str:
    """Test R^2 over the tasks (the page's "mean" row) of each variant with a probe."""
    from keypoint_wm.evaluation.seeds import plus_minus

    parts = []
    for variant in settings.variants:
        fresh = seed_results(settings, variant, results, "probe")
        if not fresh:
            continue
        summary = over_seeds({f"seed {s}": Figures(r.figures) for s, r in sorted(fresh.items())})
        mean, half = summary.mean["mean"], None if summary.ci is None else summary.ci["mean"]
        floor = summary.mean["untrained"]["mean"]

        def cell(values: dict[str, Any], widths: dict[str, Any] | None, kind: str) -> str:
            return plus_minus(values[kind], None if widths is None else widths[kind], ".3f")

        parts.append(
            f"{variant.label or variant.name}: positions {cell(mean, half, 'positions')}, "
            f"velocities {cell(mean, half, 'velocities')} ({len(fresh)} of "
            f"{len(settings.seeds)} seeds; untrained: {cell(floor, None, 'positions')}, "
            f"{cell(floor, None, 'velocities')})"
        )
    if not parts:
        return f'in progress: "No probe finished yet (of {len(settings.seeds)} seeds)."'
    return "test R², mean over the tasks: " + "; ".join(parts)


def _page(settings: DmcsSettings, results: dict[str, UnitResult], root: Path) -> str:
    from keypoint_wm.evaluation.state_probe_report import format_state_probe, plot_state_probe

    lines = header(
        "state-probe",
        "What the latent knows",
        "A ridge regression from the model's filtered latent at frame t (the keypoints of "
        "frame t and the GRU state h_{t-1}: what the latent wrappers observe) to the "
        "physics state at frame t (dm_control's observation), fitted on training-split "
        "episodes, its strength chosen on validation episodes, scored on test episodes. "
        f"Data: {settings.episodes} random-action episodes of {settings.steps} steps per task "
        f"({', '.join(settings.tasks)}); at most {MAX_EPISODES} episodes per task and split "
        "are probed.",
    )
    for variant in settings.variants:
        fresh = seed_results(settings, variant, results, "probe")
        lines += [
            variant.heading(),
            "",
        ]
        if not fresh:
            lines += [f"No probe finished yet (of {len(settings.seeds)} seeds).", ""]
            continue
        summary = over_seeds({f"seed {s}": Figures(r.figures) for s, r in sorted(fresh.items())})
        lines += [f"{len(fresh)} of {len(settings.seeds)} seeds.", "", format_state_probe(summary)]
        picture = root / f"state-probe-{variant.name}.png"
        plot_state_probe(summary, picture)
        lines += [
            "",
            _bars(summary.mean, len(fresh), len(settings.seeds)),
            "",
            f"![state probe, {variant.name}]({picture.name})",
            "",
        ]
    lines += _reference_section(results)
    lines += _choice_table(settings, results)
    lines += units_table(results)
    return "\n".join(lines) + "\n"


def _reference_section(results: dict[str, UnitResult]) -> list[str]:
    """The velocities the true positions of the last frames tell (``evaluate
    state-reference``): where a probe's velocity figure is the model's gap or the data's
    limit."""
    from keypoint_wm.evaluation.state_reference import format_state_reference

    lines = [
        "## What the frames can tell (reference)",
        "",
        "The velocity part of the state at frame t predicted from the *true* positions at "
        "frames t, t-1, t-2 and the actions between, on the same test episodes "
        "(`keypoint-wm evaluate state-reference`): by the probe's ridge regression and by a "
        "small MLP. Not a strict bound on a model of the frames, but a probe's velocity R² "
        "far below it is the model's gap, and one near it the data's limit.",
        "",
    ]
    if "reference" not in results:
        return [*lines, "Not measured yet.", ""]
    return [*lines, format_state_reference(results["reference"].figures), ""]


def _choice_table(settings: DmcsSettings, results: dict[str, UnitResult]) -> list[str]:
    """Validation R^2 of every variant: what a choice among them is made on."""
    tasks = [t for t in BAR_TASKS if t in settings.tasks]
    lines = [
        "## Choosing a variant (validation split)",
        "",
        "Positions / velocities R^2 on the validation episodes (mean over the seeds done); "
        "variants are compared here, the test figures above are read once to report.",
        "",
        "| variant | seeds | " + " | ".join(tasks) + " |",
        "|---|---|" + "---|" * len(tasks),
    ]
    for variant in settings.variants:
        done = [
            r.figures["tasks"] for r in seed_results(settings, variant, results, "probe").values()
        ]
        if not done:
            continue
        cells = []
        for task in tasks:
            pairs = [d[task].get("validation", {}) for d in done if task in d]
            means = [
                np.mean([p[k] for p in pairs if p.get(k) is not None] or [np.nan])
                for k in ("positions", "velocities")
            ]
            cells.append(f"{means[0]:.3f} / {means[1]:.3f}")
        lines.append(f"| {variant.name} | {len(done)} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _bars(mean: dict[str, Any], done: int, wanted: int) -> str:
    missing = [t for t in BAR_TASKS if t not in mean["tasks"]]
    if missing:
        return f"Bars: not checked ({', '.join(missing)} not in the data)."
    failing = [
        f"{task} {kind} {mean['tasks'][task][kind]:.3f} < {bar}"
        for task in BAR_TASKS
        for kind, bar in BARS.items()
        if (mean["tasks"][task][kind] or 0.0) < bar
    ]
    scope = f"mean of {done} seed(s)" + ("" if done >= wanted else f", {wanted} wanted")
    if failing:
        return (
            f"Bars (positions >= 0.9, velocities >= 0.8; {scope}): not met: {'; '.join(failing)}."
        )
    return f"Bars (positions >= 0.9, velocities >= 0.8; {scope}): met on {', '.join(BAR_TASKS)}."
