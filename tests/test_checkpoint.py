"""Run directories: damaged checkpoints are skipped by name, killed writers' leftovers go."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from keypoint_wm.checkpoint import (
    CheckpointError,
    ResumeError,
    checkpoint_dirs,
    latest_checkpoint,
    load_latest_checkpoint,
    read_run_config,
    remove_stale_temp_dirs,
    resume_checkpoint,
    resume_differences,
    save_checkpoint,
    write_config,
)
from keypoint_wm.errors import DataError, RunError


def make_run(run: Path, steps=(2, 4, 6), total: int = 6) -> Path:
    write_config(run, {"train": {"steps": total}, "data": {"root": "/a", "fingerprint": "f1"}})
    for step in steps:
        weights = {"w": torch.full((3,), float(step))}
        state = {"optimizer": {"state": {}}, "rng": [torch.get_rng_state()]}
        save_checkpoint(run, step, weights, state, {"train_seconds": 1.0}, keep=3)
    return run


def test_a_truncated_newest_checkpoint_is_named_and_the_previous_one_used(tmp_path):
    run = make_run(tmp_path / "run")
    newest = run / "checkpoints" / "step_00000006"
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])
    with pytest.warns(
        UserWarning, match=r"step_00000006 \(model\.safetensors holds .*step_00000004"
    ):
        assert latest_checkpoint(run) == run / "checkpoints" / "step_00000004"
    with pytest.warns(UserWarning, match="step_00000006"):
        checkpoint = load_latest_checkpoint(run)
    assert checkpoint.step == 4 and float(checkpoint.model_state["w"][0]) == 4.0


def test_a_damage_only_loading_finds_falls_back_too(tmp_path):
    run = make_run(tmp_path / "run")
    state = run / "checkpoints" / "step_00000006" / "training_state.pt"
    with zipfile.ZipFile(state, "w") as archive:  # a zip, but not a torch file
        archive.writestr("x", b"not a tensor")
    assert latest_checkpoint(run).name == "step_00000006"  # the cheap check passes it
    with pytest.warns(UserWarning, match=r"step_00000006 \(unreadable checkpoint"):
        assert load_latest_checkpoint(run).step == 4


def test_no_valid_checkpoint_is_a_data_error_naming_the_run(tmp_path):
    run = make_run(tmp_path / "run", steps=(2,))
    (run / "checkpoints" / "step_00000002" / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=f"{run}: no valid checkpoint"):
        latest_checkpoint(run)
    with pytest.raises(DataError, match=f"{run}: no valid checkpoint"):
        load_latest_checkpoint(run)
    assert latest_checkpoint(tmp_path / "empty") is None


@pytest.mark.integration
def test_stale_temp_dirs_of_dead_writers_go_and_live_ones_stay(tmp_path):
    run = make_run(tmp_path / "run", steps=(2,))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = run / "checkpoints" / f".step_00000004.{int(dead.stdout)}.tmp"
        busy = run / "checkpoints" / f".step_00000004.{live.pid}.tmp"
        for directory in (stale, busy):
            directory.mkdir()
            (directory / "model.safetensors").write_bytes(b"partial")
        assert remove_stale_temp_dirs(run) == [stale]
        assert not stale.exists() and busy.exists()
        save_checkpoint(run, 4, {"w": torch.zeros(1)}, {"rng": []}, {})  # cleans up too
        assert busy.exists() and (run / "checkpoints" / "step_00000004").exists()
    finally:
        live.kill()
        live.wait()


def test_resume_refuses_fewer_steps_than_reached_and_warns_when_lowering(tmp_path):
    run = make_run(tmp_path / "run", total=12, steps=(6,))
    with pytest.raises(ResumeError, match=r"already at step 6 > --steps 4; pass --steps 6"):
        resume_checkpoint(run, 4)
    assert issubclass(ResumeError, RunError)
    with pytest.warns(UserWarning, match="train.steps lowered from 12 to 8"):
        assert resume_checkpoint(run, 8).step == 6
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 12


def test_a_moved_dataset_with_the_same_fingerprint_may_resume():
    saved = {"train": {"steps": 4}, "data": {"root": "/a", "fingerprint": "f1"}}
    moved = {"train": {"steps": 8}, "data": {"root": "/b", "fingerprint": "f1"}}
    other = {"train": {"steps": 8}, "data": {"root": "/b", "fingerprint": "f2"}}
    assert resume_differences(saved, moved) == []
    assert resume_differences(saved, other) == ["data.fingerprint", "data.root"]


def test_load_falls_back_past_a_damaged_newest_checkpoint(tiny_run, tmp_path):
    import shutil

    import keypoint_wm

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    newest = checkpoint_dirs(run)[-1]
    (newest / "model.safetensors").write_bytes(b"\x00" * 7)
    with pytest.warns(UserWarning, match=f"{newest.name} .*using .*step_00000002"):
        model = keypoint_wm.load(run, device="cpu")
    assert model.step == 2


def test_a_run_saved_without_action_conditioned_derives_it_from_its_action_size(tmp_path):
    """Runs saved while presets carried ``action_conditioned`` did not record it: training
    set ``model.action_size`` from the data exactly when the preset was action-conditioned."""
    from keypoint_wm.presets import get_preset

    saved = get_preset("dmcs-cpu").build().with_overrides({"model.action_size": 6}).to_dict()
    del saved["model"]["action_conditioned"]
    write_config(tmp_path / "dmcs", saved)
    assert read_run_config(tmp_path / "dmcs").model.action_conditioned is True
    saved["model"]["action_size"] = 0
    write_config(tmp_path / "free", saved)
    assert read_run_config(tmp_path / "free").model.action_conditioned is False
    del saved["model"]["action_size"]
    write_config(tmp_path / "neither", saved)
    with pytest.raises(CheckpointError) as error:
        read_run_config(tmp_path / "neither")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "neither" / "config.json") in message
    assert "model.action_conditioned" in message
