"""``reproduce gpu-check``: the CUDA path end to end on one GPU.

What ``scripts/gpu_check.sh`` did part by part, as units: a Basketball draw whose reward is
the ball's x (``data basketball --reward ball-x``, so that reward heads have something to
predict without DMCS data), the ``cuda``-marked tests (:mod:`keypoint_wm.reproduce.suite`),
the training-step benchmarks of ``dmcs`` and ``basketball-cpu``, a ``basketball-cpu`` run on
the GPU and, on it, tracking, video metrics, reward heads and the latent wrapper on replayed
frames (``bench replay``; no dm_control on a GPU machine), then N replicas side by side
(``train --seeds``) and a run fed by the DataLoader. Every knob is a field of
:class:`GpuCheckSettings`; the page (:mod:`keypoint_wm.reproduce.gpu_check_page`) shows
each unit's figures, its wall time and the GPU.

Without CUDA, the protocol refuses to run (:func:`machine_lacks`). ``--smoke`` runs the same
units on the CPU on a seconds-long setting; there the CUDA tests run too and are recorded as
skipped, with pytest's reason.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from keypoint_wm.presets import SMOKE_OVERRIDES
from keypoint_wm.reproduce.gpu_check_page import headline, page
from keypoint_wm.reproduce.gpu_check_settings import ROOT, GpuCheckSettings
from keypoint_wm.reproduce.identity import dataset_fingerprint, weights_hash
from keypoint_wm.reproduce.protocol import Protocol, Unit, fill, read_json

__all__ = ["GpuCheckSettings", "machine_lacks", "protocol", "training_speed"]


def machine_lacks(settings: GpuCheckSettings) -> str | None:
    """What this machine lacks to run the check, in one line, or None: a CUDA device (unless
    on the CPU), and the test file (the check runs from the repository's root)."""
    if settings.device != "cpu":
        import torch

        if not torch.cuda.is_available():
            return (
                "needs a CUDA GPU, and torch sees none on this machine (--smoke runs the "
                "same units on the CPU, on a tiny setting)"
            )
    if not Path(settings.tests).is_file():
        return f"runs the repository's {settings.tests}: run it from the repository's root"
    return None


def training_speed(run: Path) -> dict[str, Any]:
    """A run's training speed from its TensorBoard: the median of the logged steps per
    second, each session's first logged window left out (warm-up and CUDA-graph capture),
    and how many windows that median pools."""
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
        EventAccumulator,
    )

    tag, values = "train/steps_per_second", []
    folders = sorted({p.parent for p in (run / "tensorboard").rglob("events.out.tfevents.*")})
    for folder in folders:
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        if tag in events.Tags()["scalars"]:
            values += [event.value for event in events.Scalars(tag)][1:]
    values.sort()
    median = values[len(values) // 2] if values else None
    return {"median_steps_per_second": median, "windows": len(values)}


def _last_probe(run: Path) -> dict[str, str]:
    """The last row of a run's validation probe (``probe.csv``), by column."""
    probe = run / "probe.csv"
    if not probe.exists():
        return {}
    header, *rows = probe.read_text().strip().splitlines()
    return dict(zip(header.split(","), rows[-1].split(","), strict=True)) if rows else {}


def _train_argv(settings: GpuCheckSettings, out: str, steps: int, *extra: str) -> tuple[str, ...]:
    argv = ["train", "--data", settings.data, "--preset", "basketball-cpu", "--device"]
    argv += [settings.device, "--steps", str(steps), "--seed", "0", *extra, "--out", out]
    argv += ["--resume", "--quiet"]
    if settings.smoke:
        for key, value in SMOKE_OVERRIDES.items():
            argv += ["--set", f"{key}={value}"]
    return tuple(argv)


def _data_unit(settings: GpuCheckSettings) -> Unit:
    argv = ["data", "basketball", "--out", settings.data, "--sequences", str(settings.sequences)]
    argv += ["--size", str(settings.size), "--seed", "0", "--reward", "ball-x", "--quiet"]

    def figures(out: Path) -> dict[str, Any]:
        from keypoint_wm.data.episodes import iter_episode_files

        files = list(iter_episode_files(fill(settings.data, out)))
        return {"episodes": len(files), "bytes": sum(f.stat().st_size for f in files)}

    def uses(out: Path) -> dict[str, Any]:
        return {"data": dataset_fingerprint(fill(settings.data, out))}

    return Unit("data", tuple(argv), kind="artifact", figures=figures, uses=uses)


def _tests_unit(settings: GpuCheckSettings) -> Unit:
    json_path = f"{ROOT}/tests-cuda.json"
    argv = ("--json", json_path, "--", "-m", "cuda", settings.tests)

    def figures(out: Path) -> dict[str, Any]:
        return dict(read_json(json_path, out))

    return Unit(
        "tests-cuda", argv, figures=figures, module="keypoint_wm.reproduce.suite", exclusive=True
    )


def _bench_unit(settings: GpuCheckSettings, preset: str, steps: int) -> Unit:
    json_path = f"{ROOT}/bench-{preset}.json"
    argv = ["bench", "train", "--device", settings.device, "--preset", preset]
    argv += ["--steps", str(steps), "--warmup", str(settings.bench_warmup)]
    if settings.bench_batch is not None:
        argv += ["--batch", str(settings.bench_batch)]

    def figures(out: Path) -> dict[str, Any]:
        payload = read_json(json_path, out)
        return {k: v for k, v in payload.items() if k not in ("per_step", "samples", "all_times")}

    return Unit(f"bench-{preset}", (*argv, "--json", json_path), figures=figures, exclusive=True)


def _world_model(settings: GpuCheckSettings) -> Callable[[Path], dict[str, Any]]:
    """``uses`` of a unit that reads the trained run: its weights and the data."""

    def uses(out: Path) -> dict[str, Any]:
        return {
            "world_model": weights_hash(fill(settings.run("basketball"), out)),
            "data": dataset_fingerprint(fill(settings.data, out)),
        }

    return uses


def _train_unit(settings: GpuCheckSettings) -> Unit:
    run = settings.run("basketball")

    def figures(out: Path) -> dict[str, Any]:
        return {**training_speed(fill(run, out)), "last_probe": _last_probe(fill(run, out))}

    return Unit(
        "train",
        _train_argv(settings, run, settings.steps),
        kind="artifact",
        needs=("data",),
        figures=figures,
        uses=_world_model(settings),
        exclusive=True,
    )


def _on_the_run(settings: GpuCheckSettings) -> list[Unit]:
    """The units that read the trained run: tracking, video, reward heads, the wrapper."""
    run, data, device = settings.run("basketball"), settings.data, settings.device
    common = ("--run", run, "--data", data, "--device", device)
    tracking, video = f"{ROOT}/tracking.json", f"{ROOT}/video.json"
    rewards, replay = f"{ROOT}/rewards", f"{ROOT}/replay.json"

    def tracking_figures(out: Path) -> dict[str, Any]:
        payload = read_json(tracking, out)
        keys = ["r2_observed", "error_observed", "error_predicted"]
        keys += ["error_predicted_last_observed_baseline", "error_mean_baseline"]
        return {k: payload[k] for k in keys}

    def video_figures(out: Path) -> dict[str, Any]:
        payload = read_json(video, out)
        keys = [f"{m}_{w}" for m in ("psnr", "ssim") for w in ("closest", "furthest")]
        keys += ["psnr_copy_last_frame", "ssim_copy_last_frame", "test_windows", "samples"]
        return {k: payload[k] for k in keys}

    def reward_figures(out: Path) -> dict[str, Any]:
        tasks = read_json(f"{rewards}/train_summary.json", out)["tasks"]
        keys = ["test_normalized_mse", "validation_normalized_mse", "train_windows"]
        keys += ["test_windows", "best_step"]
        return {"tasks": {task: {k: f[k] for k in keys} for task, f in tasks.items()}}

    def replay_figures(out: Path) -> dict[str, Any]:
        return dict(read_json(replay, out))

    commands = (
        ("tracking", ("evaluate", "tracking", "--samples", str(settings.tracking_samples),
                      "--json", tracking, "--quiet"), tracking_figures),
        ("video", ("evaluate", "video", "--samples", str(settings.video_samples),
                   "--max-windows", str(settings.video_windows), "--json", video, "--quiet"),
         video_figures),
        ("rewards", ("rewards", "train", "--stride", str(settings.reward_stride),
                     "--steps", str(settings.reward_steps), "--out", rewards, "--quiet"),
         reward_figures),
        ("replay", ("bench", "replay", "--steps", str(settings.replay_steps), "--json", replay),
         replay_figures),
    )  # fmt: skip
    uses = _world_model(settings)
    return [
        Unit(
            name,
            (*argv[:2], *common, *argv[2:]),
            needs=("train",),
            figures=figures,
            uses=uses,
            exclusive=name == "replay",  # a timing: alone on the device
        )
        for name, argv, figures in commands
    ]


def _speed_units(settings: GpuCheckSettings) -> list[Unit]:
    """Training speed: ``seeds`` replicas side by side, and a run fed by the DataLoader."""
    seeds, loader = settings.run("seeds"), settings.run("loader")

    def data(out: Path) -> dict[str, Any]:
        return {"data": dataset_fingerprint(fill(settings.data, out))}

    def seeds_figures(out: Path) -> dict[str, Any]:
        runs = sorted(fill(seeds, out).glob("seed_*"))
        return {r.name: {**training_speed(r), "last_probe": _last_probe(r)} for r in runs}

    def loader_figures(out: Path) -> dict[str, Any]:
        return {**training_speed(fill(loader, out)), "last_probe": _last_probe(fill(loader, out))}

    return [
        Unit(
            "train-seeds",
            _train_argv(settings, seeds, settings.steps, "--seeds", str(settings.seeds)),
            needs=("data",),
            figures=seeds_figures,
            uses=data,
            exclusive=True,
        ),
        Unit(
            "train-loader",
            _train_argv(settings, loader, settings.loader_steps, "--data-placement", "loader"),
            needs=("data",),
            figures=loader_figures,
            uses=data,
            exclusive=True,
        ),
    ]


def protocol(smoke: bool = False) -> Protocol:
    """The protocol; ``smoke``: the same units on the CPU, seconds long."""
    settings = GpuCheckSettings()
    if smoke:
        settings = settings.smoke_setting()
    units = [
        _data_unit(settings),
        _tests_unit(settings),
        *(_bench_unit(settings, preset, steps) for preset, steps in settings.bench_steps),
        _train_unit(settings),
        *_on_the_run(settings),
        *_speed_units(settings),
    ]
    return Protocol(
        name="gpu-check",
        summary="the CUDA path end to end on one GPU: the cuda tests, the training-step "
        "benchmarks, basketball-cpu runs and what reads them",
        settings=settings.to_json(),
        units=tuple(units),
        page=lambda results, root: page(settings, results),
        title="GPU check: the CUDA path end to end on one GPU",
        headline=lambda results: headline(settings, results),
        lacks=lambda: machine_lacks(settings),
    )
