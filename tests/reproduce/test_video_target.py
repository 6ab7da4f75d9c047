"""`keypoint-wm reproduce video`: the Human3.6M stand-in's video prediction, seeds pooled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from keypoint_wm.reproduce import video
from keypoint_wm.reproduce.protocol import UnitResult

os.environ.setdefault("MUJOCO_GL", "egl")


def _record(seed: int, closest: float, copy: float) -> UnitResult:
    figures = {name: 0.5 for name in video.FIGURES}
    figures.update(psnr_closest=closest, psnr_copy_last_frame=copy, test_windows=64)
    figures["split"] = "metadata"
    return UnitResult("video", f"video-seed{seed}", "result", "digest", "cmd", figures, {},
                      "abc", {}, 60.0, "2026-12-07T00:00:00")  # fmt: skip


def test_the_page_pools_the_seeds_and_says_whether_the_best_sample_beats_copying():
    protocol = video.protocol()
    assert [u.name for u in protocol.units] == [
        "data", "train-seed0", "video-seed0", "train-seed1", "video-seed1", "train-seed2",
        "video-seed2",
    ]  # fmt: skip
    results = {r.unit: r for r in (_record(0, 27.0, 26.0), _record(1, 26.0, 26.5))}
    page = protocol.page(results, None)
    assert "2 of 3 seeds." in page
    assert "| all 2 | 26.50 ± " in page  # mean ± 95% interval over the two seeds
    assert "26.50 dB, above copying the last frame (26.25 dB)" in page
    assert "(video/video-seed0.png)" in page  # seed 0's curves, shipped beside the records
    headline = protocol.headline(results)
    assert headline.startswith("PSNR of the closest of 100 samples 26.50 ± ")
    assert "2 of 3 seeds" in headline
    assert protocol.headline({}) == 'in progress: "0 of 3 seeds."'


@pytest.mark.integration
def test_video_smoke_scores_a_model_and_writes_its_curves(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "keypoint_wm.cli", "reproduce", "video", "--out", str(out)]
    done = subprocess.run([*argv, "--smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = out / "results" / "video"
    record = json.loads((folder / "video-seed0.json").read_text())
    assert set(video.FIGURES) <= set(record["figures"])
    assert record["uses"]["world_model"] and record["uses"]["data"]
    assert (folder / "video-seed0.png").stat().st_size > 0
    assert "1 of 1 seeds." in (out / "results" / "video.md").read_text()
