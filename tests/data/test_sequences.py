"""Training windows: determinism, splits, multi-task padding, the reference format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from keypoint_wm.data.episodes import Episode, save_episode
from keypoint_wm.data.sequences import EpisodeIndex, WindowDataset, make_loader


def write_task(root, task: str, episodes: int, frames: int, action_size: int, objects: int):
    rng = np.random.default_rng(len(task))
    for i in range(episodes):
        action = rng.uniform(-1, 1, (frames, action_size)).astype(np.float32)
        action[0] = 0
        reward = rng.uniform(0, 1, frames).astype(np.float32)
        reward[0] = 0
        image = np.full((frames, 8, 8, 3), i, np.uint8)
        image[:, 0, 0, 0] = np.arange(frames)  # frame number, to check windows
        save_episode(
            root / task / f"episode_{i:06d}.npz",
            Episode(
                image, action, reward, rng.uniform(-1, 1, (frames, objects, 2)).astype(np.float32)
            ),
        )


@pytest.fixture
def two_tasks(tmp_path):
    write_task(tmp_path, "cheetah-run", 6, 20, action_size=6, objects=3)
    write_task(tmp_path, "reacher-easy", 6, 20, action_size=2, objects=2)
    return tmp_path


def test_windows_are_a_function_of_seed_and_number(two_tasks):
    dataset = WindowDataset(EpisodeIndex(two_tasks), window=5, seed=1)
    again = WindowDataset(EpisodeIndex(two_tasks), window=5, seed=1)
    for number in (0, 7, 12345):
        a, b = dataset[number], again[number]
        assert all(torch.equal(a[k], b[k]) for k in a)
    item = dataset[3]
    frame_numbers = item["image"][:, 0, 0, 0]
    assert torch.equal(frame_numbers, frame_numbers[0] + torch.arange(5, dtype=torch.uint8))


def test_reference_frames_come_from_another_episode_of_the_same_task(two_tasks):
    index = EpisodeIndex(two_tasks)
    dataset = WindowDataset(index, window=5, seed=1, reference="other_episode")
    for number in range(40):
        record, _ = dataset.locate(number)
        other, frame = dataset.reference_of(number, record)
        assert other.task == record.task and other.path != record.path
        item = dataset[number]
        episode = int(other.path.stem.split("_")[-1])
        assert item["reference"].shape == (8, 8, 3)
        assert int(item["reference"][1, 1, 0]) == episode  # the other episode's pixels
        assert int(item["reference"][0, 0, 0]) == frame  # ... at the drawn frame
        assert torch.equal(item["reference"], dataset[number]["reference"])  # seeded
    assert "reference" not in WindowDataset(index, window=5, seed=1)[0]
    with pytest.raises(ValueError, match="other_episode"):
        WindowDataset(index, window=5, reference="last")


def test_multi_task_actions_are_zero_padded_to_the_largest_size(two_tasks):
    index = EpisodeIndex(two_tasks)
    assert index.action_size == 6 and index.tasks == ["cheetah-run", "reacher-easy"]
    dataset = WindowDataset(index, window=4, seed=0)
    reacher = next(dataset[i] for i in range(100) if int(dataset[i]["task"]) == 1)
    assert reacher["action"].shape == (4, 6)
    assert torch.all(reacher["action"][:, 2:] == 0)
    assert reacher["true_object_pos"].shape == (4, 3, 2)  # padded to the largest N


def test_train_and_test_splits_are_disjoint_and_stable(two_tasks):
    train = {r.path for r in EpisodeIndex(two_tasks, "train", 0.3).records}
    test = {r.path for r in EpisodeIndex(two_tasks, "test", 0.3).records}
    assert train and test and not train & test
    assert train | test == {r.path for r in EpisodeIndex(two_tasks).records}
    assert test == {r.path for r in EpisodeIndex(two_tasks, "test", 0.3).records}


def test_loader_resumes_the_same_stream(two_tasks):
    dataset = WindowDataset(EpisodeIndex(two_tasks), window=4, seed=2)
    full = iter(make_loader(dataset, batch_size=3))
    batches = [next(full) for _ in range(4)]
    resumed = next(iter(make_loader(dataset, batch_size=3, first_batch=2)))
    assert torch.equal(resumed["image"], batches[2]["image"])


@pytest.mark.integration
def test_reference_format_flat_folder_trains(tmp_path):
    """The reference implementation's files: image (+ true_object_pos) only, no manifest."""
    from kwm_testing import tiny_config

    from keypoint_wm.train import train

    rng = np.random.default_rng(0)
    data = tmp_path / "ref"
    data.mkdir()
    for i in range(6):
        frames = np.zeros((12, 32, 32, 3), np.uint8)
        centre = rng.uniform(6, 26, 2)
        for t in range(12):
            r, c = (centre + t * 0.5).astype(int) % 32
            frames[t, r : r + 3, c : c + 3] = (255, 80, 0)
        np.savez(data / f"{i:04d}.npz", image=frames)
    index = EpisodeIndex(data)
    assert index.action_size == 0 and index.tasks == ["all"]
    result = train(tiny_config(2), data, tmp_path / "run", progress=False)
    assert result["step"] == 2


def test_too_short_episodes_give_a_clear_error(two_tasks):
    with pytest.raises(FileNotFoundError, match="at least 50 frames"):
        EpisodeIndex(two_tasks, min_frames=50)
