"""``reproduce gym-envs``: the pipeline on Gymnasium environments nobody tuned it on.

The bars of the issue on any Gymnasium environment (docs/your-own-environment.md): on a
Gymnasium MuJoCo task the state probe's positions (test R^2, mean of 3 world-model seeds)
reach 0.8, and on Pong the keypoints are shown on test frames and probed against the RAM
bytes of the ball and the paddles (AtariARI's annotation, the data's ``ram_bytes``).

Units, per environment: its random-action collection (``collect --env``), world-model seeds
of the chosen Struct-VRNN's settings (the ``dmcs-cpu`` preset with
:data:`~keypoint_wm.reproduce.dmcs.CHOSEN`'s overrides, untouched for these data), and per
seed one ``evaluate state-probe``; seed 0's also writes the keypoint GIF beside the records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keypoint_wm.reproduce.dmcs import (
    DmcsSettings,
    Variant,
    chosen_variant,
    dataset_figures,
    run_dir,
    train_unit,
)
from keypoint_wm.reproduce.identity import dataset_fingerprint, model_uses
from keypoint_wm.reproduce.pages import Figures, header, over_seeds, units_table
from keypoint_wm.reproduce.protocol import OUT, RESULTS, Protocol, Unit, UnitResult, fill
from keypoint_wm.reproduce.state_probe import MAX_EPISODES, probe_command, probe_figures

__all__ = ["ENVS", "POSITIONS_BAR", "GymData", "protocol"]

POSITIONS_BAR = 0.8
"""Test R^2 of the position parts a Gymnasium MuJoCo task's probe must reach (mean of 3
world-model seeds)."""


@dataclass(frozen=True)
class GymData:
    """One environment's collection and the world-model seeds trained on it."""

    name: str
    env_id: str
    label: str
    env_kwargs: str | None = None  # JSON, as ``--env-kwargs`` takes it
    crop: str | None = None
    episodes: int = 200
    steps: int = 200
    size: int = 64
    seeds: tuple[int, ...] = (0, 1, 2)
    bar: bool = False  # the positions bar applies
    note: str = ""  # told apart from another entry of the same id in the headline

    @property
    def headline_name(self) -> str:
        return f"{self.env_id} ({self.note})" if self.note else self.env_id

    def to_json(self) -> dict[str, Any]:
        return {
            "env": self.env_id,
            "env_kwargs": self.env_kwargs,
            "crop": self.crop,
            "episodes": self.episodes,
            "steps": self.steps,
            "size": self.size,
            "seeds": list(self.seeds),
        }


ENVS = (
    GymData(
        "halfcheetah",
        "HalfCheetah-v5",
        "Gymnasium MuJoCo: HalfCheetah-v5 (rendered at 128 x 128, area-resized to 64 x 64)",
        env_kwargs='{"width": 128, "height": 128}',
        bar=True,
    ),
    GymData(
        "halfcheetah-close",
        "HalfCheetah-v5",
        "Gymnasium MuJoCo: HalfCheetah-v5 with the tracking camera at 2.5 (default 4.0) "
        "and 10 degrees of elevation, so that the body fills the frame (rendered at 128 x "
        "128, area-resized to 64 x 64); one seed: a check of the camera, not pursued once "
        "seed 0's positions fell below the untrained model's",
        env_kwargs='{"width": 128, "height": 128, '
        '"default_camera_config": {"distance": 2.5, "elevation": -10.0}}',
        seeds=(0,),
        note="closer camera",
    ),
    GymData(
        "pong",
        "ALE/Pong-v5",
        "Atari: ALE/Pong-v5 (the playfield: the score's 34 rows cut off the top and the "
        "border's 16 off the bottom, 160 x 160 area-resized to 64 x 64)",
        crop="34,16,0,0",
        seeds=(0,),
    ),
)
"""The environments, in page order."""


def _smoke(env: GymData) -> GymData:
    """The entry on a seconds-long setting: 32 x 32 renders (its other kwargs kept)."""
    kwargs = None
    if env.env_kwargs:
        kwargs = json.dumps(json.loads(env.env_kwargs) | {"width": 32, "height": 32})
    return replace(env, env_kwargs=kwargs, episodes=8, steps=12, size=32, seeds=(0,))


def _data_path(env: GymData, smoke: bool) -> str:
    return f"{OUT}/data/{env.name}" + ("-smoke" if smoke else "")


def _data_unit(env: GymData, smoke: bool) -> Unit:
    argv = ["collect", "--env", env.env_id]
    if env.env_kwargs:
        argv += ["--env-kwargs", env.env_kwargs]
    if env.crop:
        argv += ["--crop", env.crop]
    argv += [
        "--episodes", str(env.episodes), "--steps", str(env.steps), "--size", str(env.size),
        "--seed", "0", "--out", _data_path(env, smoke), "--workers", "{threads}", "--quiet",
    ]  # fmt: skip
    path = _data_path(env, smoke)
    return Unit(
        f"data-{env.name}",
        tuple(argv),
        kind="artifact",
        uses=lambda out: {"data": dataset_fingerprint(fill(path, out))},
        figures=lambda out: dataset_figures(path, out),
    )


def _gif(env: GymData) -> str:
    return f"{RESULTS}/{env.name}-keypoints.gif"


def _probe_unit(env: GymData, variant: Variant, seed: int, smoke: bool) -> Unit:
    run = run_dir(variant, seed)
    json_path = f"{OUT}/gym-envs/{env.name}-seed{seed}.json"
    argv = probe_command(run, _data_path(env, smoke), json_path, smoke)
    pictures: tuple[str, ...] = ()
    if seed == env.seeds[0]:
        argv += ["--gif", _gif(env)]
        pictures = (_gif(env),)
    return Unit(
        f"probe-{env.name}-seed{seed}",
        tuple(argv),
        needs=(f"train-{env.name}-seed{seed}",),
        figures=probe_figures(json_path),
        uses=model_uses(run),
        pictures=pictures,
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: the same units on a seconds-long setting."""
    dmcs = DmcsSettings()
    chosen = chosen_variant(dmcs)
    if smoke:
        dmcs = dmcs.smoke_setting(chosen=True)
    envs = tuple(_smoke(e) for e in ENVS) if smoke else ENVS
    units = []
    for env in envs:
        variant = Variant(env.name, chosen.preset, chosen.overrides, env.label)
        units.append(_data_unit(env, smoke))
        for seed in env.seeds:
            units.append(
                train_unit(dmcs, variant, seed, _data_path(env, smoke), f"data-{env.name}")
            )
            units.append(_probe_unit(env, variant, seed, smoke))
    return Protocol(
        name="gym-envs",
        summary="the pipeline on Gymnasium environments nobody tuned it on: HalfCheetah-v5's "
        "state probe over 3 world-model seeds, Pong's keypoints and its RAM probe",
        settings={
            "envs": {e.name: e.to_json() for e in envs},
            "model": chosen.to_json(),
            "probe": {"features": "both", "max_episodes": 4 if smoke else MAX_EPISODES},
        },
        units=tuple(units),
        page=lambda results, root: _page(envs, chosen, results, root),
        title="Your own environment: the pipeline on Gymnasium MuJoCo and Atari",
        headline=lambda results: _headline(envs, results),
    )


def _fresh(env: GymData, results: dict[str, UnitResult]) -> dict[int, UnitResult]:
    return {s: r for s in env.seeds if (r := results.get(f"probe-{env.name}-seed{s}"))}


def _summary(env: GymData, results: dict[str, UnitResult]) -> Any:
    fresh = _fresh(env, results)
    return over_seeds({f"seed {s}": Figures(r.figures) for s, r in sorted(fresh.items())})


def _headline(envs: tuple[GymData, ...], results: dict[str, UnitResult]) -> str:
    from keypoint_wm.evaluation.seeds import plus_minus

    cells = []
    for env in envs:
        if not _fresh(env, results):
            continue
        summary = _summary(env, results)
        task = next(iter(summary.mean["tasks"]))
        values, halves = summary.mean["tasks"][task], (summary.ci or {}).get("tasks", {})
        half = halves.get(task, {}) if halves else {}
        if values.get("named"):
            floor = summary.mean["untrained"]["tasks"][task].get("named", {})
            positions = [  # the objects' coordinates that vary (a paddle's x never does)
                n for n, v in values["named"].items() if n.endswith(("_x", "_y")) and v is not None
            ]
            trained = ", ".join(
                f"{n} {plus_minus(values['named'][n], None, '.3f')}" for n in positions
            )
            untrained = ", ".join(plus_minus(floor.get(n), None, ".3f") for n in positions)
            cells.append(f"{env.headline_name}: RAM bytes {trained} (untrained: {untrained})")
        else:
            cells.append(
                f"{env.headline_name}: positions "
                f"{plus_minus(values['positions'], half.get('positions'), '.3f')}, velocities "
                f"{plus_minus(values['velocities'], half.get('velocities'), '.3f')} "
                f"({len(_fresh(env, results))} seed(s))"
            )
    if not cells:
        return 'in progress: "No probe finished yet"'
    return "state probe, test R²: " + "; ".join(cells)


def _page(
    envs: tuple[GymData, ...], chosen: Variant, results: dict[str, UnitResult], root: Path
) -> str:
    from keypoint_wm.evaluation.state_probe_report import format_state_probe, plot_state_probe

    sets = " ".join(f"`--set {s}`" for s in chosen.overrides)
    lines = header(
        "gym-envs",
        "Your own environment: the pipeline on Gymnasium MuJoCo and Atari",
        "Random-action episodes collected with `keypoint-wm collect --env`, world models of "
        f"the chosen Struct-VRNN's settings (`{chosen.preset}` {sets}, nothing tuned on these "
        "data) and the state probe (docs/your-own-environment.md): a ridge regression from "
        "the filtered latent at frame t (keypoints and h_{t-1}) to the state at frame t, "
        "fitted on training-split episodes, its strength chosen on validation episodes, "
        "scored on test episodes. HalfCheetah's state is its observation, named joint by "
        "joint (positions: rootz, rooty through its cosine and sine, the six leg joints); "
        "Pong's is the console's RAM, scored byte by byte where AtariARI names the byte.",
    )
    for env in envs:
        fresh = _fresh(env, results)
        lines += [f"## {env.label}", ""]
        data = results.get(f"data-{env.name}")
        if data is not None:
            lines += [
                f"{data.figures.get('episodes')} episodes of up to {env.steps} steps, "
                f"collected by `{data.command}`.",
                "",
            ]
        if not fresh:
            lines += [f"No probe finished yet (of {len(env.seeds)} seed(s)).", ""]
            continue
        summary = _summary(env, results)
        picture = root / f"gym-envs-{env.name}.png"
        plot_state_probe(summary, picture)
        lines += [
            f"{len(fresh)} of {len(env.seeds)} seed(s).",
            "",
            format_state_probe(summary),
            "",
            *_bar(env, summary, len(fresh)),
            f"![state probe, {env.name}]({picture.name})",
            "",
            f"Keypoints of seed {env.seeds[0]} on the first test episode:",
            "",
            f"![keypoints, {env.name}](gym-envs/{env.name}-keypoints.gif)",
            "",
        ]
    lines += units_table(results)
    return "\n".join(lines) + "\n"


def _bar(env: GymData, summary: Any, done: int) -> list[str]:
    if not env.bar:
        return []
    task = next(iter(summary.mean["tasks"]))
    positions = summary.mean["tasks"][task]["positions"] or 0.0
    scope = f"mean of {done} seed(s)" + ("" if done >= len(env.seeds) else ", 3 wanted")
    verdict = "met" if positions >= POSITIONS_BAR and done >= len(env.seeds) else "not met"
    return [
        f"Bar (positions >= {POSITIONS_BAR}, {scope}): {positions:.3f}: {verdict}.",
        "",
    ]
