"""`keypoint-wm reproduce gym-envs`: Gymnasium MuJoCo and Atari from collection to the probe,
with the keypoint GIFs written beside the records."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import imageio.v3 as iio
import pytest

from keypoint_wm.reproduce import gym_envs
from keypoint_wm.reproduce.protocol import load_results

os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.mark.integration
def test_gym_envs_smoke_probes_both_families_and_writes_their_gifs(tmp_path):
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "keypoint_wm.cli", "reproduce", "gym-envs", "--out", str(out)]
    done = subprocess.run([*argv, "--smoke"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    folder = out / "results" / "gym-envs"
    cheetah = json.loads((folder / "probe-halfcheetah-seed0.json").read_text())
    task = cheetah["figures"]["tasks"]["HalfCheetah-v5"]
    assert {"rootz", "rooty", "bthigh", "velocity"} <= set(task["parts"])
    pong = json.loads((folder / "probe-pong-seed0.json").read_text())
    assert {"ball_x", "ball_y", "player_y"} <= set(pong["figures"]["tasks"]["ALE-Pong-v5"]["named"])
    for name in ("halfcheetah", "pong"):  # frames of 32 x 32 drawn 4 times larger (a GIF
        gif = iio.imread(folder / f"{name}-keypoints.gif")  # merges repeated frames)
        assert gif.shape[1:3] == (128, 128) and 2 <= len(gif) <= 13
    page = (out / "results" / "gym-envs.md").read_text()
    assert "(gym-envs/pong-keypoints.gif)" in page and "Bar (positions >= 0.8" in page
    # The recorded command is one a shell takes as it is: the JSON of --env-kwargs quoted.
    data = json.loads((folder / "data-halfcheetah.json").read_text())
    assert shlex.split(data["command"])[5] == '{"width": 32, "height": 32}'
    # The closer camera is the user's env kwarg, kept at the smoke setting's render size.
    close = json.loads((folder / "data-halfcheetah-close.json").read_text())
    kwargs = json.loads(shlex.split(close["command"])[5])
    assert kwargs["default_camera_config"] == {"distance": 2.5, "elevation": -10.0}
    smoke = gym_envs.protocol(smoke=True)  # the README's headline tells the two apart
    headline = smoke.headline(smoke.current(load_results(folder)))
    assert "HalfCheetah-v5: positions" in headline
    assert "HalfCheetah-v5 (closer camera): positions" in headline
