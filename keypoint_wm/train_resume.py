"""The checkpoints a training run writes and resumes from.

Besides the weights, a checkpoint holds the optimiser's state, every random generator (per
rank) and the seconds trained, so that ``--resume`` continues a run exactly where it stopped
(docs/design.md, "Run directories and checkpoints").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from keypoint_wm.checkpoint import (
    checkpoint_dirs,
    read_run_config,
    resume_checkpoint,
    resume_differences,
    save_checkpoint,
)
from keypoint_wm.config import RunConfig
from keypoint_wm.errors import RunError, storage_cause, storage_remedy
from keypoint_wm.train_step import StepRunner

__all__ = ["ConfigMismatchError", "check_resume", "restore_rng_state", "save_training_checkpoint"]


class ConfigMismatchError(RunError):
    """``--resume`` with a config that differs in more than ``train.steps``, or ``--out``
    holding another run (exit code 1)."""


def save_training_checkpoint(
    run_dir, step, model, runner: StepRunner, rank: int, world_size: int, dataset, train_seconds
) -> None:
    """Save the checkpoint of ``step`` (rank 0 saves it, with every rank's CPU generator); a
    full or read-only disk is a :class:`RunError` naming the checkpoint still intact."""
    rng = torch.get_rng_state()
    if world_size > 1:
        import torch.distributed as dist

        gathered = [torch.empty_like(rng) for _ in range(world_size)]
        dist.all_gather(gathered, rng)
    else:
        gathered = [rng]
    if rank == 0:
        state: dict[str, Any] = {"optimizer": runner.optimizer_state(), "rng": gathered}
        if runner.device.type == "cuda" and world_size == 1:
            state["cuda_rng"] = torch.cuda.get_rng_state(runner.device)
        info = {
            "world_size": world_size,
            "data_seed": dataset.seed,
            "train_seconds": round(train_seconds, 1),
        }
        try:
            save_checkpoint(run_dir, step, model.state_dict(), state, info)
        except OSError as error:
            cause = storage_cause(error)
            if cause is None:
                raise
            raise RunError(_unsaved(run_dir, step, cause, storage_remedy(error))) from None


def _unsaved(run_dir: Path, step: int, cause: str, remedy: str) -> str:
    """One line for a checkpoint that could not be written: the cause, what is intact, and
    when ``--resume`` can continue (``remedy``, in words that fit the cause)."""
    saved = checkpoint_dirs(run_dir)
    kept = (
        f"its checkpoint of step {int(saved[-1].name.removeprefix('step_'))} is intact"
        if saved
        else "no checkpoint of it was saved yet"
    )
    return (
        f"{run_dir}: cannot save the checkpoint of step {step} ({cause}); {kept}: {remedy}, "
        f"continue with the same command and --resume"
    )


def restore_rng_state(
    training_state: dict[str, Any], rank: int, device: torch.device, fallback_seed: int
) -> None:
    """The random generators as a checkpoint saved them (CPU per rank; CUDA when saved from
    one CUDA device), so that the resumed run draws what the uninterrupted run would."""
    rng_states = training_state["rng"]
    if rank < len(rng_states):
        torch.set_rng_state(rng_states[rank])
    else:  # resumed on more processes than it was saved from
        torch.manual_seed(fallback_seed)
    if device.type == "cuda" and "cuda_rng" in training_state:
        torch.cuda.set_rng_state(training_state["cuda_rng"].cpu(), device)


def check_resume(run_dir: Path, config: RunConfig):
    """The step and checkpoint to resume from; refuses a changed config (except steps, and
    a moved data directory with the same fingerprint) and a run already past its steps."""
    differing = resume_differences(read_run_config(run_dir).to_dict(), config.to_dict())
    if differing:
        raise ConfigMismatchError(
            f"--resume: the config differs from {run_dir / 'config.json'} in: "
            f"{', '.join(differing)}; only --steps may change when resuming"
        )
    checkpoint = resume_checkpoint(run_dir, config.train.steps)
    if checkpoint is None:
        return 0, None
    return checkpoint.step, checkpoint
