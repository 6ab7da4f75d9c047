"""`data info` and `data check`: every file train rejects is named, nothing is modified."""

from __future__ import annotations

import numpy as np
import pytest

from keypoint_wm.data.episodes import Episode, EpisodeFormatError, save_episode
from keypoint_wm.data.inspect import check_dataset, dataset_info
from keypoint_wm.data.sequences import EpisodeIndex


def write(path, size: int = 8, frames: int = 5) -> None:
    action = np.ones((frames, 2), np.float32)
    action[0] = 0
    image = np.zeros((frames, size, size, 3), np.uint8)
    save_episode(path, Episode(image, action, np.zeros(frames, np.float32)))


def test_check_names_the_files_whose_image_size_differs_from_the_dataset(tmp_path):
    for i in range(3):
        write(tmp_path / "t" / f"episode_{i}.npz")
    write(tmp_path / "t" / "odd.npz", size=16)
    count, bad = check_dataset(tmp_path)
    assert count == 4
    assert list(bad) == [tmp_path / "t" / "odd.npz"]
    assert (
        "16x16x3 differs from the dataset's 8x8x3 (3 files)" in bad[tmp_path / "t" / "odd.npz"][0]
    )
    with pytest.raises(EpisodeFormatError, match=r"odd\.npz: image shape 16x16x3 differs"):
        EpisodeIndex(tmp_path)


def test_info_summarises_valid_data_and_names_a_bad_file_in_one_line(tmp_path):
    write(tmp_path / "t" / "a.npz")
    info = dataset_info(tmp_path)
    assert info["episodes"] == 1 and info["tasks"]["t"]["action_size"] == [2]
    assert info["tasks"]["t"]["image_shape"] == [[8, 8, 3]]
    np.savez(tmp_path / "t" / "b.npz", image=np.zeros((5, 8, 8, 3), np.uint8), action=np.zeros(5))
    before = (tmp_path / "t" / "b.npz").read_bytes()
    with pytest.raises(EpisodeFormatError, match=r"b\.npz: 'action' must be float32") as caught:
        dataset_info(tmp_path)
    assert "\n" not in str(caught.value) and "data check" in str(caught.value)
    assert (tmp_path / "t" / "b.npz").read_bytes() == before
