"""The episode file format: round trips, determinism, the reference format, validation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from keypoint_wm.data.episodes import (
    Episode,
    EpisodeFormatError,
    check_episode_file,
    episode_to_bytes,
    iter_episode_files,
    load_episode,
    save_episode,
)


def make_episode(frames: int = 5, action_size: int = 2, objects: int = 3) -> Episode:
    rng = np.random.default_rng(0)
    action = rng.uniform(-1, 1, (frames, action_size)).astype(np.float32)
    action[0] = 0
    reward = rng.uniform(0, 1, frames).astype(np.float32)
    reward[0] = 0
    return Episode(
        image=rng.integers(0, 256, (frames, 8, 8, 3), dtype=np.uint8),
        action=action,
        reward=reward,
        true_object_pos=rng.uniform(-1, 1, (frames, objects, 2)).astype(np.float32),
        metadata={"domain": "cheetah", "task": "run", "seed": 3},
        state=rng.normal(size=(frames, 4)).astype(np.float32),
    )


def test_round_trip_keeps_every_array_and_metadata(tmp_path):
    episode = make_episode()
    path = save_episode(tmp_path / "a.npz", episode)
    loaded = load_episode(path)
    for key in ("image", "action", "reward", "true_object_pos", "state"):
        np.testing.assert_array_equal(getattr(loaded, key), getattr(episode, key))
        assert getattr(loaded, key).dtype == getattr(episode, key).dtype
    assert loaded.metadata == episode.metadata
    # Loads without pickle: metadata is a JSON string array.
    with np.load(path, allow_pickle=False) as data:
        assert json.loads(str(data["metadata"]))["task"] == "run"


def test_same_episode_gives_identical_bytes():
    assert episode_to_bytes(make_episode()) == episode_to_bytes(make_episode())


def test_write_is_atomic_and_leaves_no_temp_file(tmp_path):
    save_episode(tmp_path / "a.npz", make_episode())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npz"]


def test_reference_format_with_only_images_loads_with_zero_actions(tmp_path):
    images = np.zeros((6, 4, 4, 3), np.uint8)
    pos = np.zeros((6, 2, 2), np.float32)
    np.savez(tmp_path / "ref.npz", image=images, true_object_pos=pos)
    episode = load_episode(tmp_path / "ref.npz")
    assert episode.action.shape == (6, 0)
    assert episode.reward.shape == (6,)
    assert episode.true_object_pos.shape == (6, 2, 2)
    assert episode.state is None
    assert check_episode_file(tmp_path / "ref.npz") == []


def test_episode_without_state_still_loads(tmp_path):
    episode = make_episode()
    episode.state = None
    loaded = load_episode(save_episode(tmp_path / "old.npz", episode))
    assert loaded.state is None and check_episode_file(tmp_path / "old.npz") == []


def test_save_refuses_misaligned_episode(tmp_path):
    episode = make_episode()
    episode.action[0] = 1.0
    with pytest.raises(EpisodeFormatError, match=r"action\[0\]"):
        save_episode(tmp_path / "bad.npz", episode)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("arrays", "reason"),
    [
        ({"image": np.zeros((3, 4, 4, 3), np.float32)}, "uint8"),
        (
            {"image": np.zeros((3, 4, 4, 3), np.uint8), "action": np.zeros((2, 1), np.float32)},
            "action",
        ),
        (
            {"image": np.zeros((3, 4, 4, 3), np.uint8), "reward": np.full(3, np.nan, np.float32)},
            "reward",
        ),
        ({"action": np.zeros((3, 1), np.float32)}, "image"),
        (
            {"image": np.zeros((3, 4, 4, 3), np.uint8), "state": np.zeros((2, 5), np.float32)},
            "'state' must be float32 [3,D]",
        ),
        (
            {"image": np.zeros((3, 4, 4, 3), np.uint8), "state": np.full((3, 5), np.inf, "f4")},
            "'state' has non-finite values",
        ),
    ],
)
def test_check_names_the_problem(tmp_path, arrays, reason):
    np.savez(tmp_path / "x.npz", **arrays)
    problems = check_episode_file(tmp_path / "x.npz")
    assert problems and reason in " ".join(problems)


def test_check_reports_truncated_file(tmp_path):
    path = save_episode(tmp_path / "a.npz", make_episode())
    path.write_bytes(path.read_bytes()[:100])
    assert "unreadable" in check_episode_file(path)[0]
    with pytest.raises(EpisodeFormatError, match="a.npz"):
        load_episode(path)


def test_iter_skips_hidden_unfinished_files(tmp_path):
    (tmp_path / "t").mkdir()
    save_episode(tmp_path / "t" / "episode_000000.npz", make_episode())
    (tmp_path / "t" / ".episode_000001.npz.123.tmp").write_bytes(b"partial")
    assert [p.name for p in iter_episode_files(tmp_path)] == ["episode_000000.npz"]
    with pytest.raises(NotADirectoryError):
        list(iter_episode_files(tmp_path / "t" / "episode_000000.npz"))


def _image(frames: int = 6, size: int = 4) -> np.ndarray:
    return np.zeros((frames, size, size, 3), np.uint8)


def _write_zip(path, members: dict[str, bytes]) -> None:
    import zipfile

    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


# Every case `data check` names; the training data path must name the same file and reason.
BAD_FILES = {
    "float image": ({"image": np.zeros((6, 4, 4, 3), np.float32)}, "'image' must be uint8"),
    "metadata a JSON list": ({"image": _image(), "metadata": np.array("[1, 2]")}, "JSON object"),
    "metadata not JSON": ({"image": _image(), "metadata": np.array("{oops")}, "not valid JSON"),
    "1-D action": ({"image": _image(), "action": np.zeros(6, np.float32)}, "'action' must be"),
    "1-D positions": (
        {"image": _image(), "true_object_pos": np.zeros(6, np.float32)},
        "'true_object_pos' must be",
    ),
    "float64 action": ({"image": _image(), "action": np.zeros((6, 2))}, "float32"),
    "action length": ({"image": _image(), "action": np.zeros((5, 2), np.float32)}, "[6,A]"),
    "NaN action": (
        {"image": _image(), "action": np.full((6, 2), np.nan, np.float32)},
        "'action' has non-finite values",
    ),
    "unknown key": ({"image": _image(), "extra": np.zeros(3)}, "unknown keys ['extra']"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_one_check_names_the_file_and_reason_for_data_check_load_and_the_index(tmp_path, case):
    from keypoint_wm.data.sequences import EpisodeIndex

    arrays, reason = BAD_FILES[case]
    good = save_episode(tmp_path / "a.npz", make_episode(frames=6, objects=2))
    path = tmp_path / "b.npz"
    np.savez(path, **arrays)
    assert any(reason in p for p in check_episode_file(path)), check_episode_file(path)
    assert check_episode_file(good) == []
    with pytest.raises(EpisodeFormatError, match=r"b\.npz: .*" + re.escape(reason)):
        EpisodeIndex(tmp_path, "train", 0.5)
    if case != "unknown key":  # loading ignores arrays it does not know
        with pytest.raises(EpisodeFormatError, match=r"b\.npz: .*" + re.escape(reason)):
            load_episode(path)


def test_archives_that_are_not_plain_npz_are_named(tmp_path):
    import pickle

    from keypoint_wm.data.sequences import EpisodeIndex

    _write_zip(tmp_path / "member.npz", {"image.npy": _npy(_image()), "notes.txt": b"hi"})
    problems = check_episode_file(tmp_path / "member.npz")
    assert problems == ["zip member 'notes.txt' is not a .npy array"]
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"image": 1}))
    assert "not an .npz archive" in check_episode_file(tmp_path / "pickle.npz")[0]
    with pytest.raises(EpisodeFormatError, match=r"member\.npz: zip member 'notes\.txt'"):
        EpisodeIndex(tmp_path)
    with pytest.raises(EpisodeFormatError, match=r"pickle\.npz: .*not an \.npz archive"):
        load_episode(tmp_path / "pickle.npz")


def test_format_errors_are_data_errors_and_survive_a_loader_worker():
    from torch._utils import ExceptionWrapper

    from keypoint_wm.errors import DataError

    assert issubclass(EpisodeFormatError, DataError) and EpisodeFormatError.exit_code == 1
    try:
        raise EpisodeFormatError("data/t/e.npz: 'action' has non-finite values")
    except EpisodeFormatError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(EpisodeFormatError) as caught:
        wrapped.reraise()
    assert str(caught.value) == "data/t/e.npz: 'action' has non-finite values"
