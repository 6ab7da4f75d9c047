"""Video metrics: closest/furthest of N samples, copy-last baseline, user-supplied weights."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import keypoint_wm
from keypoint_wm.errors import UsageError
from keypoint_wm.evaluation.video import VideoEvalConfig, _curves, evaluate_video


@pytest.mark.integration
def test_cli_reports_closest_furthest_and_baseline_and_explains_missing_weights(
    tiny_run, basketball_dir, tmp_path
):
    out = tmp_path / "video.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "video", "--run", str(tiny_run),
         "--data", str(basketball_dir), "--samples", "4", "--max-windows", "6",
         "--json", str(out), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for metric in ("psnr", "ssim"):
        for which in ("closest", "furthest", "copy_last_frame"):
            curve = figures["metrics"][metric][which]
            assert len(curve["mean"]) == len(curve["ci95"]) == figures["predicted_steps"]
            assert f"{metric}_{which}" in figures
        # The summary is the curve averaged over the predicted steps, and the table printed
        # for the user shows the figures that the JSON holds.
        curve = figures["metrics"][metric]["closest"]
        assert figures[f"{metric}_closest"] == pytest.approx(np.mean(curve["mean"]), rel=1e-6)
        assert f"{figures[f'{metric}_closest']:.4f}" in result.stdout
        assert f"{figures[f'{metric}_copy_last_frame']:.4f}" in result.stdout
    assert figures["fvd"] is None and "--fvd-weights" in figures["skipped"]["fvd"]
    assert "never downloaded" in result.stdout
    assert out.with_suffix(".png").stat().st_size > 0


def test_closest_and_furthest_are_the_best_and_worst_sample_on_average_per_window():
    """The paper's rule: per window, the sample with the best (worst) metric averaged over the
    predicted steps, whole curve kept; not the best value of each step taken separately."""
    per_sample = np.array(
        [
            [[12.0, 12.0], [20.0, 0.0], [5.0, 5.0]],  # sample 1 is best at step 1 only
            [[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]],  # another window: sample 2 is the best
        ]
    )  # [windows, samples, predicted steps]
    baseline = np.array([[3.0, 4.0], [5.0, 6.0]])
    curves = _curves(per_sample, baseline)
    assert curves["closest"].mean == pytest.approx([10.5, 10.5])  # (12 + 9) / 2
    assert curves["furthest"].mean == pytest.approx([3.0, 3.0])  # (5 + 1) / 2
    assert curves["copy_last_frame"].mean == pytest.approx([4.0, 5.0])
    assert curves["closest"].average == pytest.approx(10.5)


@pytest.mark.integration
def test_more_samples_give_a_closer_closest_sample(tiny_run, basketball_dir):
    model = keypoint_wm.load(tiny_run, device="cpu")
    torch.manual_seed(0)
    one = evaluate_video(model, basketball_dir, VideoEvalConfig(samples=1, max_windows=4), False)
    torch.manual_seed(0)
    many = evaluate_video(model, basketball_dir, VideoEvalConfig(samples=6, max_windows=4), False)
    assert many.test_windows == one.test_windows
    # The futures differ, so picking among six beats a single draw and the worst of six.
    psnr, psnr_one = many.metrics["psnr"], one.metrics["psnr"]
    assert psnr["closest"].average > psnr["furthest"].average
    assert psnr["closest"].average > psnr_one["closest"].average
    assert psnr["copy_last_frame"].average == pytest.approx(psnr_one["copy_last_frame"].average)


class _MeanColour(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2).mean(dim=2) + 0.1  # [N, 3] (images) or [N, 3] (videos)


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_user_weights_give_vgg_similarity_and_fvd(tiny_run, basketball_dir, tmp_path):
    net = tmp_path / "features.pt"
    torch.jit.save(torch.jit.script(_MeanColour()), str(net))
    model = keypoint_wm.load(tiny_run, device="cpu")
    config = VideoEvalConfig(samples=3, max_windows=4, vgg_weights=str(net), fvd_weights=str(net))
    result = evaluate_video(model, basketball_dir, config, progress=False)
    assert result.fvd is not None and np.isfinite(result.fvd) and result.fvd >= 0
    vgg = result.metrics["vgg_similarity"]
    assert -1 <= vgg["furthest"].average <= vgg["closest"].average <= 1
    assert "fvd" not in result.skipped and "vgg_similarity" not in result.skipped
    assert result.to_json()["vgg_similarity_closest"] == vgg["closest"].average
    with pytest.raises(UsageError, match="--vgg-weights"):
        evaluate_video(model, basketball_dir, VideoEvalConfig(vgg_weights=str(tmp_path / "no.pt")))
