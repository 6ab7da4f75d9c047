"""Does the world model's imagination rank policies as the real task does?
``keypoint-wm evaluate dream-fidelity``.

A dream agent (:class:`~keypoint_wm.envs.latent.dream.DreamEnv`) can only learn what the
imagined returns rank right. For each task and each scripted policy (:data:`POLICIES`:
zero, full +1, full -1, uniform random, a sine; on cartpole also a hand-tuned PD controller
on the true pole angle and its sign-flipped twin), this rolls the REAL task for
``context + H`` agent steps from ``episodes`` of its initial states (task seeds
:func:`task_seed`), at the run's frame size and action repeat. Then, from the same first
``context`` frames and with the same actions, the model (:class:`~keypoint_wm.envs.latent
.online.LatentFilter`)

- FILTERS the real frames (posterior mean, as the latent wrapper does): ``"filtered"``;
- IMAGINES the rest from its prior, following the prior's mean (``"imagined_mean"``) or
  sampling it, the observed frames' posterior sampled too, as a sampling ``DreamEnv`` does
  (``"imagined_sampled"``),

and the task's reward head predicts each frame's reward. Per horizon (the model's
``num_predicted_steps`` and a longer one), the figures are each policy's mean return over the
H steps after the observed frames (``"real"`` and the three model columns), the Pearson
correlation of each model column with the real returns over all the task's rollouts (that
lasted: below), and the keypoint error: the mean Euclidean distance, in the keypoint frame (x, y in [-1, 1]),
between the imagined keypoints and the filtered ones (detected in the real frames), per
policy.

A task may also be a Gymnasium id of the run's ``collect --env`` data (``Pendulum-v1``,
``ALE/Pong-v5``; its results and head under the dataset folder's name, ``ALE-Pong-v5``),
as for ``evaluate agents``: its env made with the data's ``--env-kwargs`` (updated by
``env_kwargs``), its frames rendered, cropped and resized as collected, stepped once per
action (:mod:`~keypoint_wm.envs.agents.fidelity_envs`). Its policies act in the model's
units: on a 1-D ``Box`` the generic ones (not the PD controllers), on a ``Discrete(n)``
``random`` and ``action-0`` .. ``action-<n-1>``, one-hot as the data stored them. An episode
may end before ``context + H`` steps (a pole that falls): that rollout is dropped from
horizon H's figures, counted in the JSON (:func:`~keypoint_wm.envs.agents.fidelity_scores
.summarise`), rather than compared, return cut short, with an imagination that knows no
episode end. An env's own time limit below ``context + H`` steps is refused instead.

Resumable: each (run, task) result is written atomically to
``CACHE/<task>-<digest>.json`` (default ``CACHE = RUN/dream_fidelity``), the digest over its
settings (:func:`unit_settings`); a re-run with the same settings reads it back instead of
rolling out again. Several runs (seeds of one variant) are combined by
:class:`~keypoint_wm.evaluation.seeds.OverSeeds` in the command.

With a trained run and its reward heads (``keypoint-wm rewards train``)::

    import keypoint_wm
    from keypoint_wm.envs.agents.dream_fidelity import FidelityConfig, evaluate_dream_fidelity
    result = evaluate_dream_fidelity(
        keypoint_wm.load("runs/dmcs"), FidelityConfig(tasks=("cartpole-balance",))
    )
    result.to_json()["tasks"]["cartpole-balance"]["horizons"]["4"]["correlation"]

This module holds the cached units and the evaluation; the settings and the tasks are
:mod:`~keypoint_wm.envs.agents.fidelity_config`, the envs and policies
:mod:`~keypoint_wm.envs.agents.fidelity_envs`, the rollouts and the model's passes
:mod:`~keypoint_wm.envs.agents.fidelity_rollouts`, the reward heads
:mod:`~keypoint_wm.envs.agents.fidelity_heads`, the figures
:mod:`~keypoint_wm.envs.agents.fidelity_scores`, the table and plot
:mod:`~keypoint_wm.envs.agents.fidelity_report`; every name is importable from here.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.choices import DREAM_POLICIES as POLICIES
from keypoint_wm.data.episodes import atomic_write_json
from keypoint_wm.envs.agents.fidelity_config import FidelityConfig, FidelityTask, fidelity_tasks
from keypoint_wm.envs.agents.fidelity_envs import GymTask, gym_policies, scripted_policies
from keypoint_wm.envs.agents.fidelity_heads import heads_folder, task_head
from keypoint_wm.envs.agents.fidelity_report import format_fidelity, plot_fidelity
from keypoint_wm.envs.agents.fidelity_rollouts import (
    Rollouts,
    model_returns,
    real_rollouts,
    task_seed,
)
from keypoint_wm.envs.agents.fidelity_scores import COLUMNS, DreamFidelity, summarise
from keypoint_wm.envs.latent.wrapper import training_action_repeat
from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.rewards.head import HEAD_CONFIG, HEAD_WEIGHTS, load_reward_head

__all__ = [
    "COLUMNS",
    "POLICIES",
    "DreamFidelity",
    "FidelityConfig",
    "FidelityTask",
    "GymTask",
    "Rollouts",
    "evaluate_dream_fidelity",
    "fidelity_tasks",
    "format_fidelity",
    "gym_policies",
    "heads_folder",
    "model_returns",
    "plot_fidelity",
    "real_rollouts",
    "scripted_policies",
    "task_head",
    "task_seed",
]

FORMAT = 2
"""Version of the cached unit files' layout (part of their settings). 2: Gymnasium ids, and
the rollouts kept and dropped per horizon."""


# ---------------------------------------------------------------------------------- units
def _head_digest(directory: Path) -> str:
    digest = hashlib.sha1()
    for name in (HEAD_CONFIG, HEAD_WEIGHTS):
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:16]


def unit_settings(model: WorldModel, config: FidelityConfig, task: FidelityTask) -> dict[str, Any]:
    """What a cached (run, task) result must share with this evaluation to be reused: the
    run and checkpoint, the head (its folder and a digest of its files), the task (a
    Gymnasium id's env keyword arguments and crop too), policies, initial states, observed
    frames, horizons, action repeat, image size, device and the image nets' precision."""
    dtype = model.model.image_autocast_dtype
    return {
        "format": FORMAT,
        "run": str(Path(model.run_dir or "").resolve()),
        "checkpoint_step": model.step,
        "task": task.name,
        "gym": None if task.gym is None else task.gym.to_json(),
        "head": str(task.head.resolve()),
        "head_digest": _head_digest(task.head),
        "policies": list(task.policies),
        "episodes": config.episodes,
        "seed": config.seed,
        "context": config.observed(model),
        "horizons": list(config.horizons(model)),
        "action_repeat": training_action_repeat(model),
        "image_size": model.config.model.image_size,
        "device": model.device.type,
        "image_dtype": str(dtype or torch.float32).removeprefix("torch."),
    }


def unit_path(cache: Path, settings: dict[str, Any]) -> Path:
    """``CACHE/<task>-<digest of the settings>.json``."""
    text = json.dumps(settings, sort_keys=True)
    return cache / f"{settings['task']}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"


def _read_unit(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        unit = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: unreadable cached result ({error}); delete it to rerun") from None
    return unit if unit.get("settings") == settings else None


def evaluate_task(
    model: WorldModel,
    config: FidelityConfig,
    task: FidelityTask,
    *,
    progress: bool = False,
    rollouts: Rollouts | None = None,
) -> tuple[dict[str, Any], Rollouts]:
    """Roll out (unless ``rollouts`` are given), filter and imagine one task.

    Returns:
        (the task's figures, the rollouts): figures as in the JSON's ``"tasks"`` entries.
    """
    started = time.perf_counter()
    context, horizons = config.observed(model), config.horizons(model)
    policies = task.policies
    if rollouts is None:
        rollouts = real_rollouts(
            task.name,
            policies,
            config.episodes,
            context - 1 + max(horizons),
            image_size=model.config.model.image_size,
            action_repeat=training_action_repeat(model),
            seed=config.seed,
            progress=progress,
            gym=task.gym,
        )
    head = load_reward_head(task.head, device=model.device)
    rewards = {"real": rollouts.rewards[:, context:]}
    keypoints = {}
    passes = {"filtered": (False, False), "imagined_mean": (True, False)}
    passes["imagined_sampled"] = (True, True)
    for column, (imagine, sample) in passes.items():
        rewards[column], keypoints[column] = model_returns(
            model, head, rollouts, context, imagine=imagine, sample=sample, seed=config.seed
        )
    figures = summarise(rollouts, rewards, keypoints, context, horizons, policies)
    if task.gym is not None:
        figures["env_id"] = task.gym.env_id
    figures["head"] = str(task.head)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures, rollouts


def evaluate_dream_fidelity(
    model: WorldModel,
    config: FidelityConfig,
    *,
    heads: str | Path | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    several: bool = False,
    memo: dict[tuple[Any, ...], Rollouts] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> DreamFidelity:
    """Score the imagination of one run on every task of ``config`` (module doc).

    Args:
        model: the world model, loaded from its run directory.
        config: tasks, policies, initial states, horizons.
        heads: the folder of ``<task>/`` reward heads (:func:`heads_folder`; default
            ``RUN/rewards``).
        cache: the folder of the per-task results (default ``RUN/dream_fidelity``).
        several: this run is one of several (seeds of one variant): refuses a ``heads``
            folder outside the run.
        memo: real rollouts already made, by their settings (several runs of one action
            repeat and image size share them); filled in.
        env_kwargs: keyword arguments of the envs of the tasks that are Gymnasium ids, on
            top of (and overriding) the ``--env-kwargs`` the run's data was collected with.

    Returns:
        :class:`DreamFidelity`; its ``to_json()``::

            {"checkpoint_step", "action_repeat", "image_size", "context", "horizon",
             "long_horizon", "horizons": [H, ...], "episodes", "seed", "heads", "cache",
             "tasks": {TASK: {
                 "policies": [...], "rollouts": R, "context", "head", "seconds",
                 ("env_id": a Gymnasium id's,)
                 "horizons": {"H": {
                     "rollouts": R_H kept, "dropped": R - R_H,
                     "policy_rollouts": {POLICY: kept},
                     "correlation": {"filtered", "imagined_mean", "imagined_sampled"},
                     "returns": {POLICY: {"real", "filtered", "imagined_mean",
                                          "imagined_sampled"}},
                     "keypoint_error": {POLICY: {"imagined_mean", "imagined_sampled"}}}},
                 "keypoint_error_per_step": {POLICY: {"imagined_mean": [H_max], ...}},
                 "per_rollout": {"policy": [R], "task_seed": [R], "steps": [R],
                                 "returns": {"H": {COLUMN: [R]}}}}}}

        Returns are sums over the H agent steps after the observed frames; correlations are
        Pearson's over the R_H rollouts kept at H (null when a column is constant);
        keypoint errors are in keypoint units (the image spans [-1, 1]). A rollout whose
        episode ended before ``context - 1 + H`` agent steps (``"steps"``) is dropped from
        H's figures (null where nothing is left: its per-rollout returns, a policy none of
        whose rollouts lasted).

    Raises:
        UsageError: naming the flag: ``--run`` (not loaded from a run), ``--tasks`` (a
            Gymnasium id that cannot be made), ``--policies`` (none defined for the tasks),
            ``--heads`` (a task without a head), ``--context``/``--horizon``.
    """
    if model.run_dir is None:
        raise UsageError("--run: the world model must be loaded from its run directory")
    folder, tasks = fidelity_tasks(model, config, heads, several, env_kwargs)
    out = Path(cache) if cache is not None else Path(model.run_dir) / "dream_fidelity"
    meta = _meta(model, config, folder, out)
    results, cached = {}, []
    for task in tasks:
        unit, reused = _task_unit(model, config, task, out, progress, memo)
        if reused:
            cached.append(task.name)
        results[task.name] = unit["figures"]
    return DreamFidelity(meta, results, tuple(cached))


def _meta(model: WorldModel, config: FidelityConfig, folder: Path, out: Path) -> dict[str, Any]:
    """The result's settings (the JSON's top-level entries but ``"tasks"``)."""
    return {
        "checkpoint_step": model.step,
        "action_repeat": training_action_repeat(model),
        "image_size": model.config.model.image_size,
        "context": config.observed(model),
        "horizon": config.horizon or model.config.model.num_predicted_steps,
        "long_horizon": config.long_horizon,
        "horizons": list(config.horizons(model)),
        "episodes": config.episodes,
        "seed": config.seed,
        "heads": str(folder),
        "cache": str(out),
    }


def _task_unit(
    model: WorldModel,
    config: FidelityConfig,
    task: FidelityTask,
    out: Path,
    progress: bool,
    memo: dict[tuple[Any, ...], Rollouts] | None,
) -> tuple[dict[str, Any], bool]:
    """The task's cached unit (settings and figures) when ``out`` holds one of the same
    settings, else a fresh one, evaluated (on ``memo``'s rollouts when it holds them) and
    written; and whether it was cached."""
    settings = unit_settings(model, config, task)
    path = unit_path(out, settings)
    unit = _read_unit(path, settings)
    if unit is not None:
        if progress:
            tqdm.write(f"{task.name}: reusing {path}")
        return unit, True
    real = ("task", "gym", "policies", "episodes", "seed", "action_repeat", "image_size")
    steps = settings["context"] - 1 + max(config.horizons(model))
    key = (*(json.dumps(settings[k]) for k in real), steps)
    known = None if memo is None else memo.get(key)
    figures, rollouts = evaluate_task(model, config, task, progress=progress, rollouts=known)
    if memo is not None:
        memo[key] = rollouts
    unit = {"settings": settings, "figures": figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, unit)
    return unit, False
