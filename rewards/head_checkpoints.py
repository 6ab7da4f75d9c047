"""Checkpoints of one reward head while it trains: a stopped or killed ``rewards train``
resumes the head where it stood, exactly.

``rewards train`` keeps every head it finished (``train_summary.json``); this module covers
the head in progress. :class:`HeadCheckpoints` saves it at every evaluation step (every
``eval_every`` optimiser steps, where early stopping may take new weights) and at the step
boundary after SIGINT or SIGTERM, then raises :class:`~keypoint_wm.errors.Stopped`. A re-run
with the same settings on the same world model and data loads the newest checkpoint and
continues: the head ends bitwise where the head never stopped ends, on a CPU
(tests/rewards/test_head_resume.py stops and kills it at several points to prove it).

A checkpoint holds everything the rest of the fit depends on: the head's weights, the best
weights so far with their step and score (early stopping), Adam's state, NumPy's batch
generator and torch's generator. The windows are not saved: they are collected again, and
their collection is seeded.

Layout, beside the finished heads::

    OUT/<task>.partial/checkpoints/step_<optimiser steps>/
        head.safetensors    the head's weights (``head/...``) and the best ones (``best/...``)
        training_state.pt   Adam's state dict and torch's RNG state (loaded weights_only)
        state.json          the settings it belongs to, the step, NumPy's generator state,
                            the best step and score (written last: the checkpoint is whole)

Each checkpoint is written and renamed into place like a run's
(:func:`keypoint_wm.checkpoint.write_checkpoint_dir`); the folder goes when the head is saved.
A checkpoint of other settings (another world model, other data or flags) is removed and
the head starts again.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from keypoint_wm.checkpoint import (
    STATE,
    TRAINING_STATE,
    CheckpointError,
    checkpoint_dirs,
    write_checkpoint_dir,
    write_tensors,
    write_torch,
)
from keypoint_wm.errors import Stopped
from keypoint_wm.rewards.head import RewardHead
from keypoint_wm.stop_signals import StopRequest

__all__ = ["HeadCheckpoints", "HeadProgress", "partial_dir"]

HEAD = "head.safetensors"


def partial_dir(head_dir: Path) -> Path:
    """Where the checkpoints of the head trained into ``head_dir`` live: ``<head_dir>.partial``."""
    head_dir = Path(head_dir)
    return head_dir.with_name(head_dir.name + ".partial")


@dataclass
class HeadProgress:
    """Where a head's fit stands after ``step`` optimiser steps.

    Attributes:
        step: optimiser steps done.
        best_score: the lowest validation normalised MSE so far (``inf`` before any).
        best_step: the step whose weights the head keeps (``best_state``; the last step
            while there is none).
        best_state: the kept weights (early stopping), None before a validation score.
    """

    step: int = 0
    best_score: float = math.inf
    best_step: int = 0
    best_state: dict[str, torch.Tensor] | None = None


class HeadCheckpoints:
    """Save and resume one head's fit in ``partial_dir(head_dir)`` (module docstring).

    Args:
        head_dir: the folder the finished head goes to (``OUT/<task>``).
        settings: what the head is trained with and on (config, run, weights, data): a
            checkpoint of other settings is never resumed.
        stop: the command's stop request; at a step boundary after a signal the head is
            saved and :class:`~keypoint_wm.errors.Stopped` raised.
        done: a line on the work finished before this head, for the stop message.
    """

    def __init__(
        self,
        head_dir: Path,
        settings: dict[str, Any],
        stop: StopRequest | None = None,
        done: str = "",
    ) -> None:
        self.folder = partial_dir(head_dir)
        self.settings = json.loads(json.dumps(settings))  # as it reads back from JSON
        self.stop = stop or StopRequest()
        self.done = done
        self.resumed: int | None = None
        """The step :meth:`resume` continued from, or None."""

    def newest_step(self) -> int | None:
        """The step of the newest checkpoint in the folder (of any settings), or None: where
        a resumed head's TensorBoard curve is cut (``SummaryWriter(purge_step=...)``)."""
        folders = checkpoint_dirs(self.folder)
        return int(folders[-1].name.removeprefix("step_")) if folders else None

    def resume(
        self, head: RewardHead, optimizer: torch.optim.Optimizer, rng: np.random.Generator
    ) -> HeadProgress | None:
        """Load the newest checkpoint of these settings into ``head``, ``optimizer``, ``rng``
        and torch's generator and return its progress; None when there is none (a
        checkpoint of other settings is removed).

        Raises:
            CheckpointError: the newest checkpoint of these settings cannot be read.
        """
        folders = checkpoint_dirs(self.folder)
        if not folders:
            return None
        newest = folders[-1]
        try:
            state = json.loads((newest / STATE).read_text())
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{newest}: unreadable head checkpoint ({error})") from error
        if state.get("settings") != self.settings:
            self.discard()
            return None
        try:
            tensors = load_file(str(newest / HEAD))
            training = torch.load(newest / TRAINING_STATE, map_location="cpu", weights_only=True)
        except Exception as error:  # any failure to read is the file's, reported by name
            raise CheckpointError(f"{newest}: unreadable head checkpoint ({error})") from error
        head.load_state_dict(_prefixed(tensors, "head/"))
        optimizer.load_state_dict(training["optimizer"])
        torch.set_rng_state(training["torch_rng"])
        rng.bit_generator.state = state["numpy_rng"]
        best = _prefixed(tensors, "best/")
        self.resumed = int(state["step"])
        return HeadProgress(
            step=int(state["step"]),
            best_score=math.inf if state["best_score"] is None else float(state["best_score"]),
            best_step=int(state["best_step"]),
            best_state=best or None,
        )

    def boundary(
        self,
        progress: HeadProgress,
        head: RewardHead,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
        evaluated: bool,
        total: int,
    ) -> None:
        """After a step: save at an evaluation step or when a stop was asked; then, on a
        stop, raise :class:`~keypoint_wm.errors.Stopped` naming what was saved."""
        stopping = self.stop.signum is not None and progress.step < total
        if not (evaluated or stopping):
            return
        if progress.step >= total:
            return  # the head is finished: its caller saves it
        saved = self.save(progress, head, optimizer, rng)
        if stopping:
            assert self.stop.signum is not None
            raise Stopped(
                f"stopped by {self.stop.name}{self.done}; the head of {head.config.task} saved at "
                f"step {progress.step} of {total} ({saved}); the same command continues it",
                self.stop.signum,
            )

    def save(
        self,
        progress: HeadProgress,
        head: RewardHead,
        optimizer: torch.optim.Optimizer,
        rng: np.random.Generator,
    ) -> Path:
        """Write ``checkpoints/step_<progress.step>`` (atomically; the newest one is kept)."""
        tensors = {f"head/{k}": v.detach().contiguous().cpu() for k, v in head.state_dict().items()}
        for name, value in (progress.best_state or {}).items():
            tensors[f"best/{name}"] = value.detach().contiguous().cpu()
        finite = math.isfinite(progress.best_score)
        state = {
            "step": progress.step,
            "settings": self.settings,
            "numpy_rng": rng.bit_generator.state,
            "best_score": progress.best_score if finite else None,
            "best_step": progress.best_step,
        }

        def write(folder: Path) -> None:
            write_tensors(folder / HEAD, tensors)
            write_torch(
                folder / TRAINING_STATE,
                {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()},
            )
            (folder / STATE).write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")

        return write_checkpoint_dir(self.folder, progress.step, write, keep=1)

    def discard(self) -> None:
        """Remove the checkpoints (the head is saved, or they belong to other settings)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
