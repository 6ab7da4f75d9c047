"""Exported and shipped world models: `keypoint-wm export`, `keypoint_wm.load("default")`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import keypoint_wm
from keypoint_wm import bundled
from keypoint_wm.bundled import export_run
from keypoint_wm.checkpoint import save_checkpoint, write_config
from keypoint_wm.config import RunConfig, TrainConfig
from keypoint_wm.errors import UsageError
from keypoint_wm.model import ModelConfig, StructVRNN

FRAMES = np.random.default_rng(0).integers(0, 256, (1, 6, 16, 16, 3), dtype=np.uint8)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run folder of untrained weights written the way training writes one."""
    config = RunConfig(
        "custom",
        ModelConfig(
            image_size=16,
            heatmap_width=8,
            num_keypoints=3,
            num_encoder_filters=4,
            rnn_units=8,
            num_observed_steps=3,
            num_predicted_steps=3,
        ),
        TrainConfig(),
    )
    folder = tmp_path / "run"
    write_config(folder, {**config.to_dict(), "data": {"action_repeat": 2}})
    torch.manual_seed(0)
    save_checkpoint(folder, 7, StructVRNN(config.model).state_dict(), {}, {})
    from keypoint_wm.rewards import RewardHead, RewardHeadConfig, save_reward_head

    save_reward_head(
        RewardHead(RewardHeadConfig(input_size=8, units=4)), folder / "rewards" / "cartpole-balance"
    )
    (folder / "rewards" / "tensorboard" / "cartpole-balance").mkdir(parents=True)
    (folder / "rewards" / "tensorboard" / "cartpole-balance" / "events.out").write_bytes(
        b"x" * 1000
    )
    return folder


def test_an_export_in_half_precision_loads_like_its_run_at_half_the_size(run, tmp_path):
    out = export_run(run, tmp_path / "model", heads=run / "rewards")
    original, exported = keypoint_wm.load(run, device="cpu"), keypoint_wm.load(out, device="cpu")
    assert exported.step == 7 and exported.config.to_dict() == original.config.to_dict()
    assert all(p.dtype == torch.float32 for p in exported.model.parameters())
    full = sum(p.numel() * 4 for p in original.model.state_dict().values())
    assert (out / "model.safetensors").stat().st_size < 0.6 * full
    same = original.observe(FRAMES).keypoints
    assert torch.allclose(exported.observe(FRAMES).keypoints, same, atol=2e-2)
    card = json.loads((out / "card.json").read_text())
    assert card["source"]["step"] == 7 and card["dtype"] == "float16" and card["weights"]
    # the heads come along in the export's precision, their training logs do not
    from safetensors.torch import load_file

    from keypoint_wm.rewards import load_reward_head

    head = out / "rewards" / "cartpole-balance"
    assert {v.dtype for v in load_file(str(head / "head.safetensors")).values()} == {torch.float16}
    assert load_reward_head(out / "rewards", task="cartpole-balance").config.input_size == 8
    assert not (out / "rewards" / "tensorboard").exists()
    assert (out / "model.safetensors").stat().st_mode & 0o044 == 0o044  # readable by all
    # the same export again gives the same bytes (what ships is what was measured)
    again = export_run(run, tmp_path / "again", heads=run / "rewards")
    for name in ("model.safetensors", "rewards/cartpole-balance/head.safetensors", "config.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    # float32 keeps the weights exactly
    exact = keypoint_wm.load(export_run(run, tmp_path / "exact", dtype="float32"), device="cpu")
    for name, value in original.model.state_dict().items():
        assert torch.equal(exact.model.state_dict()[name], value), name


def test_a_shipped_name_loads_unless_a_folder_of_that_name_exists(run, tmp_path, monkeypatch):
    shipped = tmp_path / "shipped"
    export_run(run, shipped / "default")
    monkeypatch.setattr(bundled, "BUNDLED_ROOT", shipped)
    monkeypatch.chdir(tmp_path)
    assert bundled.bundled_names() == ("default",)
    assert keypoint_wm.load(device="cpu").run_dir == shipped / "default"
    assert keypoint_wm.load("default", device="cpu").run_dir == shipped / "default"
    export_run(run, tmp_path / "default", dtype="float32")  # a folder here named "default"
    assert keypoint_wm.load("default", device="cpu").run_dir == Path("default")
    monkeypatch.setattr(bundled, "BUNDLED_ROOT", tmp_path / "nothing")
    with pytest.raises(UsageError, match="no shipped world model 'default'"):
        bundled.resolve_run(None)


def test_every_run_flag_takes_the_shipped_models_name(tmp_path):
    """`--run default` names the shipped model on the command line as `load("default")`
    does: the check of --run passes and the command goes on to its own flags."""
    from keypoint_wm.cli.common import existing_run

    assert existing_run("default") == bundled.BUNDLED_ROOT / "default"
    with pytest.raises(UsageError, match=r"^--run nothing-here is not a run directory .* nor "
                       r"the name of a shipped model"):  # fmt: skip
        existing_run("nothing-here")
    done = subprocess.run(
        [sys.executable, "-m", "keypoint_wm.cli", "evaluate", "agents", "--run", "default",
         "--tasks", "no-such-task", "--variants", "random", "--out", str(tmp_path / "a")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2 and "no-such-task" in done.stderr and "--run" not in done.stderr


def test_export_refuses_what_would_lose_data_or_cannot_work(run, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="--out .*busy: exists and is not an exported model"):
        export_run(run, tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(UsageError, match="--dtype"):
        export_run(run, tmp_path / "m", dtype="int8")
    with pytest.raises(UsageError, match="--heads"):
        export_run(run, tmp_path / "m", heads=tmp_path / "missing")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "keypoint_wm.cli",
            "export",
            "--run",
            str(tmp_path / "busy"),
            "--out",
            str(tmp_path / "m"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1
    assert "busy" in done.stderr


def test_the_shipped_default_model_loads_fits_8_mb_and_drives_the_latent_env():
    import gymnasium as gym

    import keypoint_wm.envs  # registers the ids

    folder = bundled.BUNDLED_ROOT / bundled.DEFAULT
    assert bundled.DEFAULT in bundled.bundled_names()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) <= 8_000_000
    card = json.loads((folder / "card.json").read_text())
    assert card["dtype"] == "float16" and card["source"]["weights"]
    model = keypoint_wm.load(device="cpu")
    assert model.run_dir == folder and model.action_size > 0
    assert all(p.dtype == torch.float32 for p in model.model.parameters())
    tasks = sorted(p.name for p in (folder / "rewards").iterdir() if p.is_dir())
    assert tasks == sorted(card["source"]["data"]["tasks"])
    env = gym.make("KeypointWM/cartpole-balance-latent-v0", reward_head=True)
    try:
        obs, info = env.reset(seed=0)
        assert env.observation_space.contains(obs) and "predicted_reward" in info
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()
