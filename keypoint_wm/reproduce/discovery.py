"""``reproduce discovery``: do the keypoints find the objects on data nobody tuned on?

Units: three new draws of the built-in Basketball simulator (``data basketball --seed
11|12|13``), two ``basketball-cpu`` training seeds on each, and ``evaluate tracking`` of each
run on its draw's test split (R^2 per object of a linear map from keypoints to the ball and
the five players, best of 50 sampled futures). The page lists every run and pools all of
them per object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keypoint_wm.presets import SMOKE_OVERRIDES
from keypoint_wm.reproduce.identity import dataset_fingerprint, weights_hash
from keypoint_wm.reproduce.pages import header, units_table
from keypoint_wm.reproduce.protocol import OUT, Protocol, Unit, UnitResult, fill, read_json

__all__ = ["DiscoverySettings", "protocol"]

OBJECTS = ("ball", "player 1", "player 2", "player 3", "player 4", "player 5")


@dataclass(frozen=True)
class DiscoverySettings:
    """Draws of the simulator (its seeds), training seeds, and the sizes."""

    draws: tuple[int, ...] = (11, 12, 13)
    seeds: tuple[int, ...] = (0, 1)
    sequences: int = 1000
    samples: int = 50
    smoke: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "draws": list(self.draws),
            "seeds": list(self.seeds),
            "sequences": self.sequences,
            "samples": self.samples,
            "preset": "basketball-cpu",
            "smoke": self.smoke,
        }


def _data(draw: int, smoke: bool) -> str:
    return f"{OUT}/data/basketball-{draw}" + ("-smoke" if smoke else "")


def _run(draw: int, seed: int) -> str:
    return f"{OUT}/runs/basketball-{draw}/seed_{seed}"


def _units(settings: DiscoverySettings, draw: int) -> list[Unit]:
    data = _data(draw, settings.smoke)
    argv = [
        "data",
        "basketball",
        "--out",
        data,
        "--seed",
        str(draw),
        "--sequences",
        str(settings.sequences),
        "--quiet",
    ]
    if settings.smoke:
        argv += ["--size", "32"]

    def data_id(out: Path) -> dict[str, Any]:
        return {"data": dataset_fingerprint(fill(data, out))}

    units = [Unit(f"data-{draw}", tuple(argv), kind="artifact", uses=data_id)]
    for seed in settings.seeds:
        run = _run(draw, seed)
        train = [
            "train",
            "--data",
            data,
            "--preset",
            "basketball-cpu",
            "--seed",
            str(seed),
            "--out",
            run,
            "--resume",
            "--quiet",
        ]
        if settings.smoke:
            for key, value in {**SMOKE_OVERRIDES, "train.steps": 2}.items():
                train += ["--set", f"{key}={value}"]
        units.append(
            Unit(f"train-{draw}-seed{seed}", tuple(train), kind="artifact", needs=(f"data-{draw}",))
        )
        units.append(_tracking_unit(settings, draw, seed))
    return units


def _tracking_unit(settings: DiscoverySettings, draw: int, seed: int) -> Unit:
    json_path = f"{OUT}/discovery/tracking-{draw}-seed{seed}.json"
    run = _run(draw, seed)
    argv = (
        "evaluate",
        "tracking",
        "--run",
        run,
        "--data",
        _data(draw, settings.smoke),
        "--samples",
        str(settings.samples),
        "--json",
        json_path,
        "--plot",
        json_path.removesuffix(".json") + ".png",
        "--quiet",
    )

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        return {
            "r2_observed": payload["r2_observed"],
            "error_predicted": payload["error_predicted"],
        }

    def uses(out: Path) -> dict[str, Any]:
        return {
            "world_model": weights_hash(fill(run, out)),
            "data": dataset_fingerprint(fill(_data(draw, settings.smoke), out)),
        }

    return Unit(
        f"tracking-{draw}-seed{seed}",
        argv,
        needs=(f"train-{draw}-seed{seed}",),
        figures=figures,
        uses=uses,
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: one tiny draw, one two-step model."""
    settings = DiscoverySettings()
    if smoke:
        settings = DiscoverySettings(draws=(11,), seeds=(0,), sequences=12, samples=2, smoke=True)
    units = [u for draw in settings.draws for u in _units(settings, draw)]
    return Protocol(
        name="discovery",
        summary="object discovery on new Basketball draws: tracking R^2 per object of "
        "basketball-cpu runs, draws x training seeds",
        settings=settings.to_json(),
        units=tuple(units),
        page=lambda results, root: _page(settings, results),
        title="Object discovery on new Basketball draws (`basketball-cpu`, "
        f"{len(settings.draws)} draws x {len(settings.seeds)} seeds)",
        headline=lambda results: _headline(settings, results),
    )


def _rows(
    settings: DiscoverySettings, results: dict[str, UnitResult]
) -> list[tuple[int, int, list[float]]]:
    return [
        (draw, seed, result.figures["r2_observed"])
        for draw in settings.draws
        for seed in settings.seeds
        if (result := results.get(f"tracking-{draw}-seed{seed}")) is not None
    ]


def _headline(settings: DiscoverySettings, results: dict[str, UnitResult]) -> str:
    rows = _rows(settings, results)
    if not rows:
        return 'in progress: "0 of ' + f'{len(settings.draws) * len(settings.seeds)} runs."'
    lowest = min(min(r2) for _, _, r2 in rows)
    return (
        f"test R² per object, {len(rows)} of {len(settings.draws) * len(settings.seeds)} "
        f"runs: the lowest of any object in any run {lowest:.4f}"
    )


def _page(settings: DiscoverySettings, results: dict[str, UnitResult]) -> str:
    import numpy as np

    from keypoint_wm.evaluation.metrics import mean_ci
    from keypoint_wm.evaluation.seeds import plus_minus

    lines = header(
        "discovery",
        "Object discovery on Basketball draws nobody tuned on",
        f"Draws {', '.join(map(str, settings.draws))} of the built-in Basketball simulator "
        f"({settings.sequences} sequences each) x training seeds "
        f"{', '.join(map(str, settings.seeds))} of `basketball-cpu`, each trained to its "
        "preset's end; then `evaluate tracking` on the draw's test split: held-out R^2 per "
        "object of a linear map from the keypoints to the ball and the five drawn players "
        f"(best of {settings.samples} sampled futures).",
    )
    rows = _rows(settings, results)
    count = len(settings.draws) * len(settings.seeds)
    names = [
        OBJECTS[i] if i < len(OBJECTS) else f"object {i}"
        for i in range(max((len(r) for _, _, r in rows), default=0))
    ]
    lines += [
        f"{len(rows)} of {count} runs.",
        "",
        "| draw | seed | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for draw, seed, r2 in rows:
        lines.append(f"| {draw} | {seed} | " + " | ".join(f"{v:.4f}" for v in r2) + " |")
    if len(rows) > 1:
        values = np.asarray([r for _, _, r in rows], float)
        mean, half = mean_ci(values)
        cells = [plus_minus(float(m), float(h), ".4f") for m, h in zip(mean, half, strict=True)]
        lines.append(f"| all {len(rows)} runs | | " + " | ".join(cells) + " |")
        lines += ["", "(the last row: mean ± 95% interval over the runs)"]
    lines += [""]
    lines += units_table(results)
    return "\n".join(lines) + "\n"
