"""`keypoint-wm reproduce gpu-check`: refuses without CUDA, runs the units of the old
``scripts/gpu_check.sh`` with their needs, records the CUDA tests honestly (a skip is a skip,
a failure a failure), and its page shows what the records hold."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from keypoint_wm.reproduce.gpu_check import GpuCheckSettings, protocol, training_speed
from keypoint_wm.reproduce.protocol import UnitResult

REPO = Path(__file__).resolve().parents[2]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MUJOCO_GL": "egl"}


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=ENV
    )


@NO_CUDA
@pytest.mark.integration
def test_without_cuda_it_refuses_in_one_line_and_still_regenerates_the_page(tmp_path):
    out, results = tmp_path / "out", tmp_path / "results"
    command = ("-m", "keypoint_wm.cli", "reproduce", "gpu-check", "--out", str(out))
    done = run(*command, "--results", str(results))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "keypoint-wm reproduce: error: gpu-check needs a CUDA GPU, and torch sees none on this "
        "machine (--smoke runs the same units on the CPU, on a tiny setting)"
    ]
    assert not out.exists() and not results.exists()  # nothing started
    # The records of a GPU machine, copied here, still make their page.
    report = run(*command, "--results", str(results), "--report-only")
    assert report.returncode == 0, report.stderr
    assert (results / "gpu-check.md").read_text().startswith("# The GPU check")


def test_the_units_are_the_old_scripts_parts_with_their_needs():
    full, smoke = protocol(), protocol(smoke=True)
    needs = {u.name: (u.kind, u.needs) for u in full.units}
    assert needs == {
        "data": ("artifact", ()),
        "tests-cuda": ("result", ()),
        "bench-dmcs": ("result", ()),
        "bench-basketball-cpu": ("result", ()),
        "train": ("artifact", ("data",)),
        "tracking": ("result", ("train",)),
        "video": ("result", ("train",)),
        "rewards": ("result", ("train",)),
        "replay": ("result", ("train",)),
        "train-seeds": ("result", ("data",)),
        "train-loader": ("result", ("data",)),
    }
    assert {u.name: (u.kind, u.needs) for u in smoke.units} == needs  # the same units
    # Every model runs on the GPU (the CPU in smoke); the settings are the script's defaults.
    for unit, small in zip(full.units, smoke.units, strict=True):
        if "--device" in unit.argv:
            assert unit.argv[unit.argv.index("--device") + 1] == "cuda", unit.name
            assert small.argv[small.argv.index("--device") + 1] == "cpu", small.name
    assert full.settings["steps"] == 4000 and full.settings["seeds"] == 3
    assert full.settings["sequences"] == 1000 and not full.settings["smoke"]
    assert "--reward" in full.unit("data").argv  # reward heads have something to predict
    tests = full.unit("tests-cuda")
    assert tests.module == "keypoint_wm.reproduce.suite" and tests.argv[-3:] == (
        "-m", "cuda", "tests/test_cuda.py",
    )  # fmt: skip
    assert tests.shown().startswith("python -m keypoint_wm.reproduce.suite --json OUT/")
    # Timings never share the machine with another unit.
    assert all(full.unit(n).exclusive for n in ("bench-dmcs", "train", "train-seeds", "replay"))


def test_suite_records_failures_and_skips_and_exits_0_when_the_tests_ran(tmp_path):
    (tmp_path / "test_three.py").write_text(
        "import pytest\n"
        "def test_passes(): pass\n"
        "def test_fails(): assert False\n"
        "@pytest.mark.skip(reason='no such device here')\n"
        "def test_skipped(): pass\n"
    )
    args = ("-m", "keypoint_wm.reproduce.suite", "--json", "out.json", "--", "test_three.py")
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads((tmp_path / "out.json").read_text())
    assert figures["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}
    assert figures["failed"] == ["test_three.py::test_fails"]
    assert figures["skip_reasons"] == {"no such device here": 1}
    # Tests that cannot run at all fail the unit (no record), with pytest's exit code.
    missing = run("-m", "keypoint_wm.reproduce.suite", "--json", "gone.json", "--", "nope.py",
                  cwd=tmp_path)  # fmt: skip
    assert missing.returncode == 4
    assert json.loads((tmp_path / "gone.json").read_text())["ran"] is False


@NO_CUDA
@pytest.mark.integration
def test_the_cuda_tests_on_a_cpu_are_recorded_as_skipped_with_their_reason(tmp_path):
    path = tmp_path / "tests-cuda.json"
    done = run("-m", "keypoint_wm.reproduce.suite", "--json", str(path), "--", "-m", "cuda",
               GpuCheckSettings().tests)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    figures = json.loads(path.read_text())
    skipped = figures["counts"]["skipped"]
    assert skipped >= 5 and figures["counts"]["passed"] == 0
    assert figures["skip_reasons"] == {"needs a CUDA device": skipped}


def test_training_speed_is_the_median_without_the_warm_up_window(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "tensorboard"))
    for step, value in enumerate([900.0, 180.0, 200.0, 190.0], start=1):  # a slow capture first
        writer.add_scalar("train/steps_per_second", value, step * 100)
    writer.close()
    assert training_speed(tmp_path) == {"median_steps_per_second": 190.0, "windows": 3}


H100 = {"cpu": "AMD EPYC", "cpu_flags": ["avx2"], "cores": 16, "gpu": "NVIDIA H100 80GB HBM3",
        "torch": "2.11.0+cu130", "python": "3.12.3"}  # fmt: skip


def _record(name: str, figures: dict, seconds: float) -> UnitResult:
    unit = protocol().unit(name)
    return UnitResult("gpu-check", name, unit.kind, unit.digest, unit.shown(), figures, {},
                      "abc1234567", H100, seconds, "2026-12-07T10:00:00Z")  # fmt: skip


def test_the_page_shows_each_units_figures_and_the_gpu():
    speed = {"median_steps_per_second": 188.4, "windows": 39,
             "last_probe": {"step": "4000", "r2_min": "0.9971"}}  # fmt: skip
    records = {
        "tests-cuda": _record(
            "tests-cuda",
            {
                "counts": {"passed": 7, "failed": 1, "error": 0, "skipped": 0},
                "failed": ["tests/test_cuda.py::test_graphed_step_reports_a_non_finite_loss"],
                "skip_reasons": {},
            },
            95.0,
        ),
        "bench-dmcs": _record(
            "bench-dmcs",
            {
                "batch_size": 32,
                "seconds_per_step": {"fast": 0.0214, "fp32_eager": 0.0796},
                "ratios": {"fast_vs_fp32_eager": 3.72},
                "fast_precision": "bf16",
                "fast_cuda_graph": True,
                "peak_memory_bytes": 3 * 2**30,
            },
            40.0,
        ),
        "train": _record("train", speed, 36.0),
        "tracking": _record(
            "tracking",
            {
                "r2_observed": [0.9991, 0.9987, 0.9990, 0.9979, 0.9985, 0.9988],
                "error_observed": 0.01,
                "error_predicted": 0.0412,
                "error_predicted_last_observed_baseline": 0.0873,
                "error_mean_baseline": 0.3,
            },
            30.0,
        ),
        "replay": _record(
            "replay",
            {
                "device": "cuda:0",
                "steps": 300,
                "steps_per_second": 412.0,
                "observation_size": 164,
                "finite": True,
                "env_checker": "passed",
            },
            12.0,
        ),
    }
    full = protocol()
    page = full.page(records, Path("."))
    assert "NVIDIA H100 80GB HBM3, torch 2.11.0+cu130" in page
    assert "| 7 | 1 | 0 | 0 | 1.6 |" in page  # the tests: passed, failed, ..., minutes
    assert "failed: `tests/test_cuda.py::test_graphed_step_reports_a_non_finite_loss`" in page
    assert "| dmcs | 32 | fast 21.40, fp32_eager 79.60 | 3.72 | bf16, CUDA graph | 3.00 |" in page
    assert "| basketball-cpu | not run yet |" in page
    assert "| data on the device | 188.4 | 39 | 4000 | 0.9971 | 0.6 |" in page
    assert "0.9991, 0.9987, 0.9990, 0.9979, 0.9985, 0.9988" in page
    assert "412 steps/s on cuda:0; env checker passed" in page
    assert "| video | not run yet |" in page
    assert "| tracking | 0.5 | NVIDIA H100 80GB HBM3, torch 2.11.0+cu130 |" in page  # units
    # The README's row takes its figures from the page.
    assert full.headline is not None
    headline = full.headline(records)
    assert headline.startswith("on NVIDIA H100 80GB HBM3, torch 2.11.0+cu130: 7 of 8 CUDA")
    assert "21.40 ms, 3.72 times" in headline
