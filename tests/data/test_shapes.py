"""Bouncing shapes: reference-format files whose positions match what is drawn."""

from __future__ import annotations

import numpy as np
import pytest

from keypoint_wm.data.episodes import check_episode_file, load_episode
from keypoint_wm.data.sequences import EpisodeIndex
from keypoint_wm.data.shapes import ShapesConfig, render_shapes_sequence, write_shapes_dataset


def test_true_positions_sit_on_the_drawn_objects() -> None:
    config = ShapesConfig(image_size=32, num_frames=6, num_objects=1, min_radius=2.0)
    seq = render_shapes_sequence(config, seed=1, index=0)
    image, pos = seq["image"].astype(float), seq["true_object_pos"]
    for t in range(config.num_frames):
        background = np.median(image[t].reshape(-1, 3), axis=0)
        mask = np.abs(image[t] - background).sum(-1) > 30
        rows, cols = np.nonzero(mask)
        col, row = cols.mean(), rows.mean()
        x, y = -1 + 2 * col / 31, 1 - 2 * row / 31  # keypoint frame, y up
        assert pos[t, 0] == pytest.approx([x, y], abs=0.08)


def test_objects_stay_inside_the_frame_and_move() -> None:
    seq = render_shapes_sequence(ShapesConfig(num_frames=200), seed=0, index=5)
    pos = seq["true_object_pos"]
    assert np.abs(pos).max() <= 1.0
    assert np.abs(np.diff(pos, axis=0)).mean() > 0.01


def test_written_dataset_is_reference_format_deterministic_and_resumable(tmp_path) -> None:
    config = ShapesConfig(image_size=32, num_frames=10, num_objects=3)
    first = write_shapes_dataset(tmp_path / "a", 4, seed=3, config=config, progress=False)
    assert first == {"written": 4, "kept": 0}
    files = sorted((tmp_path / "a").glob("*.npz"))
    assert not (tmp_path / "a" / "manifest.json").exists()
    with np.load(files[0]) as data:
        assert sorted(data.files) == ["image", "true_object_pos"]
    assert all(check_episode_file(f) == [] for f in files)
    files[1].unlink()  # an interrupted run: the missing file is rewritten identically
    again = write_shapes_dataset(tmp_path / "a", 4, seed=3, config=config, progress=False)
    assert again == {"written": 1, "kept": 3}
    write_shapes_dataset(tmp_path / "b", 4, seed=3, config=config, progress=False)
    for name in ("shapes_00001.npz", "shapes_00003.npz"):
        a, b = load_episode(tmp_path / "a" / name), load_episode(tmp_path / "b" / name)
        np.testing.assert_array_equal(a.image, b.image)
    index = EpisodeIndex(tmp_path / "a")
    assert len(index) == 4 and index.action_size == 0


def test_data_shapes_command_writes_reference_files(tmp_path) -> None:
    from keypoint_wm.cli import main

    out = tmp_path / "shapes"
    args = ["data", "shapes", "--out", str(out), "--sequences", "2", "--frames", "5"]
    assert main([*args, "--size", "32", "--objects", "2", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["shapes_00000.npz", "shapes_00001.npz"]
    with pytest.raises(SystemExit) as exit_info:  # argparse names the flag and exits 2
        main(["data", "shapes", "--out", str(out), "--sequences", "0"])
    assert exit_info.value.code == 2
