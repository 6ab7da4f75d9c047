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
correlation of each model column with the real returns over all the task's rollouts, and
the keypoint error: the mean Euclidean distance, in the keypoint frame (x, y in [-1, 1]),
between the imagined keypoints and the filtered ones (detected in the real frames), per
policy.

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

This module holds the settings, the cached units and the evaluation; the rollouts and the
model's passes are :mod:`~keypoint_wm.envs.agents.fidelity_rollouts`, the figures
:mod:`~keypoint_wm.envs.agents.fidelity_scores`, the table and plot
:mod:`~keypoint_wm.envs.agents.fidelity_report`; every name is importable from here.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.choices import DREAM_POLICIES as POLICIES
from keypoint_wm.data.episodes import atomic_write_json
from keypoint_wm.envs.agents.fidelity_report import format_fidelity, plot_fidelity
from keypoint_wm.envs.agents.fidelity_rollouts import (
    Rollouts,
    model_returns,
    real_rollouts,
    scripted_policies,
    task_seed,
)
from keypoint_wm.envs.agents.fidelity_scores import COLUMNS, DreamFidelity, summarise
from keypoint_wm.envs.agents.runner import check_tasks
from keypoint_wm.envs.latent.wrapper import training_action_repeat
from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.reward_inputs import inputs_mismatch
from keypoint_wm.rewards.head import HEAD_CONFIG, HEAD_WEIGHTS, load_reward_head

__all__ = [
    "COLUMNS",
    "POLICIES",
    "DreamFidelity",
    "FidelityConfig",
    "Rollouts",
    "evaluate_dream_fidelity",
    "format_fidelity",
    "model_returns",
    "plot_fidelity",
    "real_rollouts",
    "scripted_policies",
    "task_seed",
]

CARTPOLE_ONLY = ("pd", "pd-flipped")

FORMAT = 1
"""Version of the cached unit files' layout (part of their settings)."""


@dataclass(frozen=True)
class FidelityConfig:
    """The settings of one evaluation (each field is the flag of the same name).

    Attributes:
        tasks: ``"domain-task"`` names, among those the world model was trained on.
        policies: a subset of :data:`POLICIES`; each task runs those defined for it.
        episodes: initial states (task seeds) per policy.
        horizon: imagined steps after the observed frames (None: the model's
            ``num_predicted_steps``, the steps a dream episode imagines).
        long_horizon: a second, longer horizon reported too (0: none).
        context: observed frames (None: the model's ``num_observed_steps``).
        seed: selects the task seeds (:func:`task_seed`), the random policy's actions and
            the sampled imagination's noise (drawn for all of a task's rollouts in one
            batch: the sampled figures depend on the policies and episodes chosen too).
    """

    tasks: tuple[str, ...]
    policies: tuple[str, ...] = POLICIES
    episodes: int = 6
    horizon: int | None = None
    long_horizon: int = 30
    context: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise UsageError("--tasks: give at least one task, e.g. --tasks cartpole-balance")
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            raise UsageError(
                f"--policies must be a comma-separated subset of {','.join(POLICIES)}, "
                f"got {','.join(self.policies) or 'nothing'}"
            )
        if len(set(self.policies)) != len(self.policies):
            raise UsageError(f"--policies names a policy twice: {','.join(self.policies)}")
        for name in ("episodes", "horizon", "context"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise UsageError(f"--{name} expects a positive integer, got {value!r}")
        if not isinstance(self.long_horizon, int) or self.long_horizon < 0:
            raise UsageError(
                f"--long-horizon expects an integer >= 0 (0: none), got {self.long_horizon!r}"
            )

    def horizons(self, model: WorldModel) -> tuple[int, ...]:
        """The horizons reported, ascending: ``horizon`` (default the model's
        ``num_predicted_steps``) and ``long_horizon`` (unless 0 or the same)."""
        short = self.horizon or model.config.model.num_predicted_steps
        return tuple(sorted({short, *([self.long_horizon] if self.long_horizon else [])}))

    def observed(self, model: WorldModel) -> int:
        """Observed frames before the horizon (``context``, default ``num_observed_steps``)."""
        return self.context or model.config.model.num_observed_steps

    def task_policies(self, task: str) -> tuple[str, ...]:
        """The chosen policies defined for ``task``, in :data:`POLICIES` order."""
        cartpole = task.startswith("cartpole-")
        return tuple(
            p for p in POLICIES if p in self.policies and (cartpole or p not in CARTPOLE_ONLY)
        )


# ---------------------------------------------------------------------------------- units
def _head_digest(directory: Path) -> str:
    digest = hashlib.sha1()
    for name in (HEAD_CONFIG, HEAD_WEIGHTS):
        digest.update((directory / name).read_bytes())
    return digest.hexdigest()[:16]


def unit_settings(
    model: WorldModel, config: FidelityConfig, task: str, head_dir: Path
) -> dict[str, Any]:
    """What a cached (run, task) result must share with this evaluation to be reused: the
    run and checkpoint, the head (its folder and a digest of its files), the task, policies,
    initial states, observed frames, horizons, action repeat, image size, device and the
    image nets' precision."""
    dtype = model.model.image_autocast_dtype
    return {
        "format": FORMAT,
        "run": str(Path(model.run_dir or "").resolve()),
        "checkpoint_step": model.step,
        "task": task,
        "head": str(head_dir.resolve()),
        "head_digest": _head_digest(head_dir),
        "policies": list(config.task_policies(task)),
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
    task: str,
    head_dir: Path,
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
    policies = config.task_policies(task)
    if rollouts is None:
        rollouts = real_rollouts(
            task,
            policies,
            config.episodes,
            context - 1 + max(horizons),
            image_size=model.config.model.image_size,
            action_repeat=training_action_repeat(model),
            seed=config.seed,
            progress=progress,
        )
    head = load_reward_head(head_dir, device=model.device)
    rewards = {"real": rollouts.rewards[:, context:]}
    keypoints = {}
    passes = {"filtered": (False, False), "imagined_mean": (True, False)}
    passes["imagined_sampled"] = (True, True)
    for column, (imagine, sample) in passes.items():
        rewards[column], keypoints[column] = model_returns(
            model, head, rollouts, context, imagine=imagine, sample=sample, seed=config.seed
        )
    figures = summarise(rollouts, rewards, keypoints, context, horizons, policies)
    figures["head"] = str(head_dir)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures, rollouts


def heads_folder(model: WorldModel, heads: str | Path | None, several: bool = False) -> Path:
    """The folder of the run's ``<task>/`` reward heads behind ``--heads``.

    ``heads`` None: ``RUN/rewards`` (where ``keypoint-wm rewards train`` writes them). A
    relative path names a folder in the run when the run has one (``--heads
    rewards_hidden+keypoints``: ``RUN/rewards_hidden+keypoints``); otherwise it is a path as
    given, which ``several`` runs cannot share (a head reads one model's hidden states).

    Raises:
        UsageError: naming ``--heads``, when there is no such folder.
    """
    run = Path(model.run_dir or ".")
    if heads is None:
        folder = run / "rewards"
        if not folder.is_dir():
            raise UsageError(
                f"--heads: {folder} does not exist; train the run's reward heads with "
                f"`keypoint-wm rewards train --run {run} --data DIR`, or pass --heads DIR"
            )
        return folder
    given = Path(heads)
    if not given.is_absolute() and (run / given).is_dir():
        return run / given
    if given.is_dir():
        if several:
            raise UsageError(
                f"--heads {heads}: several runs cannot share one folder of heads (each reads "
                "its own model's hidden states); name a folder inside each run, e.g. "
                "--heads rewards"
            )
        return given
    raise UsageError(f"--heads {heads}: no such folder (nor {run / given}); expected <task>/ heads")


def task_head(model: WorldModel, folder: Path, task: str) -> Path:
    """``folder/<task>``, checked to hold a head for this model's hidden states.

    Raises:
        UsageError: naming ``--heads``, for a task without a head, a head of other sizes or
            one reading another representation's per-frame input (``hidden+keypoints`` of a
            CNN-VRNN run, ``hidden+features`` of a Struct-VRNN one).
    """
    directory = folder / task
    if not (directory / HEAD_CONFIG).is_file():
        found = sorted(p.name for p in folder.iterdir() if (p / HEAD_CONFIG).is_file())
        raise UsageError(
            f"--heads {folder}: no reward head for {task} (heads found: "
            f"{', '.join(found) or 'none'}); train one with `keypoint-wm rewards train --run "
            f"{model.run_dir} --data DIR --tasks {task}`"
        )
    fields = json.loads((directory / HEAD_CONFIG).read_text())
    size = fields.get("input_size")
    units = model.config.model.rnn_units
    if size != units:
        raise UsageError(
            f"--heads {folder}: the head for {task} reads hidden states of size {size}, but "
            f"the run's rnn_units is {units}; it belongs to another model"
        )
    inputs = fields.get("inputs", "hidden")
    why = inputs_mismatch(inputs, model.config.model.representation)
    if why is not None:
        raise UsageError(f"--heads {folder}: the head for {task} reads {inputs}, but {why}")
    return directory


def evaluate_dream_fidelity(
    model: WorldModel,
    config: FidelityConfig,
    *,
    heads: str | Path | None = None,
    cache: str | Path | None = None,
    progress: bool = True,
    several: bool = False,
    memo: dict[tuple[Any, ...], Rollouts] | None = None,
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

    Returns:
        :class:`DreamFidelity`; its ``to_json()``::

            {"checkpoint_step", "action_repeat", "image_size", "context", "horizon",
             "long_horizon", "horizons": [H, ...], "episodes", "seed", "heads", "cache",
             "tasks": {TASK: {
                 "policies": [...], "rollouts": R, "context", "head", "seconds",
                 "horizons": {"H": {
                     "correlation": {"filtered", "imagined_mean", "imagined_sampled"},
                     "returns": {POLICY: {"real", "filtered", "imagined_mean",
                                          "imagined_sampled"}},
                     "keypoint_error": {POLICY: {"imagined_mean", "imagined_sampled"}}}},
                 "keypoint_error_per_step": {POLICY: {"imagined_mean": [H_max], ...}},
                 "per_rollout": {"policy": [R], "task_seed": [R],
                                 "returns": {"H": {COLUMN: [R]}}}}}}

        Returns are sums over the H agent steps after the observed frames; correlations are
        Pearson's over the task's R rollouts (null when a column is constant); keypoint
        errors are in keypoint units (the image spans [-1, 1]).

    Raises:
        UsageError: naming the flag: ``--run`` (not loaded from a run), ``--tasks``,
            ``--heads`` (a task without a head), ``--context``/``--horizon``.
    """
    if model.run_dir is None:
        raise UsageError("--run: the world model must be loaded from its run directory")
    tasks = check_tasks(config.tasks, model)
    if not any(config.task_policies(t) for t in tasks):
        raise UsageError(
            f"--policies {','.join(config.policies)}: none is defined for {', '.join(tasks)} "
            "(pd and pd-flipped are cartpole's only)"
        )
    folder = heads_folder(model, heads, several)
    head_dirs = {task: task_head(model, folder, task) for task in tasks}
    out = Path(cache) if cache is not None else Path(model.run_dir) / "dream_fidelity"
    meta = _meta(model, config, folder, out)
    results, cached = {}, []
    for task in tasks:
        if not config.task_policies(task):
            continue
        unit, reused = _task_unit(model, config, task, head_dirs[task], out, progress, memo)
        if reused:
            cached.append(task)
        results[task] = unit["figures"]
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
    task: str,
    head_dir: Path,
    out: Path,
    progress: bool,
    memo: dict[tuple[Any, ...], Rollouts] | None,
) -> tuple[dict[str, Any], bool]:
    """The task's cached unit (settings and figures) when ``out`` holds one of the same
    settings, else a fresh one, evaluated (on ``memo``'s rollouts when it holds them) and
    written; and whether it was cached."""
    settings = unit_settings(model, config, task, head_dir)
    path = unit_path(out, settings)
    unit = _read_unit(path, settings)
    if unit is not None:
        if progress:
            tqdm.write(f"{task}: reusing {path}")
        return unit, True
    real = ("task", "policies", "episodes", "seed", "action_repeat", "image_size")
    steps = settings["context"] - 1 + max(config.horizons(model))
    key = (*(json.dumps(settings[k]) for k in real), steps)
    known = None if memo is None else memo.get(key)
    figures, rollouts = evaluate_task(
        model, config, task, head_dir, progress=progress, rollouts=known
    )
    if memo is not None:
        memo[key] = rollouts
    unit = {"settings": settings, "figures": figures}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, unit)
    return unit, False
