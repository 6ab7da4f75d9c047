"""Seeds everywhere a number is reported: ``evaluate`` over several runs of one variant.

Three tiny replicas are trained by ``train_replicas`` (the code behind ``keypoint-wm train
--seeds 3``) into ``OUT/seed_<s>/``; each command runs on them and its figures are checked
against each run's own figures (``per_run``): the mean, and the half-width of the 95%
Student-t interval over runs computed here by hand.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kwm_testing import SEED_SUMMARY, variant_over_seeds

pytestmark = pytest.mark.integration

T_975 = {1: 12.706, 2: 4.303}  # Student's t, 97.5% quantile, by degrees of freedom


def half_width(values: list[float]) -> float:
    """The 95% interval's half-width over runs, by hand: t_{0.975, n-1} * s / sqrt(n)."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return T_975[n - 1] * s / math.sqrt(n)


@pytest.fixture(scope="module")
def seeds_out(basketball_dir, tmp_path_factory) -> Path:
    """``OUT/seed_3``, ``seed_4``, ``seed_5``: the tiny config trained for 2 steps each."""
    from kwm_testing import tiny_config

    from keypoint_wm.replicas import train_replicas

    out = tmp_path_factory.mktemp("seeds") / "out"
    config = tiny_config(2, **{"train.probe_every": 0})
    train_replicas(config, basketball_dir, out, count=3, device_name="cpu", progress=False)
    return out


def evaluate(*args: str | Path, expect: int = 0) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", *map(str, args), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == expect, result.stderr[-2000:]
    return result


def figures_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def test_tracking_on_a_seed_folder_reports_mean_and_interval_over_its_runs(
    seeds_out, basketball_dir, tmp_path
):
    out = tmp_path / "tracking.json"
    result = evaluate("tracking", "--run", seeds_out, "--data", basketball_dir, "--samples", "2",
                      "--max-windows", "8", "--json", out, "--quiet")  # fmt: skip
    figures = figures_of(out)
    runs = [str(seeds_out / f"seed_{s}") for s in (3, 4, 5)]
    assert [r["run"] for r in figures["per_run"]] == runs and figures["run"] == runs
    per_run = figures["per_run"]
    for key in ("error_observed", "error_predicted", "error_mean_baseline"):
        values = [r[key] for r in per_run]
        assert figures[key] == pytest.approx(np.mean(values), rel=1e-12)
        assert figures["seed_ci95"][key] == pytest.approx(half_width(values), rel=1e-3)
        assert figures["tasks"]["all"][key] == figures[key]
    # The seeds really differ, and lists are combined elementwise.
    assert len({r["error_observed"] for r in per_run}) == 3
    r2 = np.array([r["r2_observed"] for r in per_run])  # [runs, objects]
    assert figures["r2_observed"] == pytest.approx(r2.mean(axis=0).tolist(), rel=1e-12)
    assert figures["seed_ci95"]["r2_observed"] == pytest.approx(
        [half_width(list(column)) for column in r2.T], rel=1e-3
    )
    # Settings and counts shared by every run stay as they are (an interval of 0).
    assert figures["samples"] == 2 and figures["seed_ci95"]["samples"] == 0.0
    assert figures["tasks"]["all"]["test_windows"] == per_run[0]["tasks"]["all"]["test_windows"]
    assert "over 3 seeds (mean ± 95% CI)" in result.stdout
    assert f"{figures['error_observed']:.4f} ± {figures['seed_ci95']['error_observed']:.4f}" in (
        result.stdout
    )
    # A run of the folder evaluated on its own has the figures it has in per_run (the
    # observed steps do not depend on sampling).
    alone = tmp_path / "alone.json"
    evaluate("tracking", "--run", runs[1], "--data", basketball_dir, "--samples", "2",
             "--max-windows", "8", "--json", alone, "--quiet")  # fmt: skip
    assert figures_of(alone)["r2_observed"] == per_run[1]["r2_observed"]
    assert figures_of(alone)["error_observed"] == per_run[1]["error_observed"]


def test_video_over_repeated_runs_keeps_the_window_intervals_and_adds_the_seed_ones(
    seeds_out, basketball_dir, tmp_path
):
    out = tmp_path / "video.json"
    evaluate("video", "--run", seeds_out / "seed_3", "--run", seeds_out / "seed_4",
             "--data", basketball_dir, "--samples", "2", "--max-windows", "4", "--json", out,
             "--quiet")  # fmt: skip
    figures = figures_of(out)
    first, second = figures["per_run"]
    values = [first["psnr_closest"], second["psnr_closest"]]
    assert figures["psnr_closest"] == pytest.approx(np.mean(values), rel=1e-12)
    assert figures["seed_ci95"]["psnr_closest"] == pytest.approx(half_width(values), rel=1e-3)
    # Copying the last frame depends on the data only: the same in both runs, no spread.
    assert first["psnr_copy_last_frame"] == second["psnr_copy_last_frame"]
    assert figures["psnr_copy_last_frame"] == first["psnr_copy_last_frame"]
    assert figures["seed_ci95"]["psnr_copy_last_frame"] == 0.0
    # "ci95" (over test windows) keeps its meaning: each run's, averaged elementwise.
    curve = figures["metrics"]["ssim"]["closest"]
    runs_ci = np.array([r["metrics"]["ssim"]["closest"]["ci95"] for r in (first, second)])
    assert curve["ci95"] == pytest.approx(runs_ci.mean(axis=0).tolist(), rel=1e-12)
    seed_curve = figures["seed_ci95"]["metrics"]["ssim"]["closest"]
    assert len(seed_curve["mean"]) == figures["predicted_steps"]


def test_diversity_over_seeds_averages_figures_and_draws_each_run(
    seeds_out, basketball_dir, tmp_path
):
    out = tmp_path / "diversity.json"
    evaluate("diversity", "--run", seeds_out / "seed_3", "--run", seeds_out / "seed_5",
             "--data", basketball_dir, "--sequences", "0", "--samples", "3", "--json", out,
             "--quiet")  # fmt: skip
    figures = figures_of(out)
    values = [r["mean_error"] for r in figures["per_run"]]
    assert figures["mean_error"] == pytest.approx(np.mean(values), rel=1e-12)
    assert figures["seed_ci95"]["mean_error"] == pytest.approx(half_width(values), rel=1e-3)
    assert figures["sequences"][0]["objects"][0]["name"] == "ball"
    # Sampled paths of several runs do not average into a picture: one figure per run.
    for name in ("seed_3", "seed_5"):
        assert (tmp_path / f"diversity_{name}.png").stat().st_size > 0


def test_compare_groups_runs_by_label(seeds_out, rnn_run, basketball_dir, tmp_path):
    out = tmp_path / "compare.json"
    result = evaluate("compare", seeds_out / "seed_3", seeds_out / "seed_4", rnn_run,
                      "--label", "vrnn", "--label", "vrnn", "--label", "rnn",
                      "--data", basketball_dir, "--metrics", "video,tracking", "--samples", "2",
                      "--max-windows", "2", "--tracking-samples", "2", "--json", out,
                      "--quiet")  # fmt: skip
    report = figures_of(out)
    assert report["labels"] == ["vrnn", "rnn"]
    assert [len(report["per_run"][label]) for label in ("vrnn", "rnn")] == [2, 1]
    # Each variant as a one-variant command writes itself (as `rewards evaluate` does too),
    # beside the keys kept from before: the same mean, half-widths and runs.
    vrnn = variant_over_seeds(report, "vrnn", 2)
    assert vrnn["run"] == [str(seeds_out / "seed_3"), str(seeds_out / "seed_4")]
    assert {k: v for k, v in vrnn.items() if k not in SEED_SUMMARY} == report["runs"]["vrnn"]
    assert vrnn["seed_ci95"] == report["seed_ci95"]["runs"]["vrnn"]
    assert vrnn["per_run"] == report["per_run"]["vrnn"]
    assert vrnn["seed_ci95"]["video"]["psnr_closest"] == pytest.approx(
        report["seed_ci95"]["table"]["psnr_closest"]["vrnn"]
    )
    assert variant_over_seeds(report, "rnn", 1)["per_run"] == report["per_run"]["rnn"]
    seeds = [r["video"]["psnr_closest"] for r in report["per_run"]["vrnn"]]
    assert report["table"]["psnr_closest"]["vrnn"] == pytest.approx(np.mean(seeds), rel=1e-12)
    assert report["seed_ci95"]["table"]["psnr_closest"]["vrnn"] == pytest.approx(
        half_width(seeds), rel=1e-3
    )
    assert (
        report["runs"]["vrnn"]["video"]["psnr_closest"] == report["table"]["psnr_closest"]["vrnn"]
    )
    # A one-run variant reads as before: its own figures, no interval.
    rnn = report["per_run"]["rnn"][0]
    assert report["runs"]["rnn"] == rnn and report["seed_ci95"]["runs"]["rnn"] is None
    assert report["table"]["psnr_closest"]["rnn"] == rnn["video"]["psnr_closest"]
    assert report["seed_ci95"]["table"]["psnr_closest"]["rnn"] is None
    mean, half = (
        report["table"]["psnr_closest"]["vrnn"],
        report["seed_ci95"]["table"]["psnr_closest"]["vrnn"],
    )
    assert f"{mean:.4g} ± {half:.4g}" in result.stdout
    assert "vrnn: 2, rnn: 1 runs" in out.with_suffix(".md").read_text()


def test_runs_of_different_variants_are_refused_as_seeds(
    tiny_run, rnn_run, basketball_dir, tmp_path
):
    out = tmp_path / "t.json"
    result = evaluate("tracking", "--run", tiny_run, "--run", rnn_run, "--data", basketball_dir,
                      "--samples", "2", "--json", out, expect=2)  # fmt: skip
    assert "not seeds of one variant" in result.stderr and "model.dynamics" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    result = evaluate("compare", tiny_run, rnn_run, "--label", "x", "--label", "x", "--data",
                      basketball_dir, "--metrics", "video", "--json", out, expect=2)  # fmt: skip
    assert "label them apart" in result.stderr and not out.exists()
    result = evaluate("compare", tiny_run, rnn_run, "--label", "x", "--data", basketball_dir,
                      expect=2)  # fmt: skip
    assert "--label: give one label per run (2), got 1" in result.stderr
    result = evaluate("video", "--run", tiny_run, "--run", tiny_run, "--data", basketball_dir,
                      expect=2)  # fmt: skip
    assert "given twice" in result.stderr
    result = evaluate("video", "--run", tmp_path, "--data", basketball_dir, expect=2)
    assert "nor a folder of seed_<s>/ runs" in result.stderr
