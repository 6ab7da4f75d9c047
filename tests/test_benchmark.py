"""``keypoint-wm bench train``: both configurations timed in one run, with the JSON keys that
compare them, as a user runs it (a subprocess: the fast path's host-memory setting is
process-wide); ``bench wrapper --run``: a trained model timed, and named in the JSON."""

from __future__ import annotations

import json
import os
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


def test_bench_wrapper_times_the_shipped_model_and_names_it(tmp_path: Path) -> None:
    """``bench wrapper --run default``: the model shipped in the package, at its own size,
    keypoints and action repeat; the JSON names it and its weight hash (its card's)."""
    from keypoint_wm.bundled import resolve_run

    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "bench", "wrapper", "--run", "default",
         "--steps", "1", "--envs", "2", "--quiet", "--json", str(out)],
        capture_output=True, text=True, timeout=240,
        env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    shipped = resolve_run("default")
    config = json.loads((shipped / "config.json").read_text())
    card = json.loads((shipped / "card.json").read_text())
    model = report["model"]
    assert model["run"] == "default" and model["preset"] is None
    assert model["weights"] == card["weights"] and model["step"] == card["source"]["step"]
    assert model["num_keypoints"] == config["model"]["num_keypoints"]
    assert report["image_size"] == config["model"]["image_size"]
    assert report["action_repeat"] == config["data"]["action_repeat"]
    assert set(report["ratios"]) == {"bare_vs_wrapped_1env", "bare_vs_wrapped_2env"}
    assert f"model default (weights {card['weights']})" in result.stdout


@pytest.mark.parametrize("flags", [["--preset", "dmcs"], ["--keypoints", "32"],
                                   ["--action-repeat", "4", "--keypoints", "32"]])  # fmt: skip
def test_bench_wrapper_run_refuses_what_the_run_fixes(flags: list[str], tmp_path, capsys):
    from keypoint_wm.cli.main import main

    out = tmp_path / "bench.json"
    code = main(["bench", "wrapper", "--run", "default", *flags, "--json", str(out)])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1, error
    assert all(flag in error[0] for flag in flags if flag.startswith("--"))
    assert "--run default" in error[0] and not out.exists()


def test_bench_wrapper_run_must_be_a_run(tmp_path, capsys):
    from keypoint_wm.cli.main import main

    code = main(["bench", "wrapper", "--run", str(tmp_path), "--steps", "1"])
    assert code == 2 and "--run" in capsys.readouterr().err
