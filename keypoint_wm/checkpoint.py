"""Run directories and checkpoints (docs/design.md, "Run directories and checkpoints").

Layout of a run directory::

    RUN/config.json                     the full config (model, training, data), JSON
    RUN/checkpoints/step_00001000/      one complete checkpoint per directory
        model.safetensors               weights (loading never executes pickled code)
        training_state.pt               optimizer state + RNG state, loaded weights_only
        state.json                      step, steps/s so far, data fingerprint
    RUN/tensorboard/                    event files
    RUN/media/                          keypoint overlays and prediction GIFs

A checkpoint directory is written under a hidden temporary name
(``checkpoints/.step_00001000.<pid>.tmp``) and renamed into place, so a run killed at any
moment leaves only complete checkpoints; the newest one is the one to resume from. Older ones
are pruned, keeping ``keep`` of them. The temporary directory of a writer that was killed is
removed the next time the run starts (:func:`remove_stale_temp_dirs`), never one whose writer
is alive.

A checkpoint damaged after it was written (a truncated or overwritten file) is skipped with a
warning naming it: :func:`latest_checkpoint` and :func:`load_latest_checkpoint` fall back to
the newest valid one, and raise :class:`CheckpointError` naming the run directory when no
checkpoint is valid.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from keypoint_wm.config import RunConfig, config_differences, recorded_settings
from keypoint_wm.data.episodes import atomic_write_json
from keypoint_wm.errors import DataError, RunError

CONFIG_NAME = "config.json"
CHECKPOINTS = "checkpoints"
WEIGHTS = "model.safetensors"
TRAINING_STATE = "training_state.pt"
STATE = "state.json"


class CheckpointError(DataError):
    """A checkpoint (or every checkpoint of a run) cannot be read; the message names it."""


class NotARunError(DataError, FileNotFoundError):
    """A directory that holds no run (no ``config.json``)."""


class ResumeError(RunError):
    """``--resume`` asked for something the run cannot do (e.g. fewer steps than it has)."""


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
    atomic_write_json(run_dir / CONFIG_NAME, config, sort_keys=True)


def weights_digest(path: Path) -> str:
    """A short hash of a weights file's bytes: how records, exports and their cards name the
    weights a world model holds (the same file gives the same digest everywhere)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def read_config(run_dir: Path) -> dict[str, Any]:
    """The run's ``config.json`` as a dict.

    Raises:
        NotARunError: no ``config.json`` (a DataError and a FileNotFoundError).
        CheckpointError: ``config.json`` is not a JSON object.
    """
    path = Path(run_dir) / CONFIG_NAME
    if not path.exists():
        raise NotARunError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable run config ({error})") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def read_run_config(run_dir: Path) -> RunConfig:
    """The config the run recorded, with what it predates derived
    (:func:`~keypoint_wm.config.recorded_settings`).

    Raises:
        NotARunError: no ``config.json``.
        CheckpointError: in one line naming ``config.json``: not a JSON object, a setting
            that cannot be derived, or a value the config refuses (a file edited by hand).
    """
    try:
        return RunConfig.from_dict(recorded_settings(read_config(run_dir)))
    except (ValueError, TypeError) as error:
        raise CheckpointError(f"{Path(run_dir) / CONFIG_NAME}: {error}") from None


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], run_dir: Path,
                 source: Path) -> None:  # fmt: skip
    """Load ``weights`` (read from ``source``: a checkpoint or an exported weights file)
    into ``model``, built from ``run_dir``'s ``config.json``.

    Raises:
        CheckpointError: the weights do not fit the config (``config.json`` edited by hand,
            say a changed ``model.num_keypoints``): one line naming ``config.json``,
            ``source`` and the first tensor that differs, never torch's own report.
    """
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        lines = [line.strip() for line in str(error).splitlines()]
        first = next(
            (line for line in lines if line.startswith(("size mismatch", "Missing", "Unexpected"))),
            lines[0],
        )
        raise CheckpointError(
            f"{run_dir}: the weights in {source} do not fit {Path(run_dir) / CONFIG_NAME} ({first})"
        ) from None


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

    def write(folder: Path) -> None:
        weights = {k: v.detach().contiguous().cpu() for k, v in model_state.items()}
        write_tensors(folder / WEIGHTS, weights)
        write_torch(folder / TRAINING_STATE, training_state)
        text = json.dumps({"step": step, **info}, indent=2, sort_keys=True) + "\n"
        (folder / STATE).write_text(text)

    return write_checkpoint_dir(run_dir, step, write, keep=keep)


def write_tensors(
    path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write a safetensors file through Python's file I/O (the bytes of safetensors'
    ``save_file``), so that a full disk or a read-only folder is an :class:`OSError`
    naming ``path`` (:func:`keypoint_wm.errors.storage_cause`), not safetensors' own error."""
    Path(path).write_bytes(safetensors_bytes(tensors, metadata=metadata))


def write_torch(path: Path, value: dict[str, Any]) -> None:
    """``torch.save`` of plain tensors and containers, serialised in memory and written
    through Python's file I/O: a full disk is an :class:`OSError` naming ``path`` (torch's
    own writer reports it as "enforce fail at inline_container.cc")."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    Path(path).write_bytes(buffer.getvalue())


def write_checkpoint_dir(
    run_dir: Path, step: int, write: Callable[[Path], None], keep: int = 2
) -> Path:
    """Write ``run_dir/checkpoints/step_<step>/`` atomically; prune old ones.

    ``write`` fills a temporary directory (``checkpoints/.step_<step>.<pid>.tmp``) and must
    write :data:`STATE` (``state.json``), the file that marks a checkpoint complete; its
    files are fsynced and the directory is renamed into place. Then all but the newest
    ``keep`` checkpoints are removed. Stale temporary directories of killed writers are
    removed first (:func:`remove_stale_temp_dirs`).
    """
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(run_dir)
    final = root / f"step_{step:08d}"
    tmp = root / f".step_{step:08d}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        if not (tmp / STATE).is_file():
            raise ValueError(f"a checkpoint writer must write {STATE}")
        for file in tmp.iterdir():
            with open(file, "rb") as f:
                os.fsync(f.fileno())
    except BaseException:  # a full disk, a stop: the half-written folder goes, its space too
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # the same step saved again (e.g. a resumed run's final step)
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, with_training_state: bool = True) -> Checkpoint:
    """Load a checkpoint directory. Never unpickles arbitrary objects.

    Raises:
        CheckpointError: a file is missing, truncated or not what it should be (the message
            names the checkpoint and the reason).
    """
    path = Path(path)
    try:
        info = json.loads((path / STATE).read_text())
        step = int(info["step"])
        model_state = load_file(str(path / WEIGHTS))
        training_state = None
        if with_training_state:
            training_state = torch.load(
                path / TRAINING_STATE, map_location="cpu", weights_only=True
            )
    except Exception as error:  # any failure to read is the file's, reported by name
        raise CheckpointError(
            f"{path}: unreadable checkpoint ({type(error).__name__}: {error})"
        ) from error
    return Checkpoint(path, step, model_state, training_state, info)


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint directory is damaged, from cheap checks; None when it looks whole.

    Checks that ``state.json`` holds a step, that ``model.safetensors``' header parses and
    its size matches what the header promises, and that ``training_state.pt``'s zip
    directory is readable. Reads headers only (no tensor data).
    """
    path = Path(path)
    try:
        info = json.loads((path / STATE).read_text())
        int(info["step"])
        size = (path / WEIGHTS).stat().st_size
        with open(path / WEIGHTS, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > size - 8:
                return f"{WEIGHTS} holds {size} bytes, its header alone claims {length}"
            header = json.loads(f.read(length))
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        expected = 8 + length + max(ends, default=0)
        if size != expected:
            return f"{WEIGHTS} holds {size} bytes, its header promises {expected}"
        with zipfile.ZipFile(path / TRAINING_STATE) as archive:
            archive.namelist()
    except (OSError, ValueError, KeyError, TypeError, AttributeError, struct.error) as error:
        return f"{type(error).__name__}: {error}"
    except zipfile.BadZipFile as error:
        return f"{TRAINING_STATE}: {error}"
    return None


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint of a run that passes :func:`checkpoint_problem`; None if none.

    A damaged newer checkpoint is skipped with a warning naming it and the one used instead.

    Raises:
        CheckpointError: the run has checkpoints but every one is damaged.
    """
    skipped: list[str] = []
    for path in reversed(checkpoint_dirs(run_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            _warn_skipped(skipped, path)
            return path
        skipped.append(f"{path} ({problem})")
    if skipped:
        raise CheckpointError(f"{run_dir}: no valid checkpoint: {'; '.join(skipped)}")
    return None


def load_latest_checkpoint(run_dir: Path, with_training_state: bool = True) -> Checkpoint | None:
    """Load the newest checkpoint that loads, newest first; None when the run has none.

    Every damaged newer checkpoint is named in one warning, with the one used instead.

    Raises:
        CheckpointError: the run has checkpoints but none of them loads.
    """
    skipped: list[str] = []
    for path in reversed(checkpoint_dirs(run_dir)):
        problem = checkpoint_problem(path)
        if problem is None:
            try:
                checkpoint = load_checkpoint(path, with_training_state)
            except CheckpointError as error:
                problem = str(error).removeprefix(f"{path}: ")
            else:
                _warn_skipped(skipped, path)
                return checkpoint
        skipped.append(f"{path} ({problem})")
    if skipped:
        raise CheckpointError(f"{run_dir}: no valid checkpoint: {'; '.join(skipped)}")
    return None


def _warn_skipped(skipped: list[str], used: Path) -> None:
    if skipped:
        warnings.warn(
            f"skipped damaged checkpoint(s) {'; '.join(skipped)}; using {used}", stacklevel=3
        )


def remove_stale_temp_dirs(run_dir: Path) -> list[Path]:
    """Remove the temporary checkpoint directories of writers that are no longer running.

    A writer names its temporary directory ``checkpoints/.step_<step>.<pid>.tmp``; one whose
    process is gone was killed mid-write and is removed. A live writer's (another process
    still saving into this run, or this process) is left alone. Returns what was removed.
    """
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    removed = []
    for entry in root.iterdir():
        parts = entry.name.split(".")
        if not (
            len(parts) == 4 and parts[0] == "" and parts[1].startswith("step_")
            and parts[3] == "tmp" and parts[2].isdigit()
        ):  # fmt: skip
            continue
        if not _process_alive(int(parts[2])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one we may not signal counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def resume_differences(saved: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Dotted config keys that may not change when a run resumes.

    ``train.steps`` may change (checked by :func:`resume_checkpoint`); ``data.root`` may
    change when ``data.fingerprint`` is recorded and equal (the same files, moved);
    ``data.action_repeat`` may appear in a run trained before it was recorded.
    """
    differing = [k for k in config_differences(saved, config) if k != "train.steps"]
    if "action_repeat" not in saved.get("data", {}):
        differing = [k for k in differing if k != "data.action_repeat"]
    fingerprint = saved.get("data", {}).get("fingerprint")
    if fingerprint is not None and fingerprint == config.get("data", {}).get("fingerprint"):
        differing = [k for k in differing if k != "data.root"]
    return differing


def resume_checkpoint(run_dir: Path, steps: int) -> Checkpoint | None:
    """The checkpoint a run resumes from, for a new total of ``steps``; None if it has none.

    Removes the temporary directories of killed checkpoint writers, loads the newest valid
    checkpoint (:func:`load_latest_checkpoint`) and refuses ``steps`` below the step the
    run has reached. Lowering ``train.steps`` below the saved config's (but not below the
    step reached) is allowed with a warning.

    Raises:
        ResumeError: the run is already past ``steps``.
        CheckpointError: the run has checkpoints but none loads.
    """
    run_dir = Path(run_dir)
    remove_stale_temp_dirs(run_dir)
    checkpoint = load_latest_checkpoint(run_dir)
    if checkpoint is not None and checkpoint.step > steps:
        raise ResumeError(
            f"--resume: the run in {run_dir} is already at step {checkpoint.step} > --steps "
            f"{steps}; pass --steps {checkpoint.step} or more (--steps is the total)"
        )
    saved_steps = read_config(run_dir).get("train", {}).get("steps")
    if isinstance(saved_steps, int) and steps < saved_steps:
        warnings.warn(
            f"--resume: train.steps lowered from {saved_steps} to {steps} in "
            f"{run_dir / CONFIG_NAME} (the run is at step {checkpoint.step if checkpoint else 0})",
            stacklevel=2,
        )
    return checkpoint
