"""The JSON layout of every ``keypoint-wm evaluate`` command, pinned key by key.

Each test runs the real command on the tiny fixtures and compares the nested key set of the
JSON it writes (``a.b`` for a key inside an object, ``a[].b`` for a key inside the objects
of a list) with the layout users' scripts read. A key that moves, disappears or appears
fails here. Over seeds (keypoint_wm/evaluation/seeds.py) the layout adds ``"seed_ci95"``
(null for one run) and ``"per_run"`` (each run's object, of the same keys); one run's
top-level object is exactly its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kwm_testing import key_paths

pytestmark = pytest.mark.integration


def under(prefix: str, keys: set[str]) -> set[str]:
    """``keys`` moved under ``prefix`` (``prefix`` itself included)."""
    return {prefix} | {f"{prefix}.{k}" if not k.startswith("[]") else prefix + k for k in keys}


def test_key_paths_names_nested_keys_and_list_elements():
    value = {"a": {"b": 1, "c": [1.0, 2.0]}, "d": [{"e": None}, {"f": "x"}]}
    assert key_paths(value) == {"a", "a.b", "a.c", "d", "d[].e", "d[].f"}
    assert under("x", {"a", "[].b"}) == {"x", "x.a", "x[].b"}


def with_seeds(keys: set[str]) -> set[str]:
    """One run's layout over seeds: its keys, ``seed_ci95`` (null) and ``per_run[]``."""
    return keys | {"seed_ci95"} | under("per_run", {f"[].{k}" for k in keys})


def assert_one_run(figures: dict[str, Any]) -> None:
    """One run: the top level is that run's own object, with no interval over seeds."""
    assert figures["seed_ci95"] is None and len(figures["per_run"]) == 1
    assert {k: v for k, v in figures.items() if k not in ("seed_ci95", "per_run")} == figures[
        "per_run"
    ][0]


def run_cli(*args: str | Path) -> dict[str, Any]:
    """Run ``keypoint-wm evaluate ...`` on the CPU; return the JSON it wrote to --json."""
    argv = [str(a) for a in args]
    out = Path(argv[argv.index("--json") + 1])
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", *argv, "--device", "cpu", "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(out.read_text())


HEADLINE = {
    "r2_observed",
    "error_observed",
    "error_predicted",
    "error_predicted_last_observed_baseline",
    "error_mean_baseline",
}
TRACKING_TASK = HEADLINE | {
    "per_step",
    "per_step.model",
    "per_step.last_observed_baseline",
    "per_step.mean_baseline",
    "train_windows",
    "test_windows",
    "objects",
}
TRACKING = (
    {"samples", "best_sample", "test_fraction", "observed_steps", "predicted_steps"}
    | HEADLINE
    | {"tasks"}
    | under("tasks.all", TRACKING_TASK)  # the Basketball data are one task, "all"
)
CURVE = {"mean", "ci95", "average"}
CURVES = set().union(*(under(which, CURVE) for which in ("closest", "furthest", "copy_last_frame")))
VIDEO = (
    {"samples", "observed_steps", "predicted_steps", "test_windows", "split", "psnr_cap_db"}
    | under("metrics", under("psnr", CURVES) | under("ssim", CURVES))
    | {f"{m}_{w}" for m in ("psnr", "ssim") for w in ("closest", "furthest", "copy_last_frame")}
    | under("skipped", {"vgg_similarity", "fvd"})
    | {"fvd"}
)
CLASSES = ("walking", "waving", "jumping_jacks", "squats", "boxing", "bending")


def actions_layout(classes: tuple[str, ...] = CLASSES) -> set[str]:
    """Action recognition's keys; ``per_class_accuracy`` has one key per class present."""
    return ACTIONS | under("per_class_accuracy", set(classes))


ACTIONS = {
    "accuracy",
    "most_frequent_class_accuracy",
    "most_frequent_class",
    "accuracy_over_baseline",
    "ground_truth_accuracy",
    "classes",
    "confusion",
    "observed_steps",
    "feature_size",
    "representation",
    "train_sequences",
    "test_sequences",
    "split",
    "epochs",
}
DIVERSITY_OBJECT = {"name", "keypoint", "endpoint_spread", "best_error", "mean_error", "true"}
DIVERSITY = {
    "samples",
    "observed_steps",
    "predicted_steps",
    "split",
    "ground_truth",
    "endpoint_spread",
    "best_error",
    "mean_error",
} | under("sequences", {"[].index", "[].task", "[].file"} | under("[].objects", {"[].samples"}))
DIVERSITY |= {f"sequences[].objects[].{k}" for k in DIVERSITY_OBJECT}
CLI = {"run", "data"}  # what the command adds to the library's result


def test_tracking_layout(tiny_run, basketball_dir, tmp_path):
    figures = run_cli("tracking", "--run", tiny_run, "--data", basketball_dir, "--samples", "2",
                      "--json", tmp_path / "t.json", "--plot", tmp_path / "t.png")  # fmt: skip
    assert key_paths(figures) == with_seeds(TRACKING | CLI)
    assert_one_run(figures)


def test_video_layout(tiny_run, basketball_dir, tmp_path):
    figures = run_cli("video", "--run", tiny_run, "--data", basketball_dir, "--samples", "2",
                      "--max-windows", "2", "--json", tmp_path / "v.json")  # fmt: skip
    assert key_paths(figures) == with_seeds(VIDEO | CLI)
    assert_one_run(figures)


def test_actions_layout(figures_run, figures_dir, tmp_path):
    figures = run_cli("actions", "--run", figures_run, "--data", figures_dir, "--epochs", "1",
                      "--json", tmp_path / "a.json")  # fmt: skip
    assert key_paths(figures) == with_seeds(actions_layout() | CLI)
    assert_one_run(figures)


def test_diversity_layout(tiny_run, basketball_dir, tmp_path):
    figures = run_cli("diversity", "--run", tiny_run, "--data", basketball_dir, "--sequences",
                      "0,1", "--samples", "2", "--json", tmp_path / "d.json")  # fmt: skip
    assert key_paths(figures) == with_seeds(DIVERSITY | CLI)
    assert_one_run(figures)


def _compare_run(sections: set[str], classes: tuple[str, ...] = ()) -> set[str]:
    keys = {"run", "step", "config"}
    layouts = {"video": VIDEO, "tracking": TRACKING, "actions": actions_layout(classes)}
    for name in sections:
        keys |= under(name, layouts[name])
    return keys


def _without_configs(paths: set[str]) -> set[str]:
    """The model config under ``runs.<label>.config`` is the run's own (checked apart)."""
    return {p for p in paths if ".config." not in p}


COMPARE = {"data", "labels", "table", "skipped", "runs", "markdown", "plots"}
COMPARE |= under("rows", {"[].metric", "[].higher_is_better", "[].description"})


def compare_with_seeds(keys: set[str], labels: tuple[str, ...]) -> set[str]:
    """Over seeds: ``seed_ci95`` (null: one run per variant), ``per_run.<label>[]`` holding
    each run's keys (those under ``runs.<label>``), and ``variants.<label>``: those keys in
    the layout of a one-variant command over seeds (:func:`with_seeds`)."""
    out = keys | {"seed_ci95", "per_run", "variants"}
    for label in labels:
        inner = {k.removeprefix(f"runs.{label}.") for k in keys if k.startswith(f"runs.{label}.")}
        out |= under(f"per_run.{label}", {f"[].{k}" for k in inner})
        out |= under(f"variants.{label}", with_seeds(inner))
    return out


def assert_one_run_per_variant(report: dict[str, Any]) -> None:
    assert report["seed_ci95"] is None
    assert report["per_run"] == {label: [entry] for label, entry in report["runs"].items()}
    assert report["variants"] == {
        label: {**entry, "seed_ci95": None, "per_run": [entry]}
        for label, entry in report["runs"].items()
    }


def test_compare_layout_two_runs_on_basketball(tiny_run, rnn_run, basketball_dir, tmp_path):
    report = run_cli("compare", tiny_run, rnn_run, "--data", basketball_dir, "--samples", "2",
                     "--max-windows", "2", "--tracking-samples", "2",
                     "--json", tmp_path / "c.json")  # fmt: skip
    labels = (tiny_run.name, rnn_run.name)
    rows = ("psnr_closest", "psnr_furthest", "psnr_copy_last_frame", "ssim_closest",
            "ssim_furthest", "ssim_copy_last_frame", "tracking_r2_observed",
            "tracking_error_observed", "tracking_error_predicted")  # fmt: skip
    expected = COMPARE | under("skipped", {"actions"})
    expected |= set().union(*(under(f"table.{row}", set(labels)) for row in rows))
    for label in labels:
        expected |= under(f"runs.{label}", _compare_run({"video", "tracking"}))
    assert _without_configs(key_paths(report)) == compare_with_seeds(expected, labels)
    assert_one_run_per_variant(report)
    import keypoint_wm

    for label, run in zip(labels, (tiny_run, rnn_run), strict=True):
        config = keypoint_wm.load(run, device="cpu").config.model.to_dict()
        assert report["runs"][label]["config"] == json.loads(json.dumps(config))


def test_compare_layout_with_action_labels(figures_run, figures_dir, tmp_path):
    report = run_cli("compare", figures_run, "--data", figures_dir, "--samples", "2",
                     "--max-windows", "2", "--tracking-samples", "2", "--epochs", "1",
                     "--json", tmp_path / "c.json")  # fmt: skip
    label = figures_run.name
    rows = ("psnr_closest", "psnr_furthest", "psnr_copy_last_frame", "ssim_closest",
            "ssim_furthest", "ssim_copy_last_frame", "tracking_r2_observed",
            "tracking_error_observed", "tracking_error_predicted", "action_accuracy",
            "action_most_frequent_class")  # fmt: skip
    expected = COMPARE | set().union(*(under(f"table.{row}", {label}) for row in rows))
    # --max-windows 2 leaves a few classes; per_class_accuracy has a key for each of them.
    classes = tuple(report["runs"][label]["actions"]["classes"])
    assert set(classes) <= set(CLASSES)
    expected |= under(f"runs.{label}", _compare_run({"video", "tracking", "actions"}, classes))
    assert _without_configs(key_paths(report)) == compare_with_seeds(expected, (label,))
    assert_one_run_per_variant(report)
