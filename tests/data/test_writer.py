"""The one resumable dataset writer (keypoint_wm/data/writer.py), through the datasets that
use it: damaged files are written again, other settings and foreign folders are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keypoint_wm.data.basketball import write_basketball_dataset
from keypoint_wm.data.episodes import Episode, read_manifest
from keypoint_wm.data.figures import write_figures_dataset
from keypoint_wm.data.writer import DatasetWriter
from keypoint_wm.errors import UsageError


def _basketball(out):
    return write_basketball_dataset(out, num_sequences=3, seed=2, size=32, num_frames=6,
                                    progress=False)  # fmt: skip


def _figures(out, **changes):
    settings = dict(num_sequences=3, seed=2, num_frames=4, size=32, progress=False) | changes
    return write_figures_dataset(out, **settings)


def _contents(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("write", [_basketball, _figures], ids=["basketball", "figures"])
def test_a_damaged_file_is_written_again_as_an_uninterrupted_run_writes_it(write, tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    write(whole)
    write(resumed)
    files = sorted(resumed.glob("*.npz"))
    files[1].write_bytes(files[1].read_bytes()[:100])  # a truncated file under its final name
    files[2].unlink()
    with pytest.warns(UserWarning, match=f"{files[1].name} is damaged.*writing it again"):
        summary = write(resumed)
    assert summary["written"] == 2 and summary["kept"] == 1
    assert _contents(resumed) == _contents(whole)  # the manifest too, byte for byte


def test_other_settings_are_refused_in_one_line_naming_the_folder_and_each_key(tmp_path):
    out = tmp_path / "figs"
    _figures(out)
    before = _contents(out)
    with pytest.raises(UsageError) as refused:
        _figures(out, seed=3, num_frames=5)
    message = str(refused.value)
    assert "\n" not in message and f"--out {out}" in message
    assert "num_frames: 4 there, 5 now" in message and "seed: 2 there, 3 now" in message
    assert "size" not in message
    assert _contents(out) == before  # nothing touched


def test_a_setting_the_manifest_lacks_differs_unless_it_is_legacy(tmp_path):
    out = tmp_path / "figs"
    _figures(out)
    manifest = read_manifest(out)
    del manifest["test_fraction"]  # e.g. edited, or written by something else
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UsageError, match="test_fraction: None there, 0.2 now"):
        _figures(out)
    writer = DatasetWriter(out, {"dataset": "figures", "test_fraction": 0.2}, label="figures",
                           legacy={"test_fraction": 0.2})  # fmt: skip
    assert writer.kept == 0


def test_another_dataset_or_a_foreign_folder_is_refused(tmp_path):
    out = tmp_path / "bb"
    _basketball(out)
    with pytest.raises(UsageError, match=r"\(dataset: 'basketball' there, 'figures' now\)$"):
        _figures(out)  # only the kind is named, not every setting of the other kind
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=f"--out {foreign} is not empty and holds no Basketball"):
        _basketball(foreign)
    with pytest.raises(UsageError, match="is a file"):
        _basketball(foreign / "notes.txt")


def test_the_manifest_says_incomplete_until_the_last_episode_is_written(tmp_path):
    writer = DatasetWriter(tmp_path / "d", {"dataset": "test", "seed": 0}, label="test")
    writer.start(lambda: {"num_episodes": len(list(writer.out.glob("*.npz")))})
    assert read_manifest(writer.out) == {"dataset": "test", "seed": 0, "num_episodes": 0,
                                         "complete": False}  # fmt: skip
    episode = Episode(np.zeros((2, 4, 4, 3), np.uint8), np.zeros((2, 0), np.float32),
                      np.zeros(2, np.float32), metadata={"index": 0})  # fmt: skip
    assert not writer.finished("e.npz")
    writer.save("e.npz", episode)
    assert writer.finished("e.npz") and writer.tally()["written"] == 1
    writer.finish()
    assert read_manifest(writer.out)["complete"] and read_manifest(writer.out)["num_episodes"] == 1
    assert sorted(p.name for p in writer.out.iterdir()) == ["e.npz", "manifest.json"]
    assert episode.metadata == {"index": 0}  # the versions go into the file, not the caller's
