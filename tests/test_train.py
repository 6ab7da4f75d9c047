"""`keypoint-wm train`: learning, checkpoints, exact resume, refusals, TensorBoard, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from kwm_testing import TINY_OVERRIDES, tiny_config
from safetensors.torch import load_file

from keypoint_wm.checkpoint import latest_checkpoint, load_checkpoint
from keypoint_wm.train import ConfigMismatchError, NonFiniteLossError, train


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run) / "model.safetensors"))


@pytest.mark.integration
def test_resume_is_exact(basketball_dir, tmp_path):
    torch.set_num_threads(1)
    train(tiny_config(4), basketball_dir, tmp_path / "straight", progress=False)
    train(tiny_config(2), basketball_dir, tmp_path / "split", progress=False)
    result = train(tiny_config(4), basketball_dir, tmp_path / "split", resume=True, progress=False)
    assert result["step"] == 4
    straight, split = weights(tmp_path / "straight"), weights(tmp_path / "split")
    assert straight.keys() == split.keys()
    for name in straight:
        torch.testing.assert_close(split[name], straight[name], rtol=0, atol=0, msg=name)
    state = load_checkpoint(latest_checkpoint(tmp_path / "split"))
    assert state.step == 4 and state.training_state["optimizer"]["state"]


@pytest.mark.integration
def test_resume_refuses_a_changed_config_and_names_the_keys(basketball_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(2), basketball_dir, run, progress=False)
    changed = tiny_config(4, **{"model.num_keypoints": 5, "train.learning_rate": 0.01})
    with pytest.raises(ConfigMismatchError, match=r"model\.num_keypoints.*train\.learning_rate"):
        train(changed, basketball_dir, run, resume=True, progress=False)
    with pytest.raises(ConfigMismatchError, match="--resume"):
        train(tiny_config(2), basketball_dir, run, progress=False)  # exists, no --resume
    assert latest_checkpoint(run).name == "step_00000002"


@pytest.mark.integration
def test_non_finite_loss_stops_naming_the_term_and_keeps_the_checkpoint(basketball_dir, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(2), basketball_dir, run, progress=False)
    config = json.loads((run / "config.json").read_text())
    poisoned = tiny_config(4, **{"model.image_loss_scale": float("inf")})
    with pytest.raises(NonFiniteLossError, match="image"):
        train(poisoned, basketball_dir, tmp_path / "poisoned", progress=False)
    assert latest_checkpoint(tmp_path / "poisoned") is None
    assert json.loads((run / "config.json").read_text()) == config


def read_scalars(run: Path, tag: str) -> list[float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return [e.value for e in events.Scalars(tag)]


@pytest.mark.integration
def test_training_on_basketball_lowers_the_loss_and_logs_everything(basketball_dir, tmp_path):
    run = tmp_path / "run"
    config = tiny_config(
        40,
        **{"model.num_encoder_filters": 8, "train.learning_rate": 3e-3, "train.image_every": 40},
    )
    train(config, basketball_dir, run, progress=False)
    image_loss = read_scalars(run, "loss/image")
    assert len(image_loss) == 40
    assert sum(image_loss[-5:]) / 5 < 0.7 * sum(image_loss[:5]) / 5
    for tag in ("loss/separation", "loss/sparsity", "loss/kl", "loss/kp_future", "loss/total",
                "train/learning_rate", "train/steps_per_second"):  # fmt: skip
        assert read_scalars(run, tag)
    assert (run / "probe.csv").read_text().startswith("step,seconds,r2_min,r2_0")
    for name in ("keypoints.png", "keypoints.gif", "prediction.png", "prediction.gif"):
        assert (run / "media" / name).stat().st_size > 0


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_torchrun_two_processes_on_cpu_with_gloo(basketball_dir, tmp_path):
    run = tmp_path / "ddp"
    sets = [f"--set={k}={v}" for k, v in TINY_OVERRIDES.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "keypoint_wm.cli", "train", "--data", str(basketball_dir), "--preset",
         "basketball-cpu", "--out", str(run), "--steps", "2", "--quiet", *sets],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(latest_checkpoint(run))
    assert checkpoint.step == 2 and checkpoint.info["world_size"] == 2
    assert len(checkpoint.training_state["rng"]) == 2


@pytest.mark.integration
def test_action_conditioned_training_draws_pictures_and_resumes(tmp_path):
    """dmcs-style: multi-task data with actions zero-padded; media rendered with actions."""
    import numpy as np

    from keypoint_wm.data.episodes import Episode, save_episode

    rng = np.random.default_rng(0)
    for task, action_size in (("cheetah-run", 6), ("reacher-easy", 2)):
        for i in range(4):
            action = rng.uniform(-1, 1, (12, action_size)).astype(np.float32)
            action[0] = 0
            image = rng.integers(0, 255, (12, 32, 32, 3), dtype=np.uint8)
            reward = np.zeros(12, np.float32)
            save_episode(
                tmp_path / "data" / task / f"episode_{i:06d}.npz", Episode(image, action, reward)
            )
    config = tiny_config(
        2,
        preset="dmcs-cpu",
        **{
            "train.image_every": 1,
            "train.batch_size": 3,
            "train.reference_frame": "other_episode",  # reconstruct on another episode
        },
    )
    result = train(config, tmp_path / "data", tmp_path / "run", progress=False)
    assert result["step"] == 2
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["model"]["action_size"] == 6
    assert saved["train"]["reference_frame"] == "other_episode"
    assert (tmp_path / "run" / "media" / "prediction.gif").stat().st_size > 0


def test_keypoint_width_curriculum_narrows_to_the_model_width():
    from keypoint_wm.train import schedule_at

    config = tiny_config(
        500, **{"train.keypoint_width_start": 6.0, "train.keypoint_width_steps": 100}
    )
    final = config.model.keypoint_width
    widths = [schedule_at(config, step).keypoint_width for step in (0, 50, 100, 500)]
    assert widths == pytest.approx([6.0, (6.0 + final) / 2, final, final])
    assert schedule_at(tiny_config(500), 0).keypoint_width is None  # off by default


def test_motion_prior_decays_to_its_floor_and_stays():
    from keypoint_wm.train import schedule_at

    config = tiny_config(
        500,
        **{
            "train.motion_prior_scale": 10.0,
            "train.motion_prior_steps": 100,
            "train.motion_prior_final": 1.0,
        },
    )
    scales = [schedule_at(config, step).motion_scale for step in (0, 50, 100, 499)]
    assert scales == pytest.approx([10.0, 5.5, 1.0, 1.0])
    paper = tiny_config(500, "basketball")
    assert schedule_at(paper, 0).motion_scale == 0.0  # off in the paper presets


def test_wider_blobs_change_the_reconstruction():
    from keypoint_wm.model.struct_vrnn import StructVRNN

    config = tiny_config(1)
    torch.manual_seed(0)
    model = StructVRNN(config.model)
    images = torch.rand(1, 2, 3, config.model.image_size, config.model.image_size) - 0.5
    keypoints, _ = model.detect(images)
    narrow = model.reconstruct(images[:, 0], keypoints[:, 0], keypoints)
    same = model.reconstruct(images[:, 0], keypoints[:, 0], keypoints, config.model.keypoint_width)
    wide = model.reconstruct(images[:, 0], keypoints[:, 0], keypoints, 6.0)
    assert torch.equal(narrow, same)
    assert not torch.allclose(narrow, wide)


@pytest.mark.integration
def test_a_second_writer_of_a_run_is_refused_while_the_first_runs(basketball_dir, tmp_path):
    from keypoint_wm.claims import claim
    from keypoint_wm.errors import RunError

    run = tmp_path / "run"
    with claim(tmp_path / ".run.writer") as holder:  # as a running `train --out run` holds it
        assert holder is None
        with pytest.raises(RunError, match="another process is training this run"):
            train(tiny_config(2), basketball_dir, run, progress=False)
    assert not run.exists()  # nothing written beside the other writer
    assert train(tiny_config(2), basketball_dir, run, progress=False)["step"] == 2


def _cli_train(
    data: Path, run: Path, steps: int, *extra: str, schedule: dict | None = None
) -> list[str]:
    """``keypoint-wm train`` of the tiny config; ``schedule``: the settings beyond
    :data:`TINY_OVERRIDES` (default: no probe and a checkpoint every 1000 steps)."""
    if schedule is None:
        schedule = {"train.checkpoint_every": 1000, "train.probe_every": 0}
    sets = [f"{k}={v}" for k, v in {**TINY_OVERRIDES, **schedule}.items()]
    command = [sys.executable, "-m", "keypoint_wm.cli", "train", "--data", str(data),
               "--preset", "basketball-cpu", "--seed", "3", "--out", str(run),
               "--steps", str(steps), "--quiet", *extra]  # fmt: skip
    for value in sets:
        command += ["--set", value]
    return command


def _wait_for(found, process: subprocess.Popen, seconds: float = 120) -> None:
    """Poll until ``found()`` holds, while ``process`` runs."""
    import time

    deadline = time.monotonic() + seconds
    while not found():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.integration
@pytest.mark.parametrize("moment", ["setup", "mid-run"])
def test_a_stop_signal_saves_the_current_step_and_resume_continues_there(
    basketball_dir, tmp_path, moment
):
    """What a scheduler's stop (SIGTERM) or Ctrl-C (SIGINT) does: the step in progress ends,
    a checkpoint of it is saved (not the last multiple of checkpoint_every), the exit code
    is 128 + the signal with one line that says how to continue, and --resume continues
    from that step. A signal while the run is set up (it holds the run, no step yet) stops
    it before the first step, nothing trained and nothing lost. One run per signal, side
    by side."""
    import re
    import signal
    import time

    runs = {sig: tmp_path / sig for sig in ("SIGTERM", "SIGINT")}
    processes = {
        sig: subprocess.Popen(_cli_train(basketball_dir, run, 5000), stderr=subprocess.PIPE,
                              text=True)
        for sig, run in runs.items()
    }  # fmt: skip
    for sig, process in processes.items():
        run = runs[sig]
        if moment == "setup":  # the run is claimed: the stop handlers are in place
            _wait_for((tmp_path / f".{sig}.writer").exists, process)
        else:
            _wait_for(lambda run=run: bool(list(run.glob("tensorboard/**/events.*"))), process)
            time.sleep(1.0)  # some steps in, far from step 1000
        process.send_signal(getattr(signal, sig))
    steps = {}
    for sig, process in processes.items():
        run = runs[sig]
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 128 + getattr(signal, sig), stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and f"stopped by {sig} at step" in lines[0], stderr
        assert "--resume" in lines[0] and "Traceback" not in stderr
        steps[sig] = step = int(re.search(r"at step (\d+) of 5000", lines[0]).group(1))
        if moment == "setup":
            assert step == 0 and "nothing trained yet" in lines[0], lines[0]
            assert latest_checkpoint(run) is None
        else:
            assert 0 < step < 1000 and "its checkpoint saved" in lines[0], lines[0]
            saved = load_checkpoint(latest_checkpoint(run), with_training_state=True)
            assert saved.step == step and saved.training_state["optimizer"]["state"]
    resumed = {
        sig: subprocess.Popen(_cli_train(basketball_dir, run, steps[sig] + 1, "--resume"),
                              stderr=subprocess.PIPE, text=True)
        for sig, run in runs.items()
    }  # fmt: skip
    for sig, process in resumed.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr
        assert latest_checkpoint(runs[sig]).name == f"step_{steps[sig] + 1:08d}"


@pytest.mark.integration
def test_two_trains_of_one_run_started_together_leave_only_the_winners_run(
    basketball_dir, tmp_path
):
    """Two real ``train --out R`` (seeds 3 and 4) started at once: one trains R, the other
    exits 1 naming the holder, and R holds the winner's checkpoints and config alone."""
    run = tmp_path / "run"
    schedule = {"train.checkpoint_every": 10, "train.probe_every": 0}
    commands = {seed: _cli_train(basketball_dir, run, 20, schedule=schedule) for seed in (3, 4)}
    for seed, command in commands.items():
        command[command.index("--seed") + 1] = str(seed)
    processes = {
        seed: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for seed, command in commands.items()
    }
    errors = {seed: p.communicate(timeout=300)[1] for seed, p in processes.items()}
    codes = {seed: p.returncode for seed, p in processes.items()}
    assert sorted(codes.values()) == [0, 1], errors
    winner, loser = sorted(codes, key=codes.__getitem__)
    refused = errors[loser]
    lines = refused.strip().splitlines()
    assert len(lines) == 1 and "another process is training this run" in lines[0], refused
    assert f"pid {processes[winner].pid} on " in lines[0] and f"--out {run}:" in lines[0]
    assert json.loads((run / "config.json").read_text())["seed"] == winner
    saved = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert saved == ["step_00000010", "step_00000020"]
    for name in saved:
        info = load_checkpoint(run / "checkpoints" / name, with_training_state=False).info
        assert info["data_seed"] == winner, (name, info)
    assert len(list(run.glob("tensorboard/**/events.*"))) == 1


@pytest.mark.integration
def test_resume_of_a_run_whose_config_was_edited_by_hand_is_one_line(
    basketball_dir, tiny_run, tmp_path
):
    """config.json edited (4 keypoints -> 8) and --set saying the same: the config check
    passes, the weights do not fit; the message names config.json and the checkpoint."""
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(tiny_run, run)
    path = run / "config.json"
    config = json.loads(path.read_text())
    config["model"]["num_keypoints"] = 8
    path.write_text(json.dumps(config))
    done = subprocess.run(
        _cli_train(basketball_dir, run, 6, "--resume",
                   schedule={"model.num_keypoints": 8}),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    checkpoint = run / "checkpoints" / "step_00000004"
    assert lines[0].startswith(
        f"keypoint-wm train: error: {run}: the weights in {checkpoint} do not fit {path} "
        "(size mismatch for "
    ), lines[0]
    assert latest_checkpoint(run) == checkpoint  # nothing written over it


@pytest.mark.integration
def test_a_bad_setting_is_one_line_and_leaves_no_run_folder(basketball_dir, tmp_path):
    run = tmp_path / "run"
    done = subprocess.run(
        _cli_train(basketball_dir, run, 2, "--set", "train.learning_rate=-1"),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "keypoint-wm train: error: --set/--config: train.learning_rate must be > 0, got -1.0"
    ]
    assert not run.exists() and list(tmp_path.iterdir()) == []
