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
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.choices import DREAM_POLICIES as POLICIES
from keypoint_wm.data.episodes import atomic_write_bytes, atomic_write_json
from keypoint_wm.envs.agents.runner import check_tasks
from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.envs.latent.online import LatentFilter
from keypoint_wm.envs.latent.wrapper import training_action_repeat
from keypoint_wm.envs.registration import parse_task_name
from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.evaluation.seeds import OverSeeds, as_seeds, plus_minus
from keypoint_wm.reward_inputs import inputs_mismatch
from keypoint_wm.rewards.head import HEAD_CONFIG, HEAD_WEIGHTS, RewardHead, load_reward_head

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

COLUMNS = ("real", "filtered", "imagined_mean", "imagined_sampled")
"""The return columns: the real task's, then the reward head's on the filtered real frames,
on the prior-mean future and on the sampled future."""

IMAGINED = ("imagined_mean", "imagined_sampled")

FORMAT = 1
"""Version of the cached unit files' layout (part of their settings)."""

Policy = Callable[[DMCPixelEnv, int, np.random.Generator], np.ndarray]
"""``(env, t, rng) -> action`` float32 ``[A]`` in the env's [-1, 1] units, for agent step t."""


def scripted_policies(task: str, size: int) -> dict[str, Policy]:
    """The :data:`POLICIES` defined for ``task`` (``size``: its action dimensions A).

    >>> list(scripted_policies("reacher-easy", 2))
    ['zero', 'plus', 'minus', 'random', 'sine']
    >>> scripted_policies("cartpole-balance", 1)["sine"](None, 2, None)
    array([0.47942555], dtype=float32)
    """

    def const(value: float) -> Policy:
        return lambda env, t, rng: np.full(size, value, np.float32)

    policies: dict[str, Policy] = {
        "zero": const(0.0),
        "plus": const(1.0),
        "minus": const(-1.0),
        "random": lambda env, t, rng: rng.uniform(-1, 1, size).astype(np.float32),
        "sine": lambda env, t, rng: np.full(size, np.sin(t / 4.0), np.float32),
    }
    if task.startswith("cartpole-"):

        def pd(sign: float) -> Policy:
            def act(env: DMCPixelEnv, t: int, rng: np.random.Generator) -> np.ndarray:
                q, v = env.physics.named.data.qpos, env.physics.named.data.qvel
                u = 8.0 * q["hinge_1"][0] + 1.5 * v["hinge_1"][0]
                u += 0.5 * q["slider"][0] + 1.0 * v["slider"][0]
                return np.clip(np.full(size, sign * u, np.float32), -1, 1)

            return act

        policies.update({"pd": pd(1.0), "pd-flipped": pd(-1.0)})
    return policies


def task_seed(seed: int, episode: int) -> int:
    """The task seed (``reset(seed=...)``) of initial state ``episode`` under ``--seed``.

    >>> task_seed(0, 0), task_seed(0, 5), task_seed(1, 0)
    (1000, 1005, 2000)
    """
    return 1000 * (seed + 1) + episode


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


@dataclass
class Rollouts:
    """R real rollouts of T frames: ``P`` policies x ``episodes`` initial states, policy-major.

    Attributes:
        frames: uint8 ``[R, T, S, S, 3]``; frame 0 is the task's initial state.
        actions: float32 ``[R, T, A]``; ``actions[:, t]`` led to frame t (row 0 is zeros).
        rewards: float32 ``[R, T]``; ``rewards[:, t]`` came with frame t (0 at t = 0).
        policies: the policy of each rollout, ``[R]``.
        task_seeds: the task seed of each rollout, ``[R]``.
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    policies: list[str]
    task_seeds: list[int]


def real_rollouts(
    task: str,
    policies: tuple[str, ...],
    episodes: int,
    steps: int,
    *,
    image_size: int,
    action_repeat: int,
    seed: int = 0,
    progress: bool = False,
    desc: str | None = None,
) -> Rollouts:
    """Roll each of ``policies`` on the real ``task`` for ``steps`` agent steps after its
    initial frame, from ``episodes`` initial states (task seeds :func:`task_seed`).

    One :class:`~keypoint_wm.envs.dmc.DMCPixelEnv` serves every rollout (a seeded reset
    starts the same episode as a fresh env). The random policy of episode i draws from
    ``numpy.random.default_rng([seed, i])``.

    Raises:
        UsageError: naming ``--long-horizon``/``--horizon``, when the task's episodes end
            before ``steps`` agent steps.
    """
    domain, name = parse_task_name(task)
    env = DMCPixelEnv(domain, name, size=image_size, action_repeat=action_repeat)
    try:
        limit = env.max_episode_steps
        if limit is not None and steps > limit:
            raise UsageError(
                f"--long-horizon/--horizon: {task}'s episodes end after {limit} agent steps at "
                f"action repeat {action_repeat}; the observed frames and the horizon need {steps}"
            )
        size = env.action_size
        available = scripted_policies(task, size)
        frames, actions, rewards, names, seeds = [], [], [], [], []
        bar = tqdm(
            total=len(policies) * episodes * steps,
            desc=desc or task,
            unit="step",
            leave=False,
            disable=not progress,
            dynamic_ncols=True,
        )
        with bar:
            for policy_name in policies:
                policy = available[policy_name]
                for episode in range(episodes):
                    rng = np.random.default_rng([seed, episode])
                    bar.set_postfix_str(policy_name)
                    frame, _ = env.reset(seed=task_seed(seed, episode))
                    seq_frames, seq_actions = [frame], [np.zeros(size, np.float32)]
                    seq_rewards = [0.0]
                    for t in range(steps):
                        action = np.asarray(policy(env, t, rng), np.float32)
                        frame, reward, _, _, _ = env.step(action)
                        seq_frames.append(frame)
                        seq_actions.append(action)
                        seq_rewards.append(float(reward))
                        bar.update()
                    frames.append(np.stack(seq_frames))
                    actions.append(np.stack(seq_actions))
                    rewards.append(np.asarray(seq_rewards, np.float32))
                    names.append(policy_name)
                    seeds.append(task_seed(seed, episode))
    finally:
        env.close()
    return Rollouts(np.stack(frames), np.stack(actions), np.stack(rewards), names, seeds)


def model_returns(
    model: WorldModel,
    head: RewardHead,
    rollouts: Rollouts,
    context: int,
    *,
    imagine: bool,
    sample: bool,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The reward head's rewards and the model's keypoints for the frames after ``context``.

    The first ``context`` frames are filtered (posterior); each later frame is filtered too,
    or, with ``imagine``, imagined from the prior with the rollout's actions. ``sample``
    samples the posterior and the prior (noise seeded ``seed``) instead of taking their means.

    Returns:
        ``(rewards float32 [R, T - context], keypoints float32 [R, T - context, K, 3])``: the
        predicted reward and the keypoints (detected, or decoded from the prior: x, y in
        [-1, 1], scale in [0, 1]; a CNN-VRNN run's features) of frames ``context .. T - 1``.
        A head reading frame t's keypoints (or features) reads these.
    """
    frames, actions = rollouts.frames, rollouts.actions
    count, steps = frames.shape[:2]
    filt = LatentFilter(model, count, "both", head, sample_latent=sample, seed=seed)
    try:
        filt.reset(frames[:, 0])
        for t in range(1, context):
            filt.step(actions[:, t], frames[:, t])
        rewards, keypoints = [], []
        for t in range(context, steps):
            if imagine:
                filt.imagine(actions[:, t], sample=sample)
            else:
                filt.step(actions[:, t], frames[:, t])
            predicted = filt.rewards_numpy()
            assert predicted is not None  # the filter has a head
            rewards.append(predicted)
            keypoints.append(filt.keypoints_numpy())
    finally:
        filt.close()
    return np.stack(rewards, 1), np.stack(keypoints, 1)


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


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two ``[R]`` vectors; None when one is constant or R < 2."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return None
    value = float(np.corrcoef(a, b)[0, 1])
    return value if math.isfinite(value) else None


def _summarise(
    rollouts: Rollouts,
    rewards: dict[str, np.ndarray],
    keypoints: dict[str, np.ndarray],
    context: int,
    horizons: tuple[int, ...],
    policies: tuple[str, ...],
) -> dict[str, Any]:
    """The per-task figures (module doc) from ``[R, H_max]`` rewards per column and
    ``[R, H_max, K, 3]`` keypoints per model pass."""
    names = np.asarray(rollouts.policies)
    # [R, H_max]: distance of imagined to filtered keypoints, mean over the K keypoints.
    errors = {
        c: np.linalg.norm(keypoints[c][..., :2] - keypoints["filtered"][..., :2], axis=-1).mean(-1)
        for c in IMAGINED
    }
    per_horizon: dict[str, Any] = {}
    per_rollout: dict[str, Any] = {}
    for h in horizons:
        totals = {c: rewards[c][:, :h].sum(1).astype(np.float64) for c in COLUMNS}
        per_horizon[str(h)] = {
            "correlation": {c: _pearson(totals[c], totals["real"]) for c in COLUMNS if c != "real"},
            "returns": {
                p: {c: float(totals[c][names == p].mean()) for c in COLUMNS} for p in policies
            },
            "keypoint_error": {
                p: {c: float(errors[c][names == p, :h].mean()) for c in IMAGINED} for p in policies
            },
        }
        per_rollout[str(h)] = {c: [float(v) for v in totals[c]] for c in COLUMNS}
    return {
        "policies": list(policies),
        "rollouts": len(names),
        "context": context,
        "horizons": per_horizon,
        "keypoint_error_per_step": {
            p: {c: [float(v) for v in errors[c][names == p].mean(0)] for c in IMAGINED}
            for p in policies
        },
        "per_rollout": {
            "policy": list(rollouts.policies),
            "task_seed": list(rollouts.task_seeds),
            "returns": per_rollout,
        },
    }


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
    figures = _summarise(rollouts, rewards, keypoints, context, horizons, policies)
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


@dataclass(frozen=True)
class DreamFidelity:
    """One run's figures: ``to_json()`` is the layout of :func:`evaluate_dream_fidelity`."""

    meta: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    cached: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {**self.meta, "tasks": self.tasks}


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
    horizons = config.horizons(model)
    meta = {
        "checkpoint_step": model.step,
        "action_repeat": training_action_repeat(model),
        "image_size": model.config.model.image_size,
        "context": config.observed(model),
        "horizon": config.horizon or model.config.model.num_predicted_steps,
        "long_horizon": config.long_horizon,
        "horizons": list(horizons),
        "episodes": config.episodes,
        "seed": config.seed,
        "heads": str(folder),
        "cache": str(out),
    }
    results, cached = {}, []
    for task in tasks:
        if not config.task_policies(task):
            continue
        settings = unit_settings(model, config, task, head_dirs[task])
        path = unit_path(out, settings)
        unit = _read_unit(path, settings)
        if unit is not None:
            cached.append(task)
            if progress:
                tqdm.write(f"{task}: reusing {path}")
        else:
            real = ("task", "policies", "episodes", "seed", "action_repeat", "image_size")
            steps = settings["context"] - 1 + max(horizons)
            key = (*(json.dumps(settings[k]) for k in real), steps)
            known = None if memo is None else memo.get(key)
            figures, rollouts = evaluate_task(
                model, config, task, head_dirs[task], progress=progress, rollouts=known
            )
            if memo is not None:
                memo[key] = rollouts
            unit = {"settings": settings, "figures": figures}
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, unit)
        results[task] = unit["figures"]
    return DreamFidelity(meta, results, tuple(cached))


# ------------------------------------------------------------------------- table and plot
_SHORT = {"real": "real", "filtered": "filtered", "imagined_mean": "imag mean"}
_SHORT["imagined_sampled"] = "imag sampled"


def format_fidelity(result: DreamFidelity | OverSeeds[DreamFidelity]) -> str:
    """The printed table: per task and horizon, each policy's mean return per column and
    keypoint error of the imagined futures, then the correlations with the real returns;
    over several runs (seeds) each figure is the mean ± the half-width of its 95% interval."""
    summary = as_seeds(result)
    mean = summary.mean
    over = f"; mean ± 95% CI over {summary.count} runs" if summary.count > 1 else ""
    lines = [
        f"dream fidelity: returns over H agent steps after {mean['context']} observed frames, "
        f"mean over {mean['episodes']} initial states per policy (action repeat "
        f"{mean['action_repeat']}){over}",
        "kp err: mean distance of the imagined keypoints to the filtered ones (keypoint "
        "units; the image spans [-1, 1])",
    ]
    names = [
        "policy",
        *(_SHORT[c] for c in COLUMNS),
        *(f"kp err {_SHORT[c][5:]}" for c in IMAGINED),
    ]
    for task, entry in mean["tasks"].items():
        for h in entry["horizons"]:
            at = ("tasks", task, "horizons", h)
            rows = [names]
            for policy in entry["policies"]:
                cells = [plus_minus(*summary.at(*at, "returns", policy, c), ".2f") for c in COLUMNS]
                cells += [
                    plus_minus(*summary.at(*at, "keypoint_error", policy, c), ".3f")
                    for c in IMAGINED
                ]
                rows.append([policy, *cells])
            widths = [max(len(row[i]) for row in rows) for i in range(len(names))]
            lines += ["", f"{task}, H = {h} agent steps"]
            for row in rows:
                first, *rest = row
                lines.append(
                    f"{first:<{widths[0]}}"
                    + "".join(f"  {c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))
                )
            corr = [
                _SHORT[c] + " " + plus_minus(*summary.at(*at, "correlation", c), ".2f")
                for c in COLUMNS[1:]
            ]
            lines.append(
                f"correlation with the real returns over {entry['rollouts']} rollouts: "
                + ", ".join(corr)
            )
    return "\n".join(lines)


def plot_fidelity(result: DreamFidelity | OverSeeds[DreamFidelity], path: str | Path) -> Path:
    """Imagined (prior mean) against real returns, one point per rollout (and run), coloured
    by policy; one panel per task (columns) and horizon (rows), with the y = x line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = as_seeds(result)
    tasks = list(summary.mean["tasks"])
    horizons = [str(h) for h in summary.mean["horizons"]]
    fig, axes = plt.subplots(
        len(horizons),
        max(1, len(tasks)),
        figsize=(4.2 * max(1, len(tasks)), 3.8 * len(horizons)),
        squeeze=False,
    )
    colours = {p: plt.get_cmap("tab10")(i) for i, p in enumerate(POLICIES)}
    for col, task in enumerate(tasks):
        for row, h in enumerate(horizons):
            ax = axes[row][col]
            values: list[float] = []
            for number, (_, run_result) in enumerate(summary):
                entry = run_result.tasks[task]
                returns = entry["per_rollout"]["returns"][h]
                real = np.asarray(returns["real"])
                imagined = np.asarray(returns["imagined_mean"])
                values += [*real, *imagined]
                policies = np.asarray(entry["per_rollout"]["policy"])
                for policy in entry["policies"]:
                    rows = policies == policy
                    ax.scatter(
                        real[rows],
                        imagined[rows],
                        s=18,
                        color=colours[policy],
                        label=policy if number == 0 else None,
                        alpha=0.8,
                    )
            low, high = (min(values), max(values)) if values else (0.0, 1.0)
            pad = 0.05 * (high - low or 1.0)
            ax.plot([low - pad, high + pad], [low - pad, high + pad], "k--", lw=1, label="y = x")
            r = plus_minus(*summary.at("tasks", task, "horizons", h, "correlation",
                                       "imagined_mean"), ".2f")  # fmt: skip
            ax.set_title(f"{task}, {h} steps: r = {r}", fontsize=10)
            ax.set_xlabel("real return")
            ax.set_ylabel("imagined return (prior mean)")
            ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
