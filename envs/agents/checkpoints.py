"""Checkpoints of one agent unit while it trains: a killed ``evaluate agents`` resumes it exactly.

A pixel agent of SAC takes hours on a CPU; a unit killed near its end must not start again
from zero. While an agent trains, :class:`UnitCheckpoints` saves it every ``every`` seconds
of wall time, after each evaluation and when SIGINT or SIGTERM asks the command to stop,
always between two rounds of updates (SB3's ``on_rollout_start``), when the replay buffer
holds every transition collected so far and PPO's rollout buffer nothing yet.
:func:`resume_unit` loads the newest one into a freshly made agent and its freshly made,
never reset, environments.

A resume is exact: the resumed unit ends bitwise where the unit never killed ends, on a CPU
(tests/envs/agents/test_resume.py kills units at several points to prove it). The checkpoint
holds everything the rest of the training depends on:

- the policy's and optimisers' state dicts and the entropy coefficient;
- SB3's counters (steps, updates, episodes, the schedules' progress), its last observations
  and episode starts (the next actions are chosen from them) and its episode statistics;
- SAC's replay buffer with its position;
- every random number generator: torch's (and CUDA's), NumPy's and Python's global ones
  (SB3 samples minibatches from NumPy's), and the action space's (SAC's first random steps);
- the training environments' episodes in progress (:mod:`~keypoint_wm.envs.agents.env_state`:
  dm_control's episodes are replayed from their start, the latent wrapper's and the dream's
  model state are saved as tensors, each env's and action space's generator as it stands);
- the evaluation schedule: the curve so far and the step of the next evaluation. The
  evaluation envs carry nothing over: every evaluation reseeds and resets them.

Layout, beside the unit's result file (``<variant>-seed<seed>.json``)::

    OUT/units/<task>/<variant>-seed<seed>.partial/checkpoints/step_<env steps>/
        agent.pt        the policy's and optimisers' state dicts, the entropy coefficient,
                        torch's RNG states (loaded weights_only: never unpickles code)
        buffer.npz      SAC's replay buffer, its filled part (plain arrays)
        training.json   SB3's counters and episode statistics, NumPy's and Python's RNG
                        states, the envs' state (arrays named into training.npz)
        training.npz    the arrays of training.json: last observations, RNG keys, the
                        episodes' actions, the latent filters' tensors
        state.json      format, env steps, the unit's settings, the curve so far, the next
                        evaluation, seconds trained so far (written last: the checkpoint
                        is complete)

Each checkpoint is written and renamed into place like a run's
(:func:`keypoint_wm.checkpoint.write_checkpoint_dir`); the folder is removed when the unit's
result is written. No file is unpickled: ``torch.load(weights_only=True)``, ``np.load``
without pickles, JSON. A checkpoint of an earlier format (which resumed with new episodes)
is refused, naming the folder to delete.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import deque
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
from keypoint_wm.envs.agents.env_state import (
    env_state,
    generator_state,
    load_env_state,
    restore_generator,
)
from keypoint_wm.errors import Stopped, UsageError
from keypoint_wm.stop_signals import StopRequest

__all__ = [
    "CHECKPOINT_SECONDS",
    "FORMAT",
    "Progress",
    "UnitCheckpoints",
    "discard",
    "partial_dir",
    "resume_unit",
]

CHECKPOINT_SECONDS = 600.0
"""Default wall time between two checkpoints of a training unit (``--checkpoint-minutes``)."""

FORMAT = 2
"""The checkpoint format (``state.json``'s ``"format"``): 2 resumes exactly; the earlier,
unnumbered one restarted the episodes and is refused."""

AGENT = "agent.pt"
BUFFER = "buffer.npz"
TRAINING = "training.json"
ARRAYS = "training.npz"
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
    """Saves the agent every ``every`` seconds, after each evaluation and on a stop request
    (module doc).

    Args:
        folder: the unit's :func:`partial_dir`.
        settings: the unit's settings, recorded so that a resume of other settings is refused.
        curve: the evaluation callback's curve (a list it appends to).
        next_eval: returns the evaluation callback's next evaluation step.
        every: seconds of wall time between checkpoints (0: at every round of updates).
        seconds: wall time spent on the unit before this process (a resumed unit's).
        saved_steps: the step of the checkpoint the agent was resumed from (none: -1).
        stop: the command's stop request: once it holds a signal, the next round of updates
            saves a checkpoint and raises :class:`~keypoint_wm.errors.Stopped`.
        label: the unit, as the stop's message names it.
        budget: the unit's steps, as the stop's message names them.
    """

    def __init__(
        self,
        folder: Path,
        settings: dict[str, Any],
        curve: list[list[float]],
        next_eval: Callable[[], int],
        every: float = CHECKPOINT_SECONDS,
        seconds: float = 0.0,
        saved_steps: int = -1,
        stop: StopRequest | None = None,
        label: str = "the unit",
        budget: int | None = None,
    ) -> None:
        super().__init__()
        self.folder, self.settings, self.curve, self.next_eval = folder, settings, curve, next_eval
        self.every, self.before = every, seconds
        self.started = self.last = time.perf_counter()
        self.saved_steps = saved_steps
        self.saved_points = len(curve)
        self.stop, self.label, self.budget = stop, label, budget

    def _on_rollout_start(self) -> None:
        steps = self.model.num_timesteps
        stopping = self.stop is not None and self.stop.signum is not None
        if steps != 0 and steps != self.saved_steps:
            due = time.perf_counter() - self.last >= self.every
            if due or stopping or len(self.curve) > self.saved_points:
                self.save()
        if stopping:
            assert self.stop is not None and self.stop.signum is not None
            of = "" if self.budget is None else f" of {self.budget}"
            where = (
                f"its checkpoint saved in {self.folder / 'checkpoints' / _step_name(steps)}"
                if steps
                else "before its first step (nothing to save)"
            )
            raise Stopped(
                f"stopped by {self.stop.name} at step {steps}{of} of {self.label}, {where}; "
                "run the same command again to continue it exactly there",
                self.stop.signum,
            )

    def _on_step(self) -> bool:
        return True

    def save(self) -> Path:
        """Write a checkpoint of the agent and its environments now; returns its folder."""
        agent = self.model
        progress = {
            "format": FORMAT,
            "env_steps": int(agent.num_timesteps),
            "settings": self.settings,
            "curve": self.curve,
            "next_eval": int(self.next_eval()),
            "seconds": round(self.before + time.perf_counter() - self.started, 1),
        }
        tree, arrays = _split_arrays(_training_state(agent))

        def write(folder: Path) -> None:
            torch.save(_agent_state(agent), folder / AGENT)
            buffer = getattr(agent, "replay_buffer", None)
            if isinstance(buffer, ReplayBuffer):
                _save_buffer(buffer, folder / BUFFER)
            with open(folder / ARRAYS, "wb") as f:
                np.savez(f, **arrays)
            (folder / TRAINING).write_text(json.dumps(tree) + "\n")
            (folder / STATE).write_text(json.dumps(progress, indent=2) + "\n")

        path = write_checkpoint_dir(self.folder, agent.num_timesteps, write, keep=1)
        self.last, self.saved_steps = time.perf_counter(), agent.num_timesteps
        self.saved_points = len(self.curve)
        return path


def _step_name(steps: int) -> str:
    return f"step_{steps:08d}"  # as keypoint_wm.checkpoint.write_checkpoint_dir names it


def resume_unit(
    agent: BaseAlgorithm, folder: Path, settings: dict[str, Any]
) -> tuple[Progress, Path] | None:
    """Load the newest checkpoint in ``folder`` into ``agent`` and its environments (made
    as for a new unit, the environments never reset).

    Returns its :class:`Progress` and path, or None when there is none. ``agent.learn(...,
    reset_num_timesteps=False)`` then continues exactly where the checkpoint was taken.

    Raises:
        UsageError: naming ``--out``, when the checkpoint was made with other settings.
        CheckpointError: naming the checkpoint, when a file of it cannot be read, does not
            fit the agent or is of an earlier format.
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
    if info.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: an agent checkpoint of an earlier format, which cannot be resumed "
            f"exactly; delete {folder} to start the unit again"
        )
    try:
        state = torch.load(path / AGENT, map_location=agent.device, weights_only=True)
        with np.load(path / ARRAYS, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        training = _join_arrays(json.loads((path / TRAINING).read_text()), arrays)
        _load_agent_state(agent, state)
        buffer = getattr(agent, "replay_buffer", None)
        if isinstance(buffer, ReplayBuffer):
            _load_buffer(buffer, path / BUFFER)
        _load_training_state(agent, training)
        _load_torch_rngs(state)  # last: nothing after it draws from them
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
        raise CheckpointError(f"{path}: state.json and {TRAINING} disagree on the step count")
    return progress, path


def discard(folder: Path) -> None:
    """Remove a finished unit's checkpoints."""
    shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- agent state
def _agent_state(agent: BaseAlgorithm) -> dict[str, Any]:
    """What ``agent.pt`` holds: weights, optimiser moments and torch's generators."""
    _, tensor_names = agent._get_torch_save_params()
    state: dict[str, Any] = {
        "parameters": agent.get_parameters(),
        "tensors": {name: recursive_getattr(agent, name).detach() for name in tensor_names},
        "torch_rng": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _load_agent_state(agent: BaseAlgorithm, state: dict[str, Any]) -> None:
    agent.set_parameters(state["parameters"], exact_match=True, device=agent.device)
    for name, value in state["tensors"].items():
        recursive_getattr(agent, name).data.copy_(value)


def _load_torch_rngs(state: dict[str, Any]) -> None:
    # Generator states are CPU byte tensors, whatever device agent.pt was mapped to.
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([rng.cpu() for rng in state["cuda_rng"]])


COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_n_calls")
"""SB3's integer counters an algorithm may have (``_n_calls``: DQN's)."""


def _training_state(agent: BaseAlgorithm) -> dict[str, Any]:
    """What ``training.json`` and ``training.npz`` hold (module doc), arrays and all."""
    venv = agent.get_env()
    assert venv is not None
    python = random.getstate()
    return {
        "counters": {name: int(getattr(agent, name)) for name in COUNTERS if hasattr(agent, name)},
        "progress_remaining": float(agent._current_progress_remaining),
        "last_obs": agent._last_obs,
        "last_original_obs": agent._last_original_obs,
        "last_episode_starts": agent._last_episode_starts,
        "ep_info_buffer": None if agent.ep_info_buffer is None else list(agent.ep_info_buffer),
        "ep_success_buffer": (
            None if agent.ep_success_buffer is None else list(agent.ep_success_buffer)
        ),
        # SB3 samples PPO's minibatches and SAC's replay batches from NumPy's global generator.
        "numpy_rng": np.random.get_state(legacy=False),  # noqa: NPY002
        "python_rng": [python[0], list(python[1]), python[2]],
        "action_space": generator_state(agent.action_space._np_random),
        "envs": env_state(venv),
    }


def _load_training_state(agent: BaseAlgorithm, state: dict[str, Any]) -> None:
    venv = agent.get_env()
    assert venv is not None
    load_env_state(venv, state["envs"])  # first: a replay must not move the generators below
    for name, value in state["counters"].items():
        if not hasattr(agent, name):
            raise ValueError(f"{TRAINING}: the agent has no counter {name}")
        setattr(agent, name, int(value))
    agent._current_progress_remaining = float(state["progress_remaining"])
    agent._last_obs = state["last_obs"]
    agent._last_original_obs = state["last_original_obs"]
    agent._last_episode_starts = state["last_episode_starts"]
    window = agent._stats_window_size
    infos, successes = state["ep_info_buffer"], state["ep_success_buffer"]
    agent.ep_info_buffer = None if infos is None else deque(infos, maxlen=window)
    agent.ep_success_buffer = None if successes is None else deque(successes, maxlen=window)
    np.random.set_state(state["numpy_rng"])  # noqa: NPY002
    version, internal, gauss = state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
    space = agent.action_space
    if state["action_space"] is not None:
        space._np_random = restore_generator(space._np_random, state["action_space"])


# --------------------------------------------------------------------------- plain files
_ARRAY, _TENSOR = "__array__", "__tensor__"


def _split_arrays(tree: Any) -> tuple[Any, dict[str, Any]]:
    """``tree`` as JSON-able values and the arrays it held, each replaced by
    ``{"__array__": name}`` (a torch tensor by ``{"__tensor__": name, "dtype": ...}``).

    Tuples become lists, NumPy scalars Python numbers. An array's memory layout is kept as
    well as its values (``"axes"``: the order of its dimensions in memory, when not the
    plain one): the kernels a convolution picks, and with them the last bits of its result,
    depend on it, and SB3 keeps a pixel agent's last observations as a transposed view.

    >>> frames = np.zeros((2, 4, 4, 3), np.uint8).transpose(0, 3, 1, 2)  # NCHW view of NHWC
    >>> tree, arrays = _split_arrays({"a": frames, "b": (1, torch.ones(2)), "c": None})
    >>> tree, sorted(arrays)
    ({'a': {'__array__': 'a0', 'axes': [0, 2, 3, 1]}, 'b': [1, {'__tensor__': 'a1', 'dtype': 'float32'}], 'c': None}, ['a0', 'a1'])
    >>> restored = _join_arrays(tree, arrays)
    >>> restored["a"].shape, restored["a"].strides == frames.strides, restored["b"][1].dtype
    ((2, 3, 4, 4), True, torch.float32)
    """
    arrays: dict[str, Any] = {}  # name -> np.ndarray, C-contiguous

    def store(array: np.ndarray, strides: tuple[int, ...], entry: dict[str, Any]) -> Any:
        name = f"a{len(arrays)}"
        # Dimensions from the outermost in memory to the innermost (stable for ties).
        axes = sorted(range(array.ndim), key=lambda d: -abs(strides[d]))
        arrays[name] = np.ascontiguousarray(array.transpose(axes))
        entry = {entry.pop("key"): name, **entry}
        if axes != list(range(array.ndim)):
            entry["axes"] = axes
        return entry

    def split(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu()
            # bfloat16 has no NumPy dtype; float32 holds its every value exactly.
            exact = tensor.float() if tensor.dtype == torch.bfloat16 else tensor
            dtype = str(tensor.dtype).removeprefix("torch.")
            return store(exact.numpy(), tensor.stride(), {"key": _TENSOR, "dtype": dtype})
        if isinstance(value, np.ndarray):
            if value.dtype == object:
                raise TypeError("an object array cannot be saved without pickling")
            return store(value, value.strides, {"key": _ARRAY})
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, dict):
            if not all(isinstance(key, str) for key in value):
                raise TypeError(f"a dict with keys other than strings: {list(value)}")
            return {key: split(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [split(item) for item in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot save a {type(value).__name__} as plain data")

    return split(tree), arrays


def _join_arrays(tree: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of :func:`_split_arrays` (tuples come back as lists)."""
    if isinstance(tree, dict):
        if _ARRAY in tree or _TENSOR in tree:
            array = arrays[tree.get(_ARRAY) or tree[_TENSOR]]
            back = np.argsort(tree.get("axes", range(array.ndim))).tolist()
            if _ARRAY in tree:
                return array.transpose(back)
            tensor = torch.from_numpy(array).permute(back)
            return tensor.to(getattr(torch, tree["dtype"]))
        return {key: _join_arrays(item, arrays) for key, item in tree.items()}
    if isinstance(tree, list):
        return [_join_arrays(item, arrays) for item in tree]
    return tree


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
