"""The units every DMCS result shares: the random-action dataset and the world-model seeds.

The state probe, dream fidelity, reward and agent protocols all read the same collection
(the paper's six tasks, ``episodes`` random-action episodes per task, collect seed 0) and
the same world models (one run per variant and seed), so that a shared ``--out`` makes each
once. A variant is a preset plus ``--set`` overrides; the unit names say which
(``train-struct-seed0``), and each run lives in ``OUT/runs/<variant>/seed_<s>``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from keypoint_wm.choices import PAPER_TASKS
from keypoint_wm.presets import SMOKE_OVERRIDES
from keypoint_wm.reproduce.identity import dataset_fingerprint, weights_hash
from keypoint_wm.reproduce.protocol import OUT, Unit, UnitResult, fill

__all__ = [
    "CHOSEN",
    "DmcsSettings",
    "Variant",
    "chosen_variant",
    "data_unit",
    "dataset_figures",
    "run_dir",
    "seed_results",
    "train_unit",
]


CHOSEN = "struct-hm32"
"""The Struct-VRNN variant chosen on the validation split (the state-probe and dream-fidelity
pages): the world model that ships (``reproduce default-model``), that the agents read
(``reproduce agents``) and that the reward table compares with CNN-VRNN (``reproduce
rewards``)."""


@dataclass(frozen=True)
class Variant:
    """A world model: ``preset`` with ``overrides`` (``--set KEY=VALUE`` strings)."""

    name: str
    preset: str = "dmcs-cpu"
    overrides: tuple[str, ...] = ()
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"preset": self.preset, "set": list(self.overrides), "label": self.label}

    def heading(self) -> str:
        """The page's section heading: the label, the preset and the overrides."""
        sets = "".join(f" `--set {s}`" for s in self.overrides)
        return f"## {self.label or self.name} (`{self.preset}`{sets})"


@dataclass(frozen=True)
class DmcsSettings:
    """The dataset and the world models of the DMCS protocols.

    ``smoke`` shrinks everything (a few short 32x32 episodes, two-step models of
    :data:`~keypoint_wm.presets.SMOKE_OVERRIDES`) to check a protocol end to end.
    """

    tasks: tuple[str, ...] = PAPER_TASKS
    episodes: int = 250
    steps: int = 200
    seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[Variant, ...] = (
        Variant("struct", label="Struct-VRNN"),
        Variant(
            "struct-k64",
            overrides=("model.num_keypoints=64",),
            label="Struct-VRNN, the paper's 64 keypoints",
        ),
        Variant(
            "struct-hm32",
            overrides=("model.heatmap_width=32", "model.keypoint_width=3.0"),
            label="Struct-VRNN, 32 x 32 heatmaps (the same Gaussians in image terms)",
        ),
        Variant(
            "struct-8x8",
            overrides=("model.num_observed_steps=8", "model.num_predicted_steps=8"),
            label="Struct-VRNN, the paper's 8 + 8 steps",
        ),
    )
    smoke: bool = False
    size: int = 64

    def smoke_setting(
        self,
        seeds: tuple[int, ...] = (0,),
        variants: int | None = 1,
        chosen: bool = False,
        size: int = 32,
    ) -> DmcsSettings:
        """The same protocol on cartpole-balance, 16 episodes of 12 steps of ``size`` pixels
        (64 for a protocol that reads the shipped model), ``seeds`` and the first ``variants``
        variants (None: all), or with ``chosen`` the :data:`CHOSEN` one."""
        kept = self.variants if variants is None else self.variants[:variants]
        return replace(
            self,
            tasks=("cartpole-balance",),
            episodes=16,
            steps=12,
            seeds=seeds,
            variants=(chosen_variant(self),) if chosen else kept,
            smoke=True,
            size=size,
        )

    @property
    def data_name(self) -> str:
        name = f"dmcs{self.episodes}" + ("-smoke" if self.smoke else "")
        return name + ("" if self.size == (32 if self.smoke else 64) else f"-{self.size}px")

    def to_json(self) -> dict[str, Any]:
        return {
            "tasks": list(self.tasks),
            "episodes": self.episodes,
            "steps": self.steps,
            "collect_seed": self.seed,
            "seeds": list(self.seeds),
            "variants": {v.name: v.to_json() for v in self.variants},
            "smoke": self.smoke,
        }


def chosen_variant(settings: DmcsSettings) -> Variant:
    """The :data:`CHOSEN` variant of ``settings``."""
    return next(v for v in settings.variants if v.name == CHOSEN)


def data_path(settings: DmcsSettings) -> str:
    return f"{OUT}/data/{settings.data_name}"


def run_dir(variant: Variant, seed: int) -> str:
    """``{out}/runs/<variant>/seed_<s>`` (a folder of seeds, as ``train --seeds`` writes)."""
    return f"{OUT}/runs/{variant.name}/seed_{seed}"


def data_unit(settings: DmcsSettings) -> Unit:
    """``collect`` the protocol's dataset (an artifact: resumable, byte-identical per seed)."""
    argv = [
        "collect",
        "--domains",
        ",".join(settings.tasks),
        "--episodes",
        str(settings.episodes),
        "--steps",
        str(settings.steps),
        "--seed",
        str(settings.seed),
        "--out",
        data_path(settings),
        "--workers",
        "{threads}",
        "--quiet",
    ]
    if settings.size != 64:
        argv += ["--size", str(settings.size)]

    def identity(out: Path) -> dict[str, Any]:
        return {"data": dataset_fingerprint(fill(data_path(settings), out))}

    return Unit(
        "data",
        tuple(argv),
        kind="artifact",
        uses=identity,
        figures=lambda out: dataset_figures(data_path(settings), out),
    )


def dataset_figures(template: str, out: Path) -> dict[str, Any]:
    """The episode count and bytes on disk of the dataset at ``template`` under ``out``."""
    from keypoint_wm.data.episodes import iter_episode_files

    files = list(iter_episode_files(fill(template, out)))
    return {"episodes": len(files), "bytes": sum(f.stat().st_size for f in files)}


def train_unit(
    settings: DmcsSettings,
    variant: Variant,
    seed: int,
    data: str | None = None,
    data_unit_name: str = "data",
) -> Unit:
    """``train`` one world-model seed of ``variant`` (an artifact: ``--resume`` continues) on
    the protocol's dataset, or on ``data`` (a ``{out}`` path) made by ``data_unit_name``."""
    data = data_path(settings) if data is None else data
    sets = list(variant.overrides)
    if settings.smoke:
        sets += [f"{k}={v}" for k, v in SMOKE_OVERRIDES.items()] + ["train.steps=2"]
        sets += ["train.validation_fraction=0.25", "train.test_fraction=0.25"]
    argv = [
        "train",
        "--data",
        data,
        "--preset",
        variant.preset,
        "--seed",
        str(seed),
        "--out",
        run_dir(variant, seed),
        "--resume",
        "--quiet",
    ]
    for value in sets:
        argv += ["--set", value]

    def identity(out: Path) -> dict[str, Any]:
        return {
            "world_model": weights_hash(fill(run_dir(variant, seed), out)),
            "data": dataset_fingerprint(fill(data, out)),
        }

    def figures(out: Path) -> dict[str, Any]:
        probe = fill(run_dir(variant, seed), out) / "probe.csv"
        if not probe.exists():
            return {}
        header, *rows = probe.read_text().strip().splitlines()
        last = dict(zip(header.split(","), rows[-1].split(","), strict=True)) if rows else {}
        return {"last_validation_probe": last}

    return Unit(
        f"train-{variant.name}-seed{seed}",
        tuple(argv),
        kind="artifact",
        needs=(data_unit_name,),
        figures=figures,
        uses=identity,
    )


def seed_results(
    settings: DmcsSettings, variant: Variant, results: dict[str, UnitResult], prefix: str
) -> dict[int, UnitResult]:
    """The ``<prefix>-<variant>-seed<s>`` records among ``results`` (the current ones,
    :meth:`~keypoint_wm.reproduce.protocol.Protocol.current`), by seed: what a page pools."""
    return {
        seed: results[name]
        for seed in settings.seeds
        if (name := f"{prefix}-{variant.name}-seed{seed}") in results
    }
