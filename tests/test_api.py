"""The public Python API: keypoint_wm.load and the WorldModel methods."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import keypoint_wm
from keypoint_wm.data.episodes import iter_episode_files, load_episode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def frames(basketball_dir) -> np.ndarray:
    files = list(iter_episode_files(basketball_dir))[:2]
    return np.stack([load_episode(f).image[:5] for f in files])  # [2, 5, 32, 32, 3]


def test_load_and_observe_numpy_or_torch(tiny_run, frames):
    model = keypoint_wm.load(tiny_run, device="cpu")
    assert model.step == 4 and model.num_keypoints == 4
    obs = model.observe(frames)
    assert obs.keypoints.shape == (2, 5, 4, 3)
    assert obs.hidden.shape == (2, 5, 16) and obs.latent.shape == (2, 5, 4)
    xy, scale = obs.keypoints[..., :2], obs.keypoints[..., 2]
    assert xy.abs().max() <= 1 and scale.min() >= 0 and scale.max() <= 1
    torch.testing.assert_close(model.observe(torch.from_numpy(frames)).keypoints, obs.keypoints)


def test_frames_detected_once_and_sliced_observe_as_the_frames_do(tiny_run, frames):
    """Overlapping windows share frames: detecting a whole sequence once and slicing its
    keypoints into a window gives that window's observation."""
    model = keypoint_wm.load(tiny_run, device="cpu")
    detected = model.detect(frames)
    torch.testing.assert_close(detected, model.observe(frames).keypoints)
    torch.manual_seed(0)
    window = model.observe(frames[:, 1:4])
    torch.manual_seed(0)
    sliced = model.observe_detected(detected[:, 1:4])
    for name in ("keypoints", "hidden", "latent", "decoded_keypoints"):
        torch.testing.assert_close(getattr(sliced, name), getattr(window, name))
    with pytest.raises(ValueError, match=r"keypoints must be \[B, T, K=4, 3\]"):
        model.observe_detected(detected[..., :2])


def test_observe_rejects_float_frames_with_a_clear_message(tiny_run, frames):
    model = keypoint_wm.load(tiny_run, device="cpu")
    with pytest.raises(ValueError, match=r"uint8 \[B, T, H, W, 3\]"):
        model.observe(frames.astype(np.float32))


def test_imagine_and_decode(tiny_run, frames):
    model = keypoint_wm.load(tiny_run, device="cpu")
    futures = model.imagine(frames[:, :3], num_future=4, num_samples=6, decode_images=True)
    assert futures.keypoints.shape == (2, 6, 7, 4, 3)
    assert futures.images.shape == (2, 6, 7, 32, 32, 3) and futures.images.dtype == np.uint8
    # samples differ: the prior is stochastic
    assert futures.keypoints[:, :, 3:].std(dim=1).mean() > 0
    images = model.decode(futures.keypoints[:, 0], frames[:, 0])
    assert images.shape == (2, 7, 32, 32, 3) and images.dtype == np.uint8


def test_shift_and_rollout_moves_the_chosen_keypoint_only(tiny_run, frames):
    model = keypoint_wm.load(tiny_run, device="cpu")
    torch.manual_seed(0)
    base = model.imagine(frames[:, :3], num_future=2)
    torch.manual_seed(0)
    moved = model.shift_and_rollout(frames[:, :3], 1, (0.2, 0.0), num_future=2)
    delta = moved.observed_keypoints - base.observed_keypoints  # [B, T0, K, 3], edited
    assert delta[:, :, [0, 2, 3]].abs().max() == 0 and delta[..., 1:].abs().max() == 0
    assert delta[:, 0, 1, 0].abs().max() == 0  # ramped: nothing at the first frame
    assert torch.all(delta[:, -1, 1, 0] > 0) and delta[:, -1, 1, 0].max() <= 0.2 + 1e-6
    assert not torch.equal(moved.keypoints, base.keypoints)
    assert moved.images.shape[:3] == (2, 1, 5)


def test_import_is_cheap():
    import subprocess
    import sys

    code = "import sys, keypoint_wm; print('torch' in sys.modules, 'dm_control' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


HAND_EDITS = {
    "unknown-key": (
        lambda c: {**c, "colour": 1},
        r"config\.json: unknown run config key\(s\): colour$",
    ),
    "model-not-an-object": (
        lambda c: {**c, "model": "oops"},
        r"config\.json: 'model' must be an object of settings, got str 'oops'$",
    ),
    "keypoints-not-the-weights": (
        lambda c: {**c, "model": {**c["model"], "num_keypoints": c["model"]["num_keypoints"] + 1}},
        r": the weights in .*step_00000004 do not fit .*config\.json \(size mismatch for ",
    ),
}
"""config.json edited by hand: the edit and the one-line message it must give."""


def edited_copy(run, folder, edit):
    import json
    import shutil

    shutil.copytree(run, folder)
    path = folder / "config.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    return folder


@pytest.mark.parametrize("case", HAND_EDITS)
def test_a_config_edited_by_hand_is_named_in_one_message(tiny_run, tmp_path, case):
    from keypoint_wm.checkpoint import CheckpointError

    edit, message = HAND_EDITS[case]
    run = edited_copy(tiny_run, tmp_path / "run", edit)
    with pytest.raises(CheckpointError, match=message):
        keypoint_wm.load(run, device="cpu")


@pytest.mark.parametrize("case", HAND_EDITS)
def test_a_config_edited_by_hand_is_one_line_from_the_command_line(
    tiny_run, basketball_dir, tmp_path, case
):
    """The same through a real command (``evaluate tracking --run RUN``): exit 1, one line
    naming the file, nothing evaluated."""
    import re
    import subprocess
    import sys

    edit, message = HAND_EDITS[case]
    run = edited_copy(tiny_run, tmp_path / "run", edit)
    done = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "tracking", "--run", str(run),
         "--data", str(basketball_dir), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"keypoint-wm evaluate tracking: error: {run}"), lines[0]
    assert re.search(message, lines[0]), lines[0]
    assert done.stdout == ""
