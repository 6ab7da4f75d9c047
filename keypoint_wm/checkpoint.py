"""Run directories and checkpoints (docs/design.md, "Run directories and checkpoints").

Layout of a run directory::

    RUN/config.json                     the full config (model, training, data), JSON
    RUN/checkpoints/step_00001000/      one complete checkpoint per directory
        model.safetensors               weights (loading never executes pickled code)
        training_state.pt               optimizer state + RNG state, loaded weights_only
        state.json                      step, steps/s so far, data fingerprint
    RUN/tensorboard/                    event files
    RUN/media/                          keypoint overlays and prediction GIFs

A checkpoint directory is written under a hidden temporary name and renamed into place, so a
run killed at any moment leaves only complete checkpoints; the newest one is the one to
resume from. Older ones are pruned, keeping ``keep`` of them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from keypoint_wm.data.episodes import atomic_write_bytes

CONFIG_NAME = "config.json"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"
STATE = "state.json"


@dataclass
class Checkpoint:
    """A loaded checkpoint."""

    path: Path
    step: int
    model_state: dict[str, torch.Tensor]
    training_state: dict[str, Any] | None
    info: dict[str, Any]


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        run_dir / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()
    )


def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    return json.loads(path.read_text())


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("step_") and (p / STATE).exists()
    ]
    return sorted(found, key=lambda p: int(p.name.removeprefix("step_")))


def save_checkpoint(
    run_dir: Path,
    step: int,
    model_state: dict[str, torch.Tensor],
    training_state: dict[str, Any],
    info: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write a complete checkpoint for ``step`` atomically and prune old ones."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(
        {k: v.detach().contiguous().cpu() for k, v in model_state.items()}, str(tmp / WEIGHTS)
    )
    torch.save(training_state, tmp / TRAINING_STATE)
    (tmp / STATE).write_text(json.dumps({"step": step, **info}, indent=2, sort_keys=True) + "\n")
    for file in tmp.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():  # the same step saved again (e.g. a resumed run's final step)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, with_training_state: bool = True) -> Checkpoint:
    """Load a checkpoint directory. Never unpickles arbitrary objects."""
    path = Path(path)
    info = json.loads((path / STATE).read_text())
    model_state = load_file(str(path / WEIGHTS))
    training_state = None
    if with_training_state:
        training_state = torch.load(path / TRAINING_STATE, map_location="cpu", weights_only=True)
    return Checkpoint(path, int(info["step"]), model_state, training_state, info)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None
