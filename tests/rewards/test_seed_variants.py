"""``rewards evaluate``: runs sharing a ``--label`` are the seeds of one variant."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from kwm_testing import SEED_SUMMARY, variant_over_seeds
from latent_testing import tiny_dmc_data, tiny_dmc_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory):
    """The tiny DMCS run and the same recipe trained from another seed, and their data."""
    from kwm_testing import tiny_config

    from keypoint_wm.train import train

    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    other = tmp_path_factory.mktemp("seeds") / "seed_4"
    config = tiny_config(4, preset="dmcs-cpu", seed=4, **{"train.test_fraction": 0.5})
    train(config, data, other, progress=False)
    return run, other, data


def test_runs_sharing_a_label_are_averaged_with_their_interval(two_seeds, tmp_path):
    run, other, data = two_seeds
    out = tmp_path / "rewards.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "rewards", "evaluate", "--run", str(run),
         "--run", str(other), "--label", "struct", "--label", "struct",
         "--heads", str(tmp_path / "h0"), "--heads", str(tmp_path / "h1"), "--train-missing",
         "--steps", "10", "--data", str(data), "--json", str(out),
         "--plot", str(tmp_path / "r.png"), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert len(report["runs"]) == 1 and len(report["per_run"]) == 2
    variant, half = report["runs"][0], report["seed_ci95"]["runs"][0]
    assert variant["label"] == "struct" and variant["run"] == [str(run), str(other)]
    assert [r["label"] for r in report["per_run"]] == ["struct", "struct"]
    # The variant as a one-variant command writes itself (as `evaluate compare` does too),
    # beside the keys kept from before: the same mean, half-widths and runs.
    assert report["labels"] == ["struct"]
    seeds = variant_over_seeds(report, "struct", 2)
    assert {k: v for k, v in seeds.items() if k not in SEED_SUMMARY} == variant
    assert seeds["seed_ci95"] == half and seeds["per_run"] == report["per_run"]
    scored = 0
    for task in ("cartpole-balance", "reacher-easy"):
        values = [r["tasks"][task]["normalized_mse"] for r in report["per_run"]]
        if None in values:  # constant rewards in the tiny data: nothing to average
            assert values == [None, None] and variant["tasks"][task]["normalized_mse"] is None
            assert half["tasks"][task]["normalized_mse"] is None
            continue
        scored += 1
        assert values[0] != values[1]  # two models, two scores
        assert variant["tasks"][task]["normalized_mse"] == pytest.approx(np.mean(values))
        # Two runs: t_{0.975, 1} = 12.706 times the standard error of the mean, by hand.
        expected = 12.706 * abs(values[0] - values[1]) / math.sqrt(2) / math.sqrt(2)
        assert half["tasks"][task]["normalized_mse"] == pytest.approx(expected, rel=1e-3)
        per_step = np.array([r["tasks"][task]["per_step"] for r in report["per_run"]])
        assert variant["tasks"][task]["per_step"] == pytest.approx(per_step.mean(axis=0).tolist())
    assert scored >= 1
    mean = variant["mean_normalized_mse"]
    assert f"{mean:.3f} ± {half['mean_normalized_mse']:.3f}" in result.stdout
    assert "mean ± 95% CI over seeds (2 runs)" in result.stdout
    assert (tmp_path / "r.png").stat().st_size > 0
