"""The JSON layout of ``keypoint-wm rewards train`` (``OUT/train_summary.json``) and
``rewards evaluate --json``, pinned key by key on the tiny DMCS run (see
tests/evaluation/test_json_layout.py for the notation and the keys seeds add)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kwm_testing import key_paths
from latent_testing import TASKS, tiny_dmc_data, tiny_dmc_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """The tiny DMCS run, its data, and heads trained by the real command (20 steps)."""
    base = tmp_path_factory.getbasetemp()
    run, data = tiny_dmc_run(base), tiny_dmc_data(base)
    out = tmp_path_factory.mktemp("layout") / "heads"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "rewards", "train", "--run", str(run),
         "--data", str(data), "--out", str(out), "--steps", "20", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return run, data, out


TRAIN_CONFIG = {"window", "stride", "max_windows", "train_fraction", "split", "steps",
                "batch_size", "learning_rate", "final_learning_rate", "units", "eval_every",
                "validation_fraction", "seed", "inputs"}  # fmt: skip
HEAD_FACTS = {"run", "checkpoint_step", "data", "train_windows", "test_windows",
              "test_normalized_mse", "window", "stride", "max_windows", "seed", "train_fraction",
              "split", "best_step", "validation_windows", "inputs",
              "validation_normalized_mse", "held_out_data", "weights"}  # fmt: skip
TASK_SCORES = {"normalized_mse", "per_step", "ci95", "constant_rewards", "test_windows", "split",
               "mean_train_reward", "inputs", "validation_normalized_mse"}  # fmt: skip
RUN_ENTRY = {"label", "run", "checkpoint_step", "representation", "dynamics", "tasks",
             "mean_normalized_mse", "mean_validation_normalized_mse"}  # fmt: skip


def test_train_summary_layout(heads):
    _, _, out = heads
    summary = json.loads((out / "train_summary.json").read_text())
    expected = {"out", "config", "tasks"} | {f"config.{k}" for k in TRAIN_CONFIG}
    for task in TASKS:
        expected |= {f"tasks.{task}"} | {f"tasks.{task}.{k}" for k in HEAD_FACTS}
    assert key_paths(summary) == expected
    # Each head stores the same facts as its metadata.
    for task in TASKS:
        meta = json.loads((out / task / "head.json").read_text())["metadata"]
        assert meta == summary["tasks"][task]


def test_evaluate_layout(heads, tmp_path):
    run, data, out = heads
    path = tmp_path / "rewards.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "rewards", "evaluate", "--run", str(run),
         "--heads", str(out), "--data", str(data), "--json", str(path),
         "--plot", str(tmp_path / "r.png"), "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(path.read_text())
    entry = set(RUN_ENTRY)
    for task in TASKS:
        entry |= {f"tasks.{task}"} | {f"tasks.{task}.{k}" for k in TASK_SCORES}
    expected = {"data", "metric", "tasks", "note", "runs"} | {f"runs[].{k}" for k in entry}
    # Over seeds: seed_ci95 (null: each run its own variant) and each run's entry.
    expected |= {"seed_ci95", "per_run"} | {f"per_run[].{k}" for k in entry}
    # The variants by label, each in the layout of a one-variant command over seeds (as in
    # `evaluate compare`): an unlabelled run is named by its directory and model kind.
    (label,) = report["labels"]
    assert label == f"{run.name} (Struct-VRNN)"
    over_seeds = entry | {"seed_ci95"} | {"per_run"} | {f"per_run[].{k}" for k in entry}
    expected |= {"labels", "variants", f"variants.{label}"}
    expected |= {f"variants.{label}.{k}" for k in over_seeds}
    assert key_paths(report) == expected
    assert report["seed_ci95"] is None and report["per_run"] == report["runs"]
    (one,) = report["runs"]
    assert report["variants"] == {label: {**one, "seed_ci95": None, "per_run": [one]}}
