"""Three splits: the world model trains on "train", the in-training probe scores
"validation", and evaluation reports "test", which stays the split it always was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kwm_testing import tiny_config

from keypoint_wm.checkpoint import latest_checkpoint
from keypoint_wm.data.episodes import Episode, load_episode, save_episode
from keypoint_wm.data.sequences import (
    EpisodeIndex,
    dataset_fingerprint,
    is_test_file,
    is_validation_file,
)

SPLITS = ("train", "validation", "test")


def _files(root: Path, split: str, validation_fraction: float = 0.1) -> set[Path]:
    index = EpisodeIndex(root, split, 0.2, validation_fraction=validation_fraction)
    return {r.path for r in index.records}


def _assert_three_disjoint_splits(root: Path) -> dict[str, set[Path]]:
    files = {split: _files(root, split) for split in SPLITS}
    assert all(files.values()), {k: len(v) for k, v in files.items()}
    assert not files["train"] & files["validation"]
    assert not files["train"] & files["test"]
    assert not files["validation"] & files["test"]
    assert set.union(*files.values()) == {r.path for r in EpisodeIndex(root).records}
    # The test split is the one it was before validation existed; validation comes out of
    # what used to be train.
    assert files["test"] == _files(root, "test", validation_fraction=0.0)
    assert files["train"] | files["validation"] == _files(root, "train", validation_fraction=0.0)
    return files


def test_hash_split_data_has_three_disjoint_splits_and_the_same_test_split(basketball_dir):
    files = _assert_three_disjoint_splits(basketball_dir)
    for path in files["test"]:
        assert is_test_file(str(path.relative_to(basketball_dir)), 0.2)
    for path in files["validation"]:
        relative = str(path.relative_to(basketball_dir))
        assert not is_test_file(relative, 0.2) and is_validation_file(relative, 0.1)
    assert EpisodeIndex(
        basketball_dir, "validation", 0.2, validation_fraction=0.1
    ).split_source == ("hash")


def test_metadata_split_data_carves_validation_out_of_its_train_split(tmp_path):
    from keypoint_wm.data.figures import write_figures_dataset

    write_figures_dataset(tmp_path, num_sequences=40, num_frames=8, size=32, progress=False)
    files = _assert_three_disjoint_splits(tmp_path)
    index = EpisodeIndex(tmp_path, "validation", 0.2, validation_fraction=0.1)
    assert index.split_source == "metadata"
    for split in SPLITS:
        declared = {load_episode(p, keys=("metadata",)).metadata["split"] for p in files[split]}
        assert declared == {"test" if split == "test" else "train"}


def test_all_cameras_of_a_human36m_recording_fall_on_one_side(tmp_path):
    """Human3.6M files are split by subject; validation takes whole recordings (all four
    cameras of one), so that no validation video is another view of a training one."""
    image, positions = np.zeros((4, 8, 8, 3), np.uint8), np.zeros((4, 1, 2), np.float32)
    recordings = [(f"S{s}", f"Walking {trial}") for s in (1, 5, 9) for trial in range(16)]
    for subject, action in recordings:
        for camera in ("54138969", "55011271", "58860488", "60457274"):
            metadata = {"subject": subject, "action_raw": action, "camera": camera,
                        "split": "test" if subject == "S9" else "train"}  # fmt: skip
            name = f"{subject}_{action.replace(' ', '_')}.{camera}.npz"
            save_episode(tmp_path / name, Episode(image, np.zeros((4, 0), np.float32),
                                                  np.zeros(4, np.float32), positions, metadata))  # fmt: skip
    files = _assert_three_disjoint_splits(tmp_path)

    def recording(path: Path) -> str:
        return path.name.split(".")[0]

    sides = {split: {recording(p) for p in files[split]} for split in SPLITS}
    assert not sides["train"] & sides["validation"]
    assert all(len([p for p in files["validation"] if recording(p) == r]) == 4
               for r in sides["validation"])  # fmt: skip
    assert {r.split("_")[0] for r in sides["test"]} == {"S9"}


def test_the_probe_fits_on_train_scores_validation_and_never_reads_test(
    basketball_dir, monkeypatch
):
    import keypoint_wm.evaluation.windows as windows
    from keypoint_wm.evaluation.probe import ProbeData

    read: list[Path] = []

    def recording_load(path, *args, **kwargs):
        read.append(Path(path))
        return load_episode(path, *args, **kwargs)

    monkeypatch.setattr(windows, "load_episode", recording_load)
    data = ProbeData.from_dataset(basketball_dir, 0.2, 0.1)
    assert data is not None
    files = {split: _files(basketball_dir, split) for split in SPLITS}
    assert set(read) <= files["train"] | files["validation"]
    assert files["validation"] <= set(read)  # every validation file is scored
    first = sorted(files["validation"])[0]  # the first validation window is its frame 0
    np.testing.assert_array_equal(data.validation_frames[0], load_episode(first).image[0])
    assert data.train_frames.shape[1:] == data.validation_frames.shape[1:]


def test_the_probe_is_off_for_a_run_without_validation_files(basketball_dir):
    from keypoint_wm.evaluation.probe import ProbeData

    with pytest.warns(UserWarning, match="probe off.*no validation.*never scores test"):
        assert ProbeData.from_dataset(basketball_dir, 0.2, 0.0) is None


@pytest.mark.parametrize("command", ["video", "diversity"])
def test_evaluate_reads_only_test_files(command, basketball_dir, tiny_run, monkeypatch):
    import keypoint_wm
    import keypoint_wm.evaluation.windows as windows

    read: list[Path] = []

    def recording_load(path, *args, **kwargs):
        read.append(Path(path))
        return load_episode(path, *args, **kwargs)

    monkeypatch.setattr(windows, "load_episode", recording_load)
    model = keypoint_wm.load(tiny_run, device="cpu")
    if command == "video":
        from keypoint_wm.evaluation.video import VideoEvalConfig, evaluate_video

        evaluate_video(model, basketball_dir, VideoEvalConfig(samples=2, max_windows=8), False)
    else:
        from keypoint_wm.evaluation.diversity import DiversityConfig, evaluate_diversity

        evaluate_diversity(model, basketball_dir, DiversityConfig(sequences=(0, 1), samples=2))
    assert read and set(read) <= _files(basketball_dir, "test")


def test_evaluate_tracking_scores_the_test_split(basketball_dir, tiny_run):
    """The tracking regression is fitted on every file outside the test split (as before
    validation existed) and scored on every test window."""
    import keypoint_wm
    from keypoint_wm.evaluation.tracking import evaluate_tracking

    model = keypoint_wm.load(tiny_run, device="cpu")
    window = model.config.model.num_steps
    result = evaluate_tracking(model, basketball_dir, samples=2, progress=False)
    result = result.to_json() if hasattr(result, "to_json") else result

    def windows(split: str) -> int:
        index = EpisodeIndex(basketball_dir, split, 0.2)  # validation_fraction 0: non-test
        return sum(r.frames // window for r in index.records)

    assert result["tasks"]["all"]["test_windows"] == windows("test")
    assert result["tasks"]["all"]["train_windows"] == windows("train")


@pytest.mark.integration
def test_training_never_sees_validation_files_and_records_the_fraction(basketball_dir, tmp_path):
    from keypoint_wm.train import train

    run = tmp_path / "run"
    train(tiny_config(1), basketball_dir, run, progress=False)
    saved = json.loads((run / "config.json").read_text())
    assert saved["train"]["validation_fraction"] == 0.1
    trained_on = EpisodeIndex(basketball_dir, "train", 0.2, validation_fraction=0.1)
    assert saved["data"]["fingerprint"] == dataset_fingerprint(trained_on)
    assert saved["data"]["fingerprint"] != dataset_fingerprint(
        EpisodeIndex(basketball_dir, "train", 0.2)
    )


@pytest.mark.integration
def test_a_run_that_does_not_record_its_validation_split_is_not_resumed(basketball_dir, tmp_path):
    """Resumed with today's default (0.1), such a run would train on another split than
    the one it trained on: the resume stops in one line naming the setting to add."""
    from keypoint_wm.checkpoint import CheckpointError
    from keypoint_wm.train import train

    run = tmp_path / "old"
    train(tiny_config(2, **{"train.validation_fraction": 0.0}), basketball_dir, run, progress=False)
    saved = json.loads((run / "config.json").read_text())
    del saved["train"]["validation_fraction"]  # as a run written before the setting existed
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(CheckpointError) as error:
        train(tiny_config(4), basketball_dir, run, resume=True, progress=False)
    message = str(error.value)
    assert "\n" not in message and "train.validation_fraction" in message
    assert latest_checkpoint(run).name == "step_00000002"
