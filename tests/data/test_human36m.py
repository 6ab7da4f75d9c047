"""Human3.6M conversion on a tiny tree in the exact official layout (real mp4 + real CDF)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from keypoint_wm.conventions import keypoint_to_pixel
from keypoint_wm.data.episodes import load_episode
from keypoint_wm.data.human36m import (
    Human36MConfig,
    action_class,
    convert_human36m,
    crop_boxes,
    crop_frame,
    joints_to_keypoints,
    list_videos,
    read_poses,
)
from keypoint_wm.data.skeleton import JOINT_NAMES_17
from keypoint_wm.errors import DataError

FRAMES, WIDTH, HEIGHT = 12, 160, 128
LEFT_WRIST_32 = 19
CAMERA = "54138969"


def _poses(seed: int) -> np.ndarray:
    """[FRAMES, 32, 2] joints of a 'person' drifting right; the left wrist circles."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-25, 25, size=(32, 2))
    t = np.arange(FRAMES)[:, None]
    poses = base[None] + np.stack([70 + 1.5 * t, 60 + 0 * t], axis=-1)
    angle = 0.5 * np.arange(FRAMES)
    poses[:, LEFT_WRIST_32] = poses[:, 0] + 18 * np.stack([np.cos(angle), np.sin(angle)], -1)
    return poses


def _draw_dot(poses: np.ndarray) -> np.ndarray:
    """Video frames: black, with an anti-aliased white disc (radius 4 px) at the left wrist."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    frames = np.zeros((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(FRAMES):
        u, v = poses[t, LEFT_WRIST_32]
        alpha = np.clip(4.5 - np.hypot(cols - u, rows - v), 0, 1)
        frames[t] = (alpha * 255).astype(np.uint8)[..., None]
    return frames


def _write_cdf(path: Path, pose: np.ndarray) -> None:
    from cdflib.cdfwrite import CDF

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = CDF(str(path), cdf_spec={"Majority": "row_major"}, delete=True)
    spec = {"Variable": "Pose", "Data_Type": 45, "Num_Elements": 1, "Rec_Vary": True,
            "Dim_Sizes": list(pose.shape[1:])}  # fmt: skip
    writer.write_var(spec, var_attrs={}, var_data=pose)
    writer.close()


def _write_video(path: Path, frames: np.ndarray) -> None:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    imageio.mimwrite(str(path), list(frames), fps=50, format="FFMPEG", codec="libx264", quality=10)


def add_video(root: Path, subject: str, action: str, seed: int = 0) -> None:
    poses = _poses(seed)
    _write_video(root / subject / "Videos" / f"{action}.{CAMERA}.mp4", _draw_dot(poses))
    cdf = root / subject / "MyPoseFeatures" / "D2_Positions" / f"{action}.{CAMERA}.cdf"
    _write_cdf(cdf, poses.reshape(1, FRAMES, 64))


@pytest.fixture(scope="module")
def h36m_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    add_video(root, "S1", "Walking 1", seed=1)
    add_video(root, "S1", "TakingPhoto", seed=2)
    add_video(root, "S1", "_ALL 1", seed=3)
    add_video(root, "S9", "Photo", seed=4)
    add_video(root, "S9", "WalkDog 1", seed=5)
    return root


def test_action_names_map_to_the_fifteen_classes():
    assert action_class("Walking 1") == "Walking"
    assert action_class("Discussion 2") == "Discussion"
    assert action_class("TakingPhoto") == action_class("Photo 1") == "Photo"
    assert action_class("WalkingDog 1") == action_class("WalkDog") == "WalkDog"
    assert action_class("WalkTogether 1") == "WalkTogether"
    assert action_class("_ALL 1") is None and action_class("Juggling") is None


def test_split_by_subject_aliases_and_skipped_files(h36m_root):
    with pytest.warns(UserWarning, match="subjects S5, S6, S7, S8, S11 not found"):
        entries = list_videos(h36m_root, Human36MConfig())
    found = {(e.subject, e.action, e.split) for e in entries}
    assert found == {("S1", "Walking", "train"), ("S1", "Photo", "train"),
                     ("S9", "Photo", "test"), ("S9", "WalkDog", "test")}  # fmt: skip
    swapped = Human36MConfig(train_subjects=("S9",), test_subjects=("S1",))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {e.split for e in list_videos(h36m_root, swapped) if e.subject == "S1"} == {"test"}
    with pytest.raises(ValueError, match="both the train and test"):
        Human36MConfig(train_subjects=("S1", "S9"), test_subjects=("S9",))


def test_cdf_poses_are_read_in_the_official_shape(h36m_root):
    path = h36m_root / "S1/MyPoseFeatures/D2_Positions/Walking 1.54138969.cdf"
    np.testing.assert_allclose(read_poses(path), _poses(1))


def test_crop_maps_joints_into_the_frame_exactly():
    """A one-pixel dot at a joint lands on the output pixel its keypoint names."""
    frame = np.zeros((200, 300, 3), np.uint8)
    # Bounding box from pixel edge 100 to 180 (u) and 50 to 130 (v): pixel-aligned, side 80.
    joints = np.array([[[99.5, 49.5], [179.5, 129.5], [140.0, 90.0]]])
    frame[90, 140] = 255  # the third joint
    boxes = crop_boxes(joints, margin=0.0, mode="fixed", smooth=1)
    np.testing.assert_allclose(boxes[0], [139.5, 89.5, 80.0])
    crop = crop_frame(frame, boxes[0], size=80)  # 1 px -> 1 px
    keypoints = joints_to_keypoints(joints, boxes, size=80)
    np.testing.assert_allclose(keypoint_to_pixel(keypoints[0, 2], 80), [40.0, 40.0])
    assert crop[..., 0].argmax() == 40 * 80 + 40 and crop[40, 40, 0] == 255
    # The bounding box's corners are the image's outer pixel edges.
    np.testing.assert_allclose(keypoint_to_pixel(keypoints[0, 0], 80), [-0.5, -0.5])
    np.testing.assert_allclose(keypoint_to_pixel(keypoints[0, 1], 80), [79.5, 79.5])
    # Downscaling by 2 keeps the mapping: the dot covers a quarter of output pixel (20, 20).
    half = crop_frame(frame, boxes[0], size=40)
    kp_half = joints_to_keypoints(joints, boxes, size=40)
    np.testing.assert_allclose(keypoint_to_pixel(kp_half[0, 2], 40), [19.75, 19.75])
    assert half[..., 0].argmax() == 20 * 40 + 20


def test_crop_outside_the_video_is_black():
    frame = np.full((50, 50, 3), 200, np.uint8)
    crop = crop_frame(frame, np.array([0.0, 0.0, 40.0]), size=8)
    assert crop[0, 0].max() == 0 and crop[-1, -1].min() == 200


@pytest.mark.integration
def test_cli_converts_with_split_label_and_joints_on_the_video(h36m_root, tmp_path):
    out = tmp_path / "h36m"
    result = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "data", "human36m", "--root", str(h36m_root),
         "--out", str(out), "--frame-step", "2", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["written"] == 4 and summary["splits"] == {"train": 2, "test": 2}
    episode = load_episode(out / f"S9_WalkDog_1.{CAMERA}.npz")
    assert episode.metadata["split"] == "test" and episode.metadata["action"] == "WalkDog"
    assert episode.metadata["subject"] == "S9"
    assert episode.image.shape == (FRAMES // 2, 64, 64, 3)
    assert episode.true_object_pos.shape == (FRAMES // 2, 17, 2)
    wrist = JOINT_NAMES_17.index("left_wrist")
    rows, cols = np.mgrid[0:64, 0:64]
    for t in range(FRAMES // 2):  # the drawn dot's centroid is where the joint maps
        weight = episode.image[t, ..., 0].astype(float)
        weight[weight < 40] = 0
        centroid = np.array([(weight * cols).sum(), (weight * rows).sum()]) / weight.sum()
        expected = keypoint_to_pixel(episode.true_object_pos[t, wrist], 64)
        assert np.abs(centroid - expected).max() < 0.6, (t, centroid, expected)
    assert json.loads((out / "manifest.json").read_text())["complete"]
    # The same command again keeps everything; other settings are refused.
    again = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "data", "human36m", "--root", str(h36m_root),
         "--out", str(out), "--frame-step", "2", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0 and json.loads(again.stdout)["kept"] == 4
    other = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "data", "human36m", "--root", str(h36m_root),
         "--out", str(out), "--frame-step", "3", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert other.returncode == 2 and "frame_step" in other.stderr


def test_missing_and_malformed_files_are_named(h36m_root, tmp_path):
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(h36m_root / "S1", root / "S1")
    (root / "S1/MyPoseFeatures/D2_Positions/TakingPhoto.54138969.cdf").unlink()
    config = Human36MConfig(train_subjects=("S1",), test_subjects=())
    with pytest.raises(DataError, match="TakingPhoto.54138969.cdf"):
        list_videos(root, config)
    bad_cdf = root / "S1/MyPoseFeatures/D2_Positions/TakingPhoto.54138969.cdf"
    _write_cdf(bad_cdf, np.zeros((1, FRAMES, 30)))
    with pytest.raises(DataError, match=r"TakingPhoto.54138969.cdf.*\(1, frames, 64\)"):
        convert_human36m(root, tmp_path / "out1", config, progress=False)
    bad_cdf.write_bytes(b"not a cdf file")
    with pytest.raises(DataError, match="TakingPhoto.54138969.cdf"):
        read_poses(bad_cdf)
    _write_cdf(bad_cdf, _poses(2).reshape(1, FRAMES, 64))
    (root / "S1/Videos/Walking 1.54138969.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="Walking 1.54138969.mp4"):
        convert_human36m(root, tmp_path / "out2", config, progress=False)
    with pytest.raises(DataError, match="none of the subjects"):
        with pytest.warns(UserWarning):
            list_videos(root, Human36MConfig(train_subjects=("S7",), test_subjects=()))
