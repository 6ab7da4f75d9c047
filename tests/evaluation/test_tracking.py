"""Tracking evaluation: the regression, R^2, baselines, CLI outputs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from keypoint_wm.evaluation.tracking import apply_linear, fit_linear, r2_per_object


def test_linear_regression_with_intercept_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    w = rng.normal(size=(6, 4))
    y = x @ w + np.array([0.5, -0.2, 0.1, 0.3])
    weights = fit_linear(x, y, ridge=0.0)
    np.testing.assert_allclose(apply_linear(weights, x), y, atol=1e-9)
    np.testing.assert_allclose(apply_linear(fit_linear(x, y), x), y, atol=1e-2)


def test_near_constant_features_do_not_explode_the_fit():
    """Dark keypoints (almost constant features) must not give huge weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    x[:, 3] = 1e-7 * rng.normal(size=300)  # a keypoint that barely moves
    y = x[:, :2] + 0.01 * rng.normal(size=(300, 2))
    weights = fit_linear(x, y)
    assert np.abs(weights).max() < 10
    shifted = x.copy()
    shifted[:, 3] = 0.5  # the same keypoint decoded somewhere else
    assert np.abs(apply_linear(weights, shifted)).max() < 10


def test_r2_is_one_for_perfect_and_zero_for_the_mean():
    rng = np.random.default_rng(1)
    true = rng.normal(size=(50, 3, 2))
    np.testing.assert_allclose(r2_per_object(true, true), 1.0)
    mean = np.broadcast_to(true.mean(axis=0), true.shape)
    np.testing.assert_allclose(r2_per_object(mean, true), 0.0, atol=1e-12)


@pytest.mark.integration
def test_cli_writes_json_with_the_documented_keys_and_a_plot(tiny_run, basketball_dir, tmp_path):
    out = tmp_path / "tracking.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "tracking", "--run", str(tiny_run),
         "--data", str(basketball_dir), "--samples", "3", "--json", str(out),
         "--plot", str(tmp_path / "tracking.png"), "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    for key in ("r2_observed", "error_observed", "error_predicted",
                "error_predicted_last_observed_baseline", "error_mean_baseline"):  # fmt: skip
        assert key in figures
    assert len(figures["r2_observed"]) == 6  # ball + 5 offence
    assert figures["best_sample"] == "per object"
    assert (tmp_path / "tracking.png").stat().st_size > 0
    assert "R2 per object" in result.stdout


@pytest.mark.integration
def test_a_default_plot_that_cannot_be_written_never_costs_the_json(
    tiny_run, basketball_dir, tmp_path
):
    """Requested outputs first: the JSON is written, then the default plot beside it, whose
    failure (here its path is a folder) only warns; a --plot that fails is an error."""
    out = tmp_path / "tracking.json"
    (tmp_path / "tracking.png").mkdir()  # the default plot's path cannot take a file
    command = [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "tracking", "--run",
               str(tiny_run), "--data", str(basketball_dir), "--samples", "2",
               "--max-windows", "4", "--json", str(out), "--device", "cpu", "--quiet"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(out.read_text())["r2_observed"]
    assert "warning: could not write" in done.stderr and "--plot PATH" in done.stderr
    given = subprocess.run([*command, "--plot", str(tmp_path / "tracking.png")],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert given.returncode == 2 and "--plot" in given.stderr
    assert len(given.stderr.strip().splitlines()) == 1
