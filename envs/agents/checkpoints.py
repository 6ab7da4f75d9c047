"""Checkpoints of one agent unit while it trains: a killed ``evaluate agents`` resumes it.

A pixel agent of SAC takes hours on a CPU; a unit killed near its end must not start again
from zero. While an agent trains, :class:`UnitCheckpoints` saves it every ``every`` seconds
of wall time and after each evaluation, always between two rounds of updates (SB3's
``on_rollout_start``), when the replay buffer holds every transition collected so far.
:func:`resume_unit` loads the newest one into a freshly made agent.

Layout, beside the unit's result file (``<variant>-seed<seed>.json``)::

    OUT/units/<task>/<variant>-seed<seed>.partial/checkpoints/step_<env steps>/
        agent.pt        the policy's and optimisers' state dicts, the entropy coefficient,
                        SB3's counters, torch's and NumPy's RNG states (loaded weights_only:
                        never unpickles code)
        buffer.npz      SAC's replay buffer, its filled part (plain arrays)
        state.json      env steps, the unit's settings, the curve so far, the next
                        evaluation, seconds trained so far

Each checkpoint is written and renamed into place like a run's
(:func:`keypoint_wm.checkpoint.write_checkpoint_dir`); the folder is removed when the unit's
result is written. A resumed agent has every weight, optimiser moment, transition and
counter of the checkpoint; its environments start new episodes (the episode in progress at
the checkpoint is cut), so a resumed unit is not bitwise the run that was never killed.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.save_util import recursive_getattr

from keypoint_wm.checkpoint import (
    STATE,
    CheckpointError,
    checkpoint_dirs,
    remove_stale_temp_dirs,
    write_checkpoint_dir,
)
from keypoint_wm.envs.agents.config import Unit, settings_differences
from keypoint_wm.errors import UsageError

__all__ = [
    "CHECKPOINT_SECONDS",
    "Progress",
    "UnitCheckpoints",
    "discard",
    "partial_dir",
    "resume_unit",
]

CHECKPOINT_SECONDS = 600.0
"""Default wall time between two checkpoints of a training unit (``--checkpoint-minutes``)."""

AGENT = "agent.pt"
BUFFER = "buffer.npz"
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


@dataclass
class Progress:
    """Where a unit stood at its checkpoint.

    Attributes:
        env_steps: steps the agent had taken (SB3's ``num_timesteps``).
        curve: ``[[steps, mean return], ...]`` of the evaluations made so far.
        next_eval: the step count of the next evaluation.
        seconds: wall time spent training it so far.
    """

    env_steps: int
    curve: list[list[float]]
    next_eval: int
    seconds: float


def partial_dir(unit: Unit, out: str | Path) -> Path:
    """The folder of ``unit``'s checkpoints: its result path with ``.partial`` for ``.json``."""
    return unit.path(out).with_suffix(".partial")


class UnitCheckpoints(BaseCallback):
    """Saves the agent every ``every`` seconds and after each evaluation (module doc).

    Args:
        folder: the unit's :func:`partial_dir`.
        settings: the unit's settings, recorded so that a resume of other settings is refused.
        curve: the evaluation callback's curve (a list it appends to).
        next_eval: returns the evaluation callback's next evaluation step.
        every: seconds of wall time between checkpoints (0: at every round of updates).
        seconds: wall time spent on the unit before this process (a resumed unit's).
    """

    def __init__(
        self,
        folder: Path,
        settings: dict[str, Any],
        curve: list[list[float]],
        next_eval: Callable[[], int],
        every: float = CHECKPOINT_SECONDS,
        seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.folder, self.settings, self.curve, self.next_eval = folder, settings, curve, next_eval
        self.every, self.before = every, seconds
        self.started = self.last = time.perf_counter()
        self.saved_steps = -1
        self.saved_points = len(curve)

    def _on_rollout_start(self) -> None:
        steps = self.model.num_timesteps
        if steps == 0 or steps == self.saved_steps:
            return
        due = time.perf_counter() - self.last >= self.every
        if due or len(self.curve) > self.saved_points:
            self.save()

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        """Write a checkpoint of the agent now; returns its folder."""
        agent = self.model
        progress = {
            "env_steps": int(agent.num_timesteps),
            "settings": self.settings,
            "curve": self.curve,
            "next_eval": int(self.next_eval()),
            "seconds": round(self.before + time.perf_counter() - self.started, 1),
        }

        def write(folder: Path) -> None:
            torch.save(_agent_state(agent), folder / AGENT)
            buffer = getattr(agent, "replay_buffer", None)
            if isinstance(buffer, ReplayBuffer):
                _save_buffer(buffer, folder / BUFFER)
            (folder / STATE).write_text(json.dumps(progress, indent=2) + "\n")

        path = write_checkpoint_dir(self.folder, agent.num_timesteps, write, keep=1)
        self.last, self.saved_steps = time.perf_counter(), agent.num_timesteps
        self.saved_points = len(self.curve)
        return path


def resume_unit(
    agent: BaseAlgorithm, folder: Path, settings: dict[str, Any]
) -> tuple[Progress, Path] | None:
    """Load the newest checkpoint in ``folder`` into ``agent`` (made as for a new unit).

    Returns its :class:`Progress` and path, or None when there is none.

    Raises:
        UsageError: naming ``--out``, when the checkpoint was made with other settings.
        CheckpointError: naming the checkpoint, when a file of it cannot be read or does not
            fit the agent.
    """
    remove_stale_temp_dirs(folder)
    found = checkpoint_dirs(folder)
    if not found:
        return None
    path = found[-1]
    try:
        info = json.loads((path / STATE).read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable agent checkpoint ({error})") from error
    differences = settings_differences(info.get("settings") or {}, settings)
    if differences:
        raise UsageError(
            f"--out: the unfinished unit in {folder} was run with other settings "
            f"({differences}); give another --out, or delete that folder to start it again"
        )
    try:
        state = torch.load(path / AGENT, map_location=agent.device, weights_only=True)
        _load_agent_state(agent, state)
        buffer = getattr(agent, "replay_buffer", None)
        if isinstance(buffer, ReplayBuffer):
            _load_buffer(buffer, path / BUFFER)
        progress = Progress(
            env_steps=int(info["env_steps"]),
            curve=[list(point) for point in info["curve"]],
            next_eval=int(info["next_eval"]),
            seconds=float(info["seconds"]),
        )
    except Exception as error:  # any failure to read is the checkpoint's, named
        raise CheckpointError(
            f"{path}: unreadable agent checkpoint ({type(error).__name__}: {error}); "
            f"delete {folder} to start the unit again"
        ) from error
    if progress.env_steps != agent.num_timesteps:
        raise CheckpointError(f"{path}: state.json and {AGENT} disagree on the step count")
    return progress, path


def discard(folder: Path) -> None:
    """Remove a finished unit's checkpoints."""
    shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- agent state
def _agent_state(agent: BaseAlgorithm) -> dict[str, Any]:
    _, tensor_names = agent._get_torch_save_params()
    # SB3 samples its replay buffer from NumPy's global generator.
    legacy = np.random.get_state()  # noqa: NPY002
    assert isinstance(legacy, tuple)  # ("MT19937", keys, position, has_gauss, gauss)
    keys, position, has_gauss, gauss = legacy[1:]
    return {
        "parameters": agent.get_parameters(),
        "tensors": {name: recursive_getattr(agent, name).detach() for name in tensor_names},
        "num_timesteps": int(agent.num_timesteps),
        "n_updates": int(getattr(agent, "_n_updates", 0)),
        "episode_num": int(agent._episode_num),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
    }


def _load_agent_state(agent: BaseAlgorithm, state: dict[str, Any]) -> None:
    agent.set_parameters(state["parameters"], exact_match=True, device=agent.device)
    for name, value in state["tensors"].items():
        recursive_getattr(agent, name).data.copy_(value)
    agent.num_timesteps = state["num_timesteps"]
    if hasattr(agent, "_n_updates"):
        agent._n_updates = state["n_updates"]
    agent._episode_num = state["episode_num"]
    torch.set_rng_state(state["torch_rng"])
    numpy_rng = state["numpy_rng"]
    keys = numpy_rng["keys"].numpy().astype(np.uint32)
    np.random.set_state(  # noqa: NPY002
        ("MT19937", keys, numpy_rng["position"], numpy_rng["has_gauss"], numpy_rng["gauss"])
    )


def _save_buffer(buffer: ReplayBuffer, path: Path) -> None:
    filled = buffer.buffer_size if buffer.full else buffer.pos
    arrays: dict[str, Any] = {
        name: getattr(buffer, name)[:filled]
        for name in BUFFER_ARRAYS
        if getattr(buffer, name, None) is not None
    }
    arrays["position"] = np.array([buffer.pos, int(buffer.full)], dtype=np.int64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def _load_buffer(buffer: ReplayBuffer, path: Path) -> None:
    with np.load(path, allow_pickle=False) as saved:
        pos, full = (int(v) for v in saved["position"])
        for name in BUFFER_ARRAYS:
            target = getattr(buffer, name, None)
            if target is None:
                continue
            array = saved[name]
            if array.shape[1:] != target.shape[1:] or len(array) > len(target):
                raise ValueError(
                    f"{BUFFER}: {name} of shape {array.shape} does not fit the agent's "
                    f"replay buffer {target.shape}"
                )
            target[: len(array)] = array
    buffer.pos, buffer.full = pos, bool(full)
