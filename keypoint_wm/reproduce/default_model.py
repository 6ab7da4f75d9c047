"""``reproduce default-model``: the world model shipped in the package, and its figures.

Units: the DMCS dataset and the chosen variant's seed-0 world model (shared with the other
DMCS targets), its reward heads (``reproduce dream-fidelity``'s ``heads`` unit), the export
in float16 with those heads (``keypoint-wm export``: first to ``OUT/export/default``, which
the measuring units read, then, as the last unit, into the package's
``keypoint_wm/bundled/default``, committed with its record), and the figures of the export
itself: the state probe (beside the same probe of the float32 run, to show that half
precision keeps them), keypoint tracking and dream fidelity. docs/design.md, "The shipped
default model".
"""

from __future__ import annotations

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
from keypoint_wm.reproduce.dream_fidelity import HEADS, TASKS, heads_unit
from keypoint_wm.reproduce.identity import exported_from, model_uses
from keypoint_wm.reproduce.pages import header, units_table
from keypoint_wm.reproduce.protocol import (
    OUT,
    SHIP,
    Protocol,
    Unit,
    UnitResult,
    fill,
    read_json,
)
from keypoint_wm.reproduce.state_probe import MAX_EPISODES

__all__ = ["protocol"]

EXPORT = f"{OUT}/export/default"


def _export_unit(settings: DmcsSettings, to: str, name: str, ships: bool) -> Unit:
    run = run_dir(_variant(settings), 0)
    argv = ("export", "--run", run, "--out", to, "--heads", f"{run}/{HEADS}")

    def figures(out: Path) -> dict[str, Any]:
        card = read_json(f"{EXPORT}/card.json", out)
        size = sum(p.stat().st_size for p in fill(EXPORT, out).rglob("*") if p.is_file())
        return {"card": card, "bytes": size}

    return Unit(
        name,
        argv,
        kind="result" if ships else "artifact",
        needs=(f"heads-{CHOSEN}-seed0",) if not ships else ("export", "probe-export"),
        figures=figures,
        uses=_export_uses,
        ships=(f"{SHIP}/default",) if ships else (),
    )


def _variant(settings: DmcsSettings) -> Variant:
    return chosen_variant(settings)


def _export_uses(out: Path) -> dict[str, Any]:
    """The world model an export holds: its source run's step and weight hash."""
    return {"world_model": exported_from(fill(EXPORT, out))}


def _probe_unit(settings: DmcsSettings, name: str, run: str, need: str) -> Unit:
    json_path = f"{OUT}/default-model/{name}.json"
    argv = ["evaluate", "state-probe", "--run", run, "--data", data_path(settings)]
    argv += ["--features", "both", "--max-episodes", str(4 if settings.smoke else MAX_EPISODES)]
    argv += ["--json", json_path, "--quiet"]

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        return {"tasks": payload["tasks"], "mean": payload["mean"]}

    uses = _export_uses if run == EXPORT else model_uses(run)
    return Unit(name, tuple(argv), needs=(need,), figures=figures, uses=uses)


def _tracking_unit(settings: DmcsSettings) -> Unit:
    json_path = f"{OUT}/default-model/tracking-export.json"
    argv = ["evaluate", "tracking", "--run", EXPORT, "--data", data_path(settings)]
    argv += ["--samples", "10" if not settings.smoke else "2", "--json", json_path, "--quiet"]
    if settings.smoke:
        argv += ["--max-windows", "4"]

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        keys = ("r2_observed", "error_observed", "error_predicted")
        return {task: {k: t[k] for k in keys} for task, t in payload["tasks"].items()}

    return Unit(
        "tracking-export", tuple(argv), needs=("export",), figures=figures, uses=_export_uses
    )


def _fidelity_unit(settings: DmcsSettings) -> Unit:
    json_path = f"{OUT}/default-model/fidelity-export.json"
    tasks = ",".join(t for t in TASKS if t in settings.tasks)
    argv = ["evaluate", "dream-fidelity", "--run", EXPORT, "--tasks", tasks]
    argv += ["--heads", "rewards", "--json", json_path, "--quiet"]
    if settings.smoke:
        argv += ["--episodes", "1", "--long-horizon", "4", "--policies", "zero,plus,random"]

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        return {
            task: {h: r["correlation"] for h, r in result["horizons"].items()}
            for task, result in payload["tasks"].items()
        }

    return Unit(
        "fidelity-export", tuple(argv), needs=("export",), figures=figures, uses=_export_uses
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: the same units on a seconds-long setting."""
    settings = DmcsSettings()
    if smoke:
        settings = settings.smoke_setting(chosen=True)
    variant = _variant(settings)
    units = [
        data_unit(settings),
        train_unit(settings, variant, 0),
        heads_unit(settings, variant, 0),
        _export_unit(settings, EXPORT, "export", ships=False),
        _probe_unit(settings, "probe-run", run_dir(variant, 0), f"train-{CHOSEN}-seed0"),
        _probe_unit(settings, "probe-export", EXPORT, "export"),
        _tracking_unit(settings),
        _fidelity_unit(settings),
        _export_unit(settings, f"{SHIP}/default", "ship", ships=True),
    ]
    return Protocol(
        name="default-model",
        summary="the world model shipped in the package (keypoint_wm.load('default')): its "
        "export in float16 and the state probe, tracking and dream fidelity of the export",
        settings={"dmcs": settings.to_json(), "chosen": CHOSEN, "seed": 0},
        units=tuple(units),
        page=lambda results, root: _page(results),
        title="The shipped default model (`keypoint_wm.load()`): what it knows",
        headline=_headline,
    )


def _mean(figures: dict[str, Any], kind: str) -> str:
    value = figures.get("mean", {}).get(kind)
    return "-" if value is None else f"{value:.3f}"


def _headline(results: dict[str, UnitResult]) -> str:
    probe = results.get("probe-export")
    if probe is None or "ship" not in results:
        return 'in progress: "Not shipped yet."'
    size = results["ship"].figures["bytes"] / 1e6
    return (
        f"{size:.2f} MB in float16; state probe, mean over the tasks: positions "
        f"{_mean(probe.figures, 'positions')}, velocities {_mean(probe.figures, 'velocities')}"
    )


def _page(results: dict[str, UnitResult]) -> str:
    lines = header(
        "default-model",
        "The shipped default model",
        f"The `dmcs-cpu` variant `{CHOSEN}` (chosen on the validation split of the "
        "state-probe page and on the dream-fidelity page), seed 0, trained on all six tasks of the DMCS protocol, exported "
        "in float16 with its reward heads (`rewards_hidden+keypoints`) into "
        "`keypoint_wm/bundled/default`: what `keypoint_wm.load()`, the `-latent-v0` env ids "
        "and `LatentObservation(env)` use when given no run.",
    )
    ship = results.get("ship")
    if ship is not None:
        card = ship.figures["card"]
        lines += [
            f"Shipped: {ship.figures['bytes'] / 1e6:.2f} MB; weights "
            f"`{card['weights']}` ({card['dtype']}) from step {card['source']['step']} of "
            f"weights `{card['source']['weights']}`.",
            "",
        ]
    else:
        lines += ["Not shipped yet.", ""]
    run, export = results.get("probe-run"), results.get("probe-export")
    if run is not None or export is not None:
        lines += [
            "## State probe (test R², features `both`): the export against its float32 run",
            "",
            "| task | positions, float32 run | positions, export | velocities, float32 run "
            "| velocities, export |",
            "|---|---|---|---|---|",
        ]
        shown = export if export is not None else run
        assert shown is not None
        tasks = shown.figures["tasks"]
        for task in tasks:

            def cell(result: UnitResult | None, kind: str, task: str = task) -> str:
                if result is None:
                    return "-"
                value = result.figures["tasks"][task][kind]
                return "-" if value is None else f"{value:.3f}"

            lines.append(
                f"| {task} | {cell(run, 'positions')} | {cell(export, 'positions')} | "
                f"{cell(run, 'velocities')} | {cell(export, 'velocities')} |"
            )
        means = [
            _mean(r.figures, kind) if r is not None else "-"
            for kind in ("positions", "velocities")
            for r in (run, export)
        ]
        lines += [f"| mean | {' | '.join(means)} |", ""]
    tracking = results.get("tracking-export")
    if tracking is not None:
        lines += [
            "## Keypoint tracking (the export)",
            "",
            "Held-out R² of the true object positions from the observed keypoints, per object, "
            "and the keypoint error of the best of 10 sampled futures.",
            "",
            "| task | R² per object | error observed | error predicted |",
            "|---|---|---|---|",
        ]
        for task, t in tracking.figures.items():
            r2 = ", ".join(f"{v:.3f}" for v in t["r2_observed"])
            lines.append(
                f"| {task} | {r2} | {t['error_observed']:.3f} | {t['error_predicted']:.3f} |"
            )
        lines.append("")
    fidelity = results.get("fidelity-export")
    if fidelity is not None:
        lines += [
            "## Dream fidelity (the export and its heads)",
            "",
            "Pearson correlation of imagined with real returns of scripted policies "
            "(`keypoint-wm evaluate dream-fidelity`), per horizon.",
            "",
            "| task | horizon | imagined (mean) | imagined (sampled) | filtered |",
            "|---|---|---|---|---|",
        ]
        for task, horizons in fidelity.figures.items():
            for horizon, c in horizons.items():
                cells = [c.get(k) for k in ("imagined_mean", "imagined_sampled", "filtered")]
                text = " | ".join("-" if v is None else f"{v:.3f}" for v in cells)
                lines.append(f"| {task} | {horizon} | {text} |")
        lines.append("")
    lines += units_table(results)
    return "\n".join(lines) + "\n"
