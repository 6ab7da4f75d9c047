"""``reproduce rewards``: the reward-prediction table (paper Fig. 8), like for like.

Units: the DMCS dataset and world models shared with the other DMCS protocols (Struct-VRNN
and CNN-VRNN, the same preset, data and budget), a held-out collection that no world model
sees (another collect seed; every episode joins the heads' test-split data, about the
paper's 10,000 windows per task), and per run one ``rewards evaluate --train-missing``
that trains the heads it lacks for both inputs (the run's windows observed once) and scores
them on whole held-out episodes. Each model is compared on the same kind of input: h_{t-1}
alone, and h_{t-1} plus the model's own representation of frame t (keypoints for
Struct-VRNN, the encoder's features for CNN-VRNN). The page pools each (variant, inputs)
over its seeds.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from keypoint_wm.reproduce.dmcs import (
    CHOSEN,
    DmcsSettings,
    Variant,
    chosen_variant,
    data_path,
    data_unit,
    run_dir,
    train_unit,
)
from keypoint_wm.reproduce.identity import dataset_fingerprint, model_uses
from keypoint_wm.reproduce.pages import header, mean_ci_cell, units_table
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, UnitResult, fill, read_json

__all__ = [
    "HELD_OUT_EPISODES",
    "HELD_OUT_SEED",
    "held_out_heads",
    "held_out_path",
    "held_out_unit",
    "protocol",
]

HELD_OUT_EPISODES = 300
HELD_OUT_SEED = 11

CNN = Variant("cnn", overrides=("model.representation=cnn",), label="CNN-VRNN")
"""CNN-VRNN: the chosen Struct-VRNN's preset with the CNN representation (paper S4.3)."""


def _frame_inputs(variant: Variant) -> str:
    """The variant's own representation of frame t, as a reward head reads it."""
    return "hidden+features" if variant == CNN else "hidden+keypoints"


COLUMNS = ("hidden", "hidden+frame")
NAMES = {"hidden": "h_{t-1}", "hidden+frame": "h_{t-1} + frame"}


def _column_inputs(variant: Variant, column: str) -> str:
    """What the variant's heads read in ``column``."""
    return "hidden" if column == "hidden" else _frame_inputs(variant)


def held_out_heads(inputs: str) -> str:
    """The run's subfolder of heads trained with the held-out data, reading ``inputs``."""
    return f"rewards_heldout_{inputs}"


def held_out_path(settings: DmcsSettings) -> str:
    """``{out}/data/heldout300``: the episodes no world model sees (the heads' data)."""
    return f"{OUT}/data/heldout{settings.episodes if settings.smoke else HELD_OUT_EPISODES}" + (
        "-smoke" if settings.smoke else ""
    )


def held_out_unit(settings: DmcsSettings) -> Unit:
    """``collect`` the held-out episodes: another collect seed, the protocol's tasks."""
    episodes = settings.episodes if settings.smoke else HELD_OUT_EPISODES
    argv = [
        "collect",
        "--domains",
        ",".join(settings.tasks),
        "--episodes",
        str(episodes),
        "--steps",
        str(settings.steps),
        "--seed",
        str(HELD_OUT_SEED),
        "--out",
        held_out_path(settings),
        "--workers",
        "{threads}",
        "--quiet",
    ]
    if settings.smoke:
        argv += ["--size", "32"]

    def uses(out: Path) -> dict[str, Any]:
        return {"data": dataset_fingerprint(fill(held_out_path(settings), out))}

    return Unit("held-out-data", tuple(argv), kind="artifact", uses=uses)


def _score_unit(settings: DmcsSettings, variant: Variant, seed: int) -> Unit:
    """One ``rewards evaluate --train-missing`` of both columns: the run is given twice, once
    per inputs, so its windows are observed once and read by both sets of heads."""
    run = run_dir(variant, seed)
    json_path = f"{OUT}/rewards/{variant.name}-seed{seed}.json"
    label = variant.label or variant.name
    argv = ["rewards", "evaluate"]
    for column in COLUMNS:
        inputs = _column_inputs(variant, column)
        argv += ["--run", run, "--heads", f"{run}/{held_out_heads(inputs)}", "--inputs", inputs]
        argv += ["--label", f"{label} ({NAMES[column]})"]
    argv += [
        "--train-missing",
        "--data",
        data_path(settings),
        "--held-out-data",
        held_out_path(settings),
        "--stride",
        "2" if settings.smoke else "5",
        "--json",
        json_path,
        "--plot",
        json_path.removesuffix(".json") + ".png",
        "--quiet",
    ]
    if settings.smoke:
        argv += ["--steps", "5", "--window", "6"]

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        tasks = [sorted(entry["tasks"]) for entry in payload["runs"]]
        if any(found != tasks[0] for found in tasks):
            raise ValueError(
                f"{fill(json_path, out)}: the columns score other tasks ("
                + "; ".join(f"{c}: {', '.join(t)}" for c, t in zip(COLUMNS, tasks, strict=True))
                + ")"
            )
        return {
            column: {
                "inputs": _column_inputs(variant, column),
                "tasks": {t: s["normalized_mse"] for t, s in entry["tasks"].items()},
                "validation": {
                    t: s["validation_normalized_mse"] for t, s in entry["tasks"].items()
                },
                "test_windows": {t: s["test_windows"] for t, s in entry["tasks"].items()},
                "mean_validation_normalized_mse": entry["mean_validation_normalized_mse"],
            }
            for column, entry in zip(COLUMNS, payload["runs"], strict=True)
        }

    return Unit(
        f"rewards-{variant.name}-seed{seed}",
        tuple(argv),
        needs=(f"train-{variant.name}-seed{seed}", "held-out-data"),
        figures=figures,
        uses=model_uses(run),
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: the same units on a seconds-long setting."""
    dmcs = DmcsSettings()
    settings = replace(dmcs, variants=(chosen_variant(dmcs), CNN))
    if smoke:
        settings = settings.smoke_setting(variants=None)
    units = [data_unit(settings), held_out_unit(settings)]
    for seed in settings.seeds:
        for variant in settings.variants:
            units.append(train_unit(settings, variant, seed))
            units.append(_score_unit(settings, variant, seed))
    return Protocol(
        name="rewards",
        summary="reward prediction from the world model's state (paper Fig. 8): Struct-VRNN "
        "against CNN-VRNN, each reading h_{t-1} and h_{t-1} plus its own frame representation",
        settings={
            "dmcs": settings.to_json(),
            "held_out": {"episodes": HELD_OUT_EPISODES, "seed": HELD_OUT_SEED},
            "frame_inputs": {v.name: _frame_inputs(v) for v in settings.variants},
        },
        units=tuple(units),
        page=lambda results, root: _page(settings, results),
        title="Reward prediction from the world model's state, like for like "
        f"(`dmcs-cpu`, {len(settings.tasks)} tasks, {HELD_OUT_EPISODES} held-out episodes "
        "per task for the heads)",
        headline=lambda results: _headline(settings, results),
    )


def _done(
    settings: DmcsSettings, results: dict[str, UnitResult]
) -> dict[tuple[str, str], list[dict[str, Any]]]:
    return {
        (v.name, c): [
            r.figures[c]
            for seed in settings.seeds
            if (r := results.get(f"rewards-{v.name}-seed{seed}")) is not None
        ]
        for v in settings.variants
        for c in COLUMNS
    }


def _task_means(figures: list[dict[str, Any]], tasks: tuple[str, ...]) -> list[float]:
    """Per seed, the mean normalised MSE over the tasks with a figure."""
    out = []
    for f in figures:
        values = [f["tasks"][t] for t in tasks if f["tasks"].get(t) is not None]
        if values:
            out.append(sum(values) / len(values))
    return out


_NONE_YET = "No reward head scored yet"


def _headline(settings: DmcsSettings, results: dict[str, UnitResult]) -> str:
    done = _done(settings, results)
    cells = [
        f"{v.label} ({NAMES[c]}) {mean_ci_cell(_task_means(done[(v.name, c)], settings.tasks))}"
        for v in settings.variants
        for c in COLUMNS
        if done[(v.name, c)]
    ]
    if not cells:
        return f'in progress: "{_NONE_YET}"'
    return "normalised MSE, mean over the tasks (1 = the mean reward): " + ", ".join(cells)


def _page(settings: DmcsSettings, results: dict[str, UnitResult]) -> str:
    lines = header(
        "rewards",
        "Reward prediction from the world model's state",
        "Normalised MSE of reward heads (paper S2.2: Dense-GRU-GRU-Dense, 1 = predicting the "
        "mean reward) on whole held-out episodes, per task; lower is better. Each world model "
        "is read two ways: h_{t-1} alone (the paper's), and h_{t-1} plus its own "
        "representation of frame t (Struct-VRNN: the keypoints; CNN-VRNN: the encoder's "
        f"features). The heads train on the test split's episodes plus {HELD_OUT_EPISODES} "
        f"episodes per task that no world model saw (collect seed {HELD_OUT_SEED}). "
        "Mean ± 95% CI over world-model seeds.",
    )
    columns = [(v, c) for v in settings.variants for c in COLUMNS]
    done = _done(settings, results)
    names = NAMES
    lines += [
        "| task | " + " | ".join(f"{v.label} ({names[c]})" for v, c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for task in settings.tasks:
        cells = [
            mean_ci_cell(
                [f["tasks"][task] for f in done[(v.name, c)] if f["tasks"].get(task) is not None]
            )
            for v, c in columns
        ]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    means = [mean_ci_cell(_task_means(done[(v.name, c)], settings.tasks)) for v, c in columns]
    lines.append("| mean over the tasks | " + " | ".join(means) + " |")
    seeds = [str(len(done[(v.name, c)])) for v, c in columns]
    lines += ["| seeds | " + " | ".join(seeds) + " |", ""]
    if not any(done.values()):
        units = len(settings.seeds) * len(settings.variants)
        lines += [f"{_NONE_YET} (of {units} units).", ""]
    lines += _bar(settings, done) + [""]
    lines += units_table(results)
    return "\n".join(lines) + "\n"


def _bar(settings: DmcsSettings, done: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """Struct-VRNN <= CNN-VRNN on matched inputs on >= 4 of the tasks, every Struct figure < 1."""
    if not all(done.get((v.name, c)) for v in settings.variants for c in COLUMNS):
        return ["Bar: not checked until every column has a seed."]

    def mean(variant: str, column: str, task: str) -> float | None:
        values = [f["tasks"].get(task) for f in done[(variant, column)]]
        present = [v for v in values if v is not None]
        return sum(present) / len(present) if present else None

    chosen = CHOSEN
    out = []
    for column in COLUMNS:
        wins = 0
        for task in settings.tasks:
            struct, cnn = mean(chosen, column, task), mean(CNN.name, column, task)
            wins += struct is not None and cnn is not None and struct <= cnn
        above = [t for t in settings.tasks if (mean(chosen, column, t) or 0.0) >= 1.0]
        verdict = "met" if wins >= 4 and not above else "not met"
        out.append(
            f"Bar ({column}): Struct-VRNN at or below CNN-VRNN on {wins} of "
            f"{len(settings.tasks)} tasks (4 needed); Struct-VRNN figures at or above 1: "
            f"{', '.join(above) or 'none'}: {verdict}."
        )
    return out
