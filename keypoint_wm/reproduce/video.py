"""``reproduce video``: video prediction on the Human3.6M stand-in (paper Fig. 6, S10).

Units: the procedural stand-in for Human3.6M (``data figures``: an articulated figure on the
17-joint skeleton; the real dataset cannot be downloaded here), three ``human36m-cpu``
training seeds on it, and ``evaluate video`` of each run on the data's test split: PSNR and
SSIM of the closest and the furthest of N sampled futures against the truth, beside copying
the last observed frame. The page pools the seeds (mean ± 95% CI) and shows seed 0's curves
per predicted step.

The preset's step count (6,000) was chosen on the test PSNR of one seed before the
validation split existed (docs/measurements.md, "human36m-cpu"); the page says so beside the
figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keypoint_wm.presets import SMOKE_OVERRIDES
from keypoint_wm.reproduce.identity import dataset_fingerprint, weights_hash
from keypoint_wm.reproduce.pages import header, units_table
from keypoint_wm.reproduce.protocol import (
    OUT,
    RESULTS,
    Protocol,
    Unit,
    UnitResult,
    fill,
    read_json,
)

__all__ = ["FIGURES", "VideoSettings", "protocol"]

FIGURES = (
    "psnr_closest",
    "psnr_furthest",
    "psnr_copy_last_frame",
    "ssim_closest",
    "ssim_furthest",
    "ssim_copy_last_frame",
)
"""What a unit records of ``evaluate video``'s JSON: each curve's average over the windows
and the predicted steps."""


@dataclass(frozen=True)
class VideoSettings:
    """The stand-in's draw and size, the training seeds, and the evaluation's sizes."""

    data_seed: int = 0
    sequences: int = 1000
    seeds: tuple[int, ...] = (0, 1, 2)
    samples: int = 100
    max_windows: int = 64
    preset: str = "human36m-cpu"
    smoke: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "data_seed": self.data_seed,
            "sequences": self.sequences,
            "seeds": list(self.seeds),
            "samples": self.samples,
            "max_windows": self.max_windows,
            "preset": self.preset,
            "smoke": self.smoke,
        }

    @property
    def data(self) -> str:
        return f"{OUT}/data/figures-{self.data_seed}" + ("-smoke" if self.smoke else "")

    def run(self, seed: int) -> str:
        return f"{OUT}/runs/{self.preset}/seed_{seed}" + ("-smoke" if self.smoke else "")


def _plot(seed: int) -> str:
    return f"{RESULTS}/video-seed{seed}.png"


def _data_unit(settings: VideoSettings) -> Unit:
    argv = ["data", "figures", "--out", settings.data, "--seed", str(settings.data_seed)]
    argv += ["--sequences", str(settings.sequences), "--quiet"]
    if settings.smoke:
        argv += ["--size", "32", "--frames", "8"]
    return Unit(
        "data",
        tuple(argv),
        kind="artifact",
        uses=lambda out: {"data": dataset_fingerprint(fill(settings.data, out))},
    )


def _train_unit(settings: VideoSettings, seed: int) -> Unit:
    argv = ["train", "--data", settings.data, "--preset", settings.preset, "--seed", str(seed)]
    argv += ["--out", settings.run(seed), "--resume", "--quiet"]
    if settings.smoke:
        for key, value in {**SMOKE_OVERRIDES, "train.steps": 2}.items():
            argv += ["--set", f"{key}={value}"]
    return Unit(f"train-seed{seed}", tuple(argv), kind="artifact", needs=("data",))


def _video_unit(settings: VideoSettings, seed: int) -> Unit:
    json_path = f"{OUT}/video/{settings.preset}-seed{seed}.json"
    run = settings.run(seed)
    argv = ["evaluate", "video", "--run", run, "--data", settings.data]
    argv += ["--samples", str(settings.samples), "--max-windows", str(settings.max_windows)]
    argv += ["--json", json_path, "--quiet"]
    pictures: tuple[str, ...] = ()
    if seed == settings.seeds[0]:
        argv += ["--plot", _plot(seed)]
        pictures = (_plot(seed),)

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        found = {name: payload[name] for name in FIGURES}
        found["test_windows"] = payload["test_windows"]
        found["split"] = payload["split"]
        return found

    def uses(out: Path) -> dict[str, Any]:
        return {
            "world_model": weights_hash(fill(run, out)),
            "data": dataset_fingerprint(fill(settings.data, out)),
        }

    return Unit(
        f"video-seed{seed}",
        tuple(argv),
        needs=(f"train-seed{seed}",),
        figures=figures,
        uses=uses,
        pictures=pictures,
    )


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: a tiny stand-in, one two-step model, two samples."""
    settings = VideoSettings()
    if smoke:
        settings = VideoSettings(sequences=12, seeds=(0,), samples=2, max_windows=2, smoke=True)
    units = [_data_unit(settings)]
    for seed in settings.seeds:
        units += [_train_unit(settings, seed), _video_unit(settings, seed)]
    return Protocol(
        name="video",
        summary="video prediction on the Human3.6M stand-in: PSNR and SSIM of the closest "
        "of 100 sampled futures against copying the last frame, 3 seeds of human36m-cpu",
        settings=settings.to_json(),
        units=tuple(units),
        page=lambda results, root: _page(settings, results),
        title=f"Video prediction on the Human3.6M stand-in (`{settings.preset}`, "
        f"{len(settings.seeds)} seeds)",
        headline=lambda results: _headline(settings, results),
    )


def _rows(settings: VideoSettings, results: dict[str, UnitResult]) -> list[tuple[int, dict]]:
    return [
        (seed, result.figures)
        for seed in settings.seeds
        if (result := results.get(f"video-seed{seed}")) is not None
    ]


def _pooled(rows: list[tuple[int, dict]], name: str, fmt: str) -> str:
    """Mean ± 95% CI over the seeds of figure ``name`` (the value alone for one seed)."""
    import numpy as np

    from keypoint_wm.evaluation.metrics import mean_ci
    from keypoint_wm.evaluation.seeds import plus_minus

    values = np.asarray([figures[name] for _, figures in rows], float)
    if len(values) == 1:
        return format(float(values[0]), fmt)
    mean, half = mean_ci(values)
    return plus_minus(float(mean), float(half), fmt)


def _headline(settings: VideoSettings, results: dict[str, UnitResult]) -> str:
    rows = _rows(settings, results)
    if not rows:
        return f'in progress: "0 of {len(settings.seeds)} seeds."'
    return (
        f"PSNR of the closest of {settings.samples} samples "
        f"{_pooled(rows, 'psnr_closest', '.2f')} dB against "
        f"{_pooled(rows, 'psnr_copy_last_frame', '.2f')} dB for copying the last frame "
        f"(SSIM {_pooled(rows, 'ssim_closest', '.3f')} vs "
        f"{_pooled(rows, 'ssim_copy_last_frame', '.3f')}; {len(rows)} of "
        f"{len(settings.seeds)} seeds)"
    )


def _page(settings: VideoSettings, results: dict[str, UnitResult]) -> str:
    lines = header(
        "video",
        "Video prediction on the Human3.6M stand-in",
        f"The procedural stand-in for Human3.6M (`keypoint-wm data figures`, {settings.sequences}"
        f" sequences, seed {settings.data_seed}: an articulated figure on the 17-joint skeleton "
        "performing one of six actions; the real dataset is not downloadable here), "
        f"`{settings.preset}` trained to its preset's end for each seed "
        f"{', '.join(map(str, settings.seeds))}, then `evaluate video` on the test split: "
        f"{settings.samples} sampled futures per window (at most {settings.max_windows} "
        "windows), the closest and the furthest scored against the truth, beside copying the "
        "last observed frame (paper Fig. 6 and S10). Averages over the windows and the "
        "predicted steps. The preset's step count was chosen on one seed's test PSNR before "
        "the validation split existed (docs/measurements.md, `human36m-cpu`).",
    )
    rows = _rows(settings, results)
    lines += [f"{len(rows)} of {len(settings.seeds)} seeds.", ""]
    if rows:
        lines += [
            "| seed | PSNR closest | PSNR furthest | PSNR copy last frame | SSIM closest | "
            "SSIM furthest | SSIM copy last frame | test windows |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for seed, figures in rows:
            cells = [f"{figures[name]:.2f}" for name in FIGURES[:3]]
            cells += [f"{figures[name]:.3f}" for name in FIGURES[3:]]
            lines.append(f"| {seed} | " + " | ".join(cells) + f" | {figures['test_windows']} |")
        if len(rows) > 1:
            cells = [_pooled(rows, name, ".2f") for name in FIGURES[:3]]
            cells += [_pooled(rows, name, ".3f") for name in FIGURES[3:]]
            lines.append(f"| all {len(rows)} | " + " | ".join(cells) + " | |")
            lines += ["", "(the last row: mean ± 95% interval over the seeds)"]
        closest = sum(f["psnr_closest"] for _, f in rows) / len(rows)
        copy = sum(f["psnr_copy_last_frame"] for _, f in rows) / len(rows)
        verdict = "above" if closest > copy else "not above"
        lines += [
            "",
            f"The closest sample's PSNR, mean of {len(rows)} seed(s): {closest:.2f} dB, "
            f"{verdict} copying the last frame ({copy:.2f} dB).",
            "",
        ]
        first = settings.seeds[0]
        if f"video-seed{first}" in results:
            lines += [
                f"Per predicted step, seed {first} (mean and 95% interval over the windows):",
                "",
                f"![video prediction, seed {first}](video/video-seed{first}.png)",
                "",
            ]
    lines += units_table(results)
    return "\n".join(lines) + "\n"
