"""`keypoint-wm collect --env`: any Gymnasium pixel environment (tiny sizes).

Real environments: Gymnasium MuJoCo's InvertedPendulum-v5 (Box actions in [-3, 3], ends
early when the pole falls) and a Discrete-action env of our own (tests/any_env_testing.py,
registered on import, letterboxed frames), mixed with a DMCS task.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from any_env_testing import BAR, DICT_ID, DOT_ENV, MUJOCO_ENV

from keypoint_wm.collect.config import CollectConfig, CollectError
from keypoint_wm.collect.runner import collect_dataset
from keypoint_wm.data.episodes import iter_episode_files, load_episode, read_manifest
from keypoint_wm.data.frames import FrameCrop, fit_frames
from keypoint_wm.data.inspect import check_dataset
from keypoint_wm.data.sequences import EpisodeIndex

pytestmark = pytest.mark.integration
TESTS = Path(__file__).resolve().parents[1]


def mixed_config(out: Path, **overrides) -> CollectConfig:
    values = dict(
        tasks=("cartpole-balance",),
        envs=(MUJOCO_ENV, DOT_ENV),
        env_kwargs={"width": 40, "height": 40},
        crop=f"{BAR},{BAR},0,0",
        episodes=3,
        steps=20,
        size=32,
        seed=3,
        out=out,
    )
    values.update(overrides)
    return CollectConfig(**values)


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in iter_episode_files(root)}


def test_mixed_collection_stores_each_env_its_way(tmp_path):
    out = tmp_path / "mixed"
    summary = collect_dataset(mixed_config(out), workers=1, progress=False)
    assert summary.episodes_written == 9
    count, bad = check_dataset(out)
    assert count == 9 and not bad
    manifest = read_manifest(out)
    assert manifest["dataset"] == "mixed"
    assert manifest["tasks"]["KWMTest-Dot-v0"]["action_size"] == 4
    assert manifest["tasks"][MUJOCO_ENV]["action_size"] == 1

    pendulum = [load_episode(p) for p in sorted((out / MUJOCO_ENV).glob("*.npz"))]
    assert any(e.num_frames < 21 for e in pendulum)  # the pole fell: an early end
    for episode in pendulum:
        assert episode.image.shape[1:] == (32, 32, 3) and episode.true_object_pos is None
        assert episode.state.shape == (episode.num_frames, 4)  # qpos, qvel
        assert np.all(np.abs(episode.action) <= 1) and episode.action.shape[1] == 1
        if episode.num_frames < 21:
            assert episode.metadata["ended"] == "terminated"
        assert episode.metadata["action_repeat"] == 1 and episode.metadata["env_id"] == MUJOCO_ENV

    dot = load_episode(out / "KWMTest-Dot-v0" / "episode_000000.npz")
    assert dot.action.shape[1] == 4 and np.all(dot.action[1:].sum(axis=1) == 1)  # one-hot
    assert dot.image[:, :2].max() > 0  # the letterbox bars are cropped off: field to the top
    np.testing.assert_array_equal(dot.state[0], dot.state[0].round())

    # the DMCS task's episodes are the bytes a DMCS-only collection writes
    alone = tmp_path / "dmcs"
    collect_dataset(mixed_config(alone, envs=(), crop=None), workers=1, progress=False)
    mixed_bytes = file_bytes(out)
    assert {k: v for k, v in mixed_bytes.items() if k.startswith("cartpole")} == file_bytes(alone)

    # same bytes with two worker processes; a deleted episode is collected again
    again = tmp_path / "again"
    collect_dataset(mixed_config(again), workers=2, progress=False)
    assert file_bytes(again) == mixed_bytes
    (again / MUJOCO_ENV / "episode_000001.npz").unlink()
    resumed = collect_dataset(mixed_config(again), workers=1, progress=False)
    assert (resumed.episodes_written, resumed.episodes_skipped) == (1, 8)
    assert file_bytes(again) == mixed_bytes

    index = EpisodeIndex(out, "all", min_frames=10)
    assert index.action_size == 4  # zero-padded per task
    skipped = index.describe_skipped()
    assert (skipped is None) == (index.short_files == 0)


def test_bad_env_input_is_one_line_naming_the_flag(tmp_path):
    cases = [
        (dict(envs=("NoSuchEnv-v0",)), "--env NoSuchEnv-v0"),
        (dict(envs=(f"any_env_testing:{DICT_ID}",)), "Dict.*not supported"),
        (dict(crop="1,2"), "--crop"),
        (dict(crop="30,30,0,0"), "leaves nothing"),
    ]
    for overrides, message in cases:
        config = mixed_config(tmp_path / "bad", tasks=(), **{"envs": (DOT_ENV,), **overrides})
        with pytest.raises(CollectError, match=message) as caught:
            collect_dataset(config, workers=1, progress=False)
        assert "\n" not in str(caught.value)


def test_cli_collect_env_and_flag_errors(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "keypoint_wm.cli", "collect", *args],
            capture_output=True, text=True, timeout=300, env=env,
        )  # fmt: skip

    out = tmp_path / "cli"
    done = cli("--env", DOT_ENV, "--episodes", "2", "--steps", "8", "--size", "16",
               "--workers", "1", "--quiet", "--crop", "center", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list((out / "KWMTest-Dot-v0").glob("*.npz"))) == 2
    bad = cli("--env", DOT_ENV, "--env-kwargs", "[1]", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "--env-kwargs must be a JSON object" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_fit_frames_crops_then_area_resizes():
    frame = np.zeros((1, 6, 8, 3), np.uint8)
    frame[0, :, 2:6] = 90
    np.testing.assert_array_equal(fit_frames(frame, 2, FrameCrop.parse("0,0,2,2")), 90)
    assert fit_frames(frame, 3, FrameCrop.parse("center")).shape == (1, 3, 3, 3)
    assert fit_frames(frame, 4)[0, 0].tolist() == [[0] * 3, [90] * 3, [90] * 3, [0] * 3]
    with pytest.raises(ValueError, match="uint8"):
        fit_frames(frame.astype(np.float32), 4)
