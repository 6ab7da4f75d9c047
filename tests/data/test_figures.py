"""The figure stand-in: labelled actions, joints where the figure is drawn, CLI behaviour."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from keypoint_wm.conventions import keypoint_to_pixel
from keypoint_wm.data.episodes import check_episode_file, load_episode
from keypoint_wm.data.figures import ACTIONS, figure_sequence, write_figures_dataset
from keypoint_wm.data.sequences import is_test_file
from keypoint_wm.data.skeleton import EVAL_JOINTS_17, JOINT_NAMES_17


def test_at_least_five_actions_and_the_label_cycles_through_them():
    assert len(ACTIONS) >= 5
    labels = [figure_sequence(0, i, num_frames=2)[2]["action"] for i in range(2 * len(ACTIONS))]
    assert labels == list(ACTIONS) * 2


def test_joints_lie_on_the_drawn_figure():
    """Every joint's pixel differs from the background colour: the figure is drawn there."""
    for index in range(len(ACTIONS)):
        images, joints, params = figure_sequence(3, index, num_frames=12, size=64)
        assert images.shape == (12, 64, 64, 3) and images.dtype == np.uint8
        assert joints.shape == (12, 17, 2)
        assert np.abs(joints).max() <= 1.0
        background = np.array(params["style"]["background"])
        floor = np.array(params["style"]["floor"])
        pixels = np.rint(keypoint_to_pixel(joints, 64)).astype(int)
        for t in range(12):
            for j, (col, row) in enumerate(pixels[t]):
                colour = images[t, row, col].astype(int)
                off = min(np.abs(colour - background).sum(), np.abs(colour - floor).sum())
                assert off > 30, f"{params['action']} frame {t}: {JOINT_NAMES_17[j]} not drawn"


def test_sequences_vary_in_speed_phase_size_position_and_colour():
    same_action = [
        figure_sequence(0, i, num_frames=2)[2] for i in range(0, 6 * len(ACTIONS), len(ACTIONS))
    ]
    for key in ("frequency", "phase", "height", "centre_x"):
        assert len({p[key] for p in same_action}) == len(same_action), key
    assert len({tuple(p["style"]["shirt"]) for p in same_action}) == len(same_action)


def test_joints_move_with_the_action():
    _, joints, _ = figure_sequence(0, 2, num_frames=30)  # jumping jacks: wrists go up and down
    wrist = JOINT_NAMES_17.index("left_wrist")
    assert np.ptp(joints[:, wrist, 1]) > 0.3


@pytest.mark.integration
def test_dataset_is_deterministic_labelled_split_and_refuses_other_settings(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_figures_dataset(a, num_sequences=8, num_frames=6, size=32, progress=False)
    write_figures_dataset(b, num_sequences=8, num_frames=6, size=32, progress=False)
    files = sorted(p.name for p in a.glob("*.npz"))
    assert len(files) == 8
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert check_episode_file(a / name) == []
        episode = load_episode(a / name)
        assert episode.true_object_pos.shape == (6, 17, 2)
        assert episode.metadata["action"] in ACTIONS
        expected = "test" if is_test_file(name, 0.2) else "train"
        assert episode.metadata["split"] == expected
    # Re-running finishes without rewriting; other settings are refused, nothing touched.
    before = (a / files[0]).stat().st_mtime_ns
    summary = write_figures_dataset(a, num_sequences=8, num_frames=6, size=32, progress=False)
    assert summary["kept"] == 8 and summary["written"] == 0
    assert (a / files[0]).stat().st_mtime_ns == before
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "data", "figures", "--out", str(a),
         "--sequences", "8", "--frames", "7", "--size", "32", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "other settings" in result.stderr and "num_frames" in result.stderr


@pytest.mark.integration
def test_cli_writes_the_requested_sequences_with_the_evaluation_joints(tmp_path):
    out = tmp_path / "figs"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "data", "figures", "--out", str(out),
         "--sequences", "7", "--frames", "5", "--size", "32", "--joints", "eval12", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["written"] == 7
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] and manifest["actions"] == list(ACTIONS)
    episode = load_episode(out / "figure_000000.npz")
    assert episode.true_object_pos.shape == (5, 12, 2)
    full = figure_sequence(0, 0, num_frames=5, size=32)[1]
    np.testing.assert_allclose(episode.true_object_pos, full[:, list(EVAL_JOINTS_17)])
