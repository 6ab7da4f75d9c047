"""Action recognition: the S2.1 classifier, the baseline, and the CLI on the stand-in."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from keypoint_wm.evaluation.actions import ActionClassifier, ActionEvalConfig, train_classifier


def _separable(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3 classes of 8-step sequences: keypoints drift left, right, or oscillate."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=n)
    t = np.arange(8)[None, :, None]
    start = rng.uniform(-0.5, 0.5, size=(n, 1, 6))
    motion = np.where(labels[:, None, None] == 0, 0.05 * t,
                      np.where(labels[:, None, None] == 1, -0.05 * t, 0.2 * np.sin(t)))  # fmt: skip
    return start + motion + 0.01 * rng.normal(size=(n, 8, 6)), labels


def test_classifier_has_the_papers_shape():
    net = ActionClassifier(features=36, classes=15)
    assert net.gru.num_layers == 2 and net.gru.hidden_size == 128 and net.gru.dropout == 0.25
    assert net.dropout.p == 0.25 and net.dense.out_features == 15


def test_perfectly_separable_sequences_are_classified_almost_perfectly():
    train_x, train_y = _separable(150, 0)
    test_x, test_y = _separable(60, 1)
    config = ActionEvalConfig(epochs=15)
    predicted = train_classifier(train_x, train_y, test_x, 3, config)
    assert (predicted == test_y).mean() >= 0.95
    again = train_classifier(train_x, train_y, test_x, 3, config)
    np.testing.assert_array_equal(predicted, again)  # deterministic for a seed


@pytest.mark.integration
def test_cli_on_the_figure_stand_in(figures_run, figures_dir, tmp_path):
    out = tmp_path / "actions.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "actions", "--run", str(figures_run),
         "--data", str(figures_dir), "--json", str(out), "--epochs", "3", "--device", "cpu",
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["classes"] == [
        "walking",
        "waving",
        "jumping_jacks",
        "squats",
        "boxing",
        "bending",
    ]
    assert figures["split"] == "metadata" and figures["observed_steps"] == 8
    assert figures["train_sequences"] > 0 and figures["test_sequences"] > 0
    # Rows of the confusion matrix are the true classes of the test sequences: the accuracy
    # is its diagonal, the baseline the share of the training set's most frequent class.
    confusion = np.array(figures["confusion"])
    tested = figures["test_sequences"]
    assert confusion.sum() == tested
    assert figures["accuracy"] == pytest.approx(np.trace(confusion) / tested)
    most_frequent = figures["classes"].index(figures["most_frequent_class"])
    assert figures["most_frequent_class_accuracy"] == pytest.approx(
        confusion[most_frequent].sum() / tested
    )
    # The stand-in stores its joints: the same classifier also ran on the true coordinates.
    assert isinstance(figures["ground_truth_accuracy"], float)
    assert out.with_suffix(".png").stat().st_size > 0
    assert "most frequent class" in result.stdout


@pytest.mark.integration
def test_unlabelled_data_is_refused_with_the_file_named(tiny_run, basketball_dir):
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "actions", "--run", str(tiny_run),
         "--data", str(basketball_dir), "--epochs", "1", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 1  # the data lack labels: a DataError
    assert "basketball_" in result.stderr and "no 'action' label" in result.stderr
    assert "Traceback" not in result.stderr
