"""The page of ``reproduce gpu-check`` and its README headline, from the unit records.

One section per kind of unit: the CUDA tests (passed, failed, skipped and why), the
training-step benchmarks (milliseconds per step, fast path over fp32 eager), the training
runs' speed (median steps per second, the last validation probe), and what reads the first
run (tracking R², video PSNR and SSIM, the reward heads' normalised MSE, the latent wrapper's
steps per second); then every unit's wall time. The GPU each record ran on heads the page.
"""

from __future__ import annotations

from typing import Any

from keypoint_wm.reproduce.gpu_check_settings import GpuCheckSettings
from keypoint_wm.reproduce.pages import header, units_table
from keypoint_wm.reproduce.protocol import UnitResult

__all__ = ["headline", "machines", "page"]

NOT_RUN = "not run yet"


def machines(results: dict[str, UnitResult]) -> list[str]:
    """The machines the records ran on: the GPU's name (or the CPU's, where none), torch."""
    return sorted(
        {
            f"{r.machine.get('gpu') or 'no GPU: ' + str(r.machine.get('cpu'))}, "
            f"torch {r.machine.get('torch')}"
            for r in results.values()
        }
    )


def _number(value: Any, spec: str) -> str:
    return "-" if value is None else format(float(value), spec)


def _minutes(result: UnitResult) -> str:
    return f"{result.seconds / 60:.1f}"


def _tests(results: dict[str, UnitResult]) -> list[str]:
    lines = ["## CUDA tests", ""]
    result = results.get("tests-cuda")
    if result is None:
        return [*lines, NOT_RUN, ""]
    counts, figures = result.figures["counts"], result.figures
    lines += [
        "| passed | failed | errors | skipped | minutes |",
        "|---|---|---|---|---|",
        f"| {counts['passed']} | {counts['failed']} | {counts['error']} | {counts['skipped']} "
        f"| {_minutes(result)} |",
        "",
    ]
    lines += [f"- failed: `{name}`" for name in figures["failed"]]
    lines += [f"- skipped {n}: {reason}" for reason, n in figures["skip_reasons"].items()]
    return [*lines, ""]


def _benches(settings: GpuCheckSettings, results: dict[str, UnitResult]) -> list[str]:
    lines = [
        "## Training-step benchmarks (`keypoint-wm bench train`)",
        "",
        "| preset | batch | ms per step | fast over fp32 eager | fast path | peak memory GiB "
        "| minutes |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, _ in settings.bench_steps:
        result = results.get(f"bench-{preset}")
        if result is None:
            lines.append(f"| {preset} | {NOT_RUN} | | | | | |")
            continue
        f = result.figures
        steps = ", ".join(f"{k} {v * 1000:.2f}" for k, v in f["seconds_per_step"].items())
        ratio = _number(f["ratios"].get("fast_vs_fp32_eager"), ".2f")
        path = f"{f.get('fast_precision')}" + (", CUDA graph" if f.get("fast_cuda_graph") else "")
        peak = f.get("peak_memory_bytes")
        memory = "-" if peak is None else f"{peak / 2**30:.2f}"
        lines.append(
            f"| {preset} | {f.get('batch_size')} | {steps} | {ratio} | {path} | {memory} "
            f"| {_minutes(result)} |"
        )
    return [*lines, ""]


def _speed_row(name: str, speed: dict[str, Any], minutes: str) -> str:
    probe = speed.get("last_probe") or {}
    return (
        f"| {name} | {_number(speed.get('median_steps_per_second'), '.1f')} "
        f"| {speed.get('windows')} | {probe.get('step', '-')} | {probe.get('r2_min', '-')} "
        f"| {minutes} |"
    )


def _training(settings: GpuCheckSettings, results: dict[str, UnitResult]) -> list[str]:
    lines = [
        f"## Training runs (`basketball-cpu`, {settings.steps} steps; the DataLoader run "
        f"{settings.loader_steps})",
        "",
        "Steps per second: the median of the logged windows, each session's first (warm-up, "
        "graph capture) left out. The probe: the validation R² of the worst object at the "
        "run's last probe.",
        "",
        "| run | steps per second | windows | probe step | probe R² (worst object) | minutes |",
        "|---|---|---|---|---|---|",
    ]
    train = results.get("train")
    lines.append(
        _speed_row("data on the device", train.figures, _minutes(train))
        if train is not None
        else f"| data on the device | {NOT_RUN} | | | | |"
    )
    replicas = results.get("train-seeds")
    if replicas is None:
        lines.append(f"| {settings.seeds} replicas side by side | {NOT_RUN} | | | | |")
    else:
        for name, speed in replicas.figures.items():
            lines.append(_speed_row(f"replica {name}", speed, _minutes(replicas)))
    loader = results.get("train-loader")
    lines.append(
        _speed_row("DataLoader", loader.figures, _minutes(loader))
        if loader is not None
        else f"| DataLoader | {NOT_RUN} | | | | |"
    )
    return [*lines, ""]


def _the_run(results: dict[str, UnitResult]) -> list[str]:
    lines = ["## On the trained run", "", "| unit | figures | minutes |", "|---|---|---|"]
    cells: dict[str, str] = {}
    if (result := results.get("tracking")) is not None:
        r2 = result.figures["r2_observed"]
        cells["tracking"] = (
            "R² per object " + ", ".join(f"{v:.4f}" for v in r2) + "; predicted error "
            f"{result.figures['error_predicted']:.4f} (last observed: "
            f"{result.figures['error_predicted_last_observed_baseline']:.4f})"
        )
    if (result := results.get("video")) is not None:
        f = result.figures
        cells["video"] = (
            f"PSNR closest {_number(f['psnr_closest'], '.2f')} dB, furthest "
            f"{_number(f['psnr_furthest'], '.2f')}, copy last frame "
            f"{_number(f['psnr_copy_last_frame'], '.2f')}; SSIM closest "
            f"{_number(f['ssim_closest'], '.3f')} ({f['test_windows']} windows)"
        )
    if (result := results.get("rewards")) is not None:
        cells["rewards"] = "; ".join(
            f"{task}: test normalised MSE {_number(t['test_normalized_mse'], '.3f')} "
            f"({t['train_windows']} train / {t['test_windows']} test windows)"
            for task, t in result.figures["tasks"].items()
        )
    if (result := results.get("replay")) is not None:
        f = result.figures
        cells["replay"] = (
            f"latent wrapper {f['steps_per_second']:.0f} steps/s on {f['device']}; env "
            f"checker {f['env_checker']}; observation of {f['observation_size']} values, "
            + ("finite" if f["finite"] else "NOT finite")
        )
    for name in ("tracking", "video", "rewards", "replay"):
        result = results.get(name)
        minutes = _minutes(result) if result is not None else ""
        lines.append(f"| {name} | {cells.get(name, NOT_RUN)} | {minutes} |")
    return [*lines, ""]


def headline(settings: GpuCheckSettings, results: dict[str, UnitResult]) -> str:
    """The README row's figures, each as the page shows it."""
    cells = []
    if (tests := results.get("tests-cuda")) is not None:
        counts = tests.figures["counts"]
        total = counts["passed"] + counts["failed"] + counts["error"] + counts["skipped"]
        cells.append(f"{counts['passed']} of {total} CUDA tests pass")
    if (bench := results.get("bench-dmcs")) is not None:
        fast = bench.figures["seconds_per_step"].get("fast")
        ms = _number(None if fast is None else fast * 1000, ".2f")
        ratio = _number(bench.figures["ratios"].get("fast_vs_fp32_eager"), ".2f")
        cells.append(f"a dmcs training step {ms} ms, {ratio} times fp32 eager's speed")
    if not cells:
        return 'in progress: "not run yet"'
    return f"on {', '.join(machines(results))}: " + "; ".join(cells)


def page(settings: GpuCheckSettings, results: dict[str, UnitResult]) -> str:
    """The Markdown page of the check's current records."""
    lines = header(
        "gpu-check",
        "The GPU check: the CUDA path end to end",
        "The package installed from its wheel on a GPU machine (`scripts/gpu_check.sh` "
        "installs it where no package registry is reachable and runs this target), then: the "
        f"`cuda`-marked tests ({settings.tests}), the training-step benchmarks, "
        f"`basketball-cpu` runs on {settings.device} on a draw of {settings.sequences} "
        "Basketball sequences whose reward is the ball's x position (one run, "
        f"{settings.seeds} replicas side by side, one fed by the DataLoader), and on the "
        "first run: tracking, video metrics, reward heads and the latent wrapper on replayed "
        "frames. Every knob is in `GpuCheckSettings` (`keypoint_wm/reproduce/gpu_check_settings.py`).",
    )
    if settings.smoke:
        lines += [
            "A smoke run (`--smoke`): tiny settings on the CPU; no figure means anything.",
            "",
        ]
    lines += ["Ran on: " + ("; ".join(machines(results)) or "nothing recorded yet") + ".", ""]
    lines += _tests(results)
    lines += _benches(settings, results)
    lines += _training(settings, results)
    lines += _the_run(results)
    lines += units_table(results)
    return "\n".join(lines) + "\n"
