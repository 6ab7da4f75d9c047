"""``keypoint-wm bench train``: both configurations timed in one run, with the JSON keys that
compare them, as a user runs it (a subprocess: the fast path's host-memory setting is
process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keypoint_wm.host_memory import _glibc
from keypoint_wm.presets import get_preset

pytestmark = pytest.mark.integration


def test_bench_train_writes_both_times_and_their_ratio(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "bench", "train", "--preset", "basketball-cpu",
         "--batch", "2", "--steps", "2", "--warmup", "1", "--device", "cpu", "--json", str(out)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    times = report["seconds_per_step"]
    assert set(times) == {"fast", "fp32_eager"} and min(times.values()) > 0
    assert report["ratios"]["fast_vs_fp32_eager"] == pytest.approx(
        times["fp32_eager"] / times["fast"]
    )
    assert [len(v) for v in report["all_times"].values()] == [2, 2]
    assert report["device"] == "cpu" and report["device_name"]
    assert report["hours_per_100k_steps"] == pytest.approx(times["fast"] * 1e5 / 3600)
    assert report["fast_keeps_freed_memory"] is (_glibc() is not None)
    assert "fast_vs_fp32_eager" in result.stdout and "<= 12 s/step" in result.stdout
    # The step of the middle of the preset's own schedule, the loss terms training pays for.
    middle = get_preset("basketball-cpu").build().train.steps // 2
    assert report["schedule_step"] == middle and f"schedule step {middle}" in result.stdout
