"""The real rollouts of ``keypoint-wm evaluate dream-fidelity`` and the model's passes over
them (:mod:`keypoint_wm.envs.agents.dream_fidelity`).

:func:`real_rollouts` rolls a task's policies (:mod:`~keypoint_wm.envs.agents.fidelity_envs`)
on its real env from seeded initial states (:func:`task_seed`); :func:`model_returns`
filters or imagines the same rollouts with the world model and reads the reward head's
rewards and the keypoints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.envs.agents.fidelity_envs import (
    GymTask,
    Policy,
    TaskEnv,
    open_task_env,
    scripted_policies,
)
from keypoint_wm.envs.latent.online import LatentFilter
from keypoint_wm.errors import UsageError
from keypoint_wm.rewards.head import RewardHead

__all__ = [
    "Policy",
    "Rollouts",
    "model_returns",
    "real_rollouts",
    "scripted_policies",
    "task_seed",
]


def task_seed(seed: int, episode: int) -> int:
    """The task seed (``reset(seed=...)``) of initial state ``episode`` under ``--seed``.

    >>> task_seed(0, 0), task_seed(0, 5), task_seed(1, 0)
    (1000, 1005, 2000)
    """
    return 1000 * (seed + 1) + episode


@dataclass
class Rollouts:
    """R real rollouts of T frames: ``P`` policies x ``episodes`` initial states, policy-major.

    A rollout whose episode ended (terminated, or truncated by the env's own limit) after
    ``lengths[r] < T - 1`` agent steps is padded to T frames: its last frame repeated, zero
    actions and rewards. Those padded frames are no real frames; the figures leave out
    what they touch (:func:`~keypoint_wm.envs.agents.fidelity_scores.summarise`).

    Attributes:
        frames: uint8 ``[R, T, S, S, 3]``; frame 0 is the task's initial state.
        actions: float32 ``[R, T, A]`` in model units; ``actions[:, t]`` led to frame t (row 0
            is zeros).
        rewards: float32 ``[R, T]``; ``rewards[:, t]`` came with frame t (0 at t = 0).
        policies: the policy of each rollout, ``[R]``.
        task_seeds: the task seed of each rollout, ``[R]``.
        lengths: the agent steps each rollout lasted, ``[R]`` (``T - 1`` unless it ended).
    """

    frames: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    policies: list[str]
    task_seeds: list[int]
    lengths: list[int]


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
    gym: GymTask | None = None,
) -> Rollouts:
    """Roll each of ``policies`` on the real ``task`` for ``steps`` agent steps after its
    initial frame, from ``episodes`` initial states (task seeds :func:`task_seed`), or
    until its episode ends (terminated or truncated: :class:`Rollouts` pads it).

    One env (:func:`~keypoint_wm.envs.agents.fidelity_envs.open_task_env`; ``gym``: the
    task is that Gymnasium id, stepped once per action) serves every rollout (a seeded
    reset starts the same episode as a fresh env). The random policy of episode i draws
    from ``numpy.random.default_rng([seed, i])``.

    Raises:
        UsageError: naming ``--long-horizon``/``--horizon``, when the task's episodes are
            truncated before ``steps`` agent steps by its time limit; naming ``--tasks``,
            when a Gymnasium id cannot be made.
    """
    try:
        env = open_task_env(task, gym, image_size=image_size, action_repeat=action_repeat)
    except ValueError as error:
        raise UsageError(f"--tasks {task}: {error}") from None
    try:
        if env.limit is not None and steps > env.limit:
            repeat = "" if gym is not None else f" at action repeat {action_repeat}"
            raise UsageError(
                f"--long-horizon/--horizon: {task}'s episodes end after {env.limit} agent steps"
                f"{repeat}; the observed frames and the horizon need {steps}"
            )
        bar = tqdm(
            total=len(policies) * episodes * steps,
            desc=desc or task,
            unit="step",
            leave=False,
            disable=not progress,
            dynamic_ncols=True,
        )
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
        with bar:
            for policy_name in policies:
                bar.set_postfix_str(policy_name)
                for episode in range(episodes):
                    rng = np.random.default_rng([seed, episode])
                    start = task_seed(seed, episode)
                    parts.append(_rollout(env, env.policies[policy_name], start, steps, rng))
                    bar.update(steps)
    finally:
        env.close()
    frames, actions, rewards, lengths = zip(*parts, strict=True)
    return Rollouts(
        np.stack(frames),
        np.stack(actions),
        np.stack(rewards),
        [p for p in policies for _ in range(episodes)],
        [task_seed(seed, e) for _ in policies for e in range(episodes)],
        list(lengths),
    )


def _rollout(
    env: TaskEnv, policy: Policy, start: int, steps: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One rollout from task seed ``start``: frames ``[T, S, S, 3]``, actions ``[T, A]``,
    rewards ``[T]`` (``T = steps + 1``, padded after an episode's end) and its length."""
    frames = [env.reset(start)]
    actions, rewards = np.zeros((steps + 1, env.size), np.float32), np.zeros(steps + 1, np.float32)
    for t in range(steps):
        actions[t + 1] = np.asarray(policy(env.env, t, rng), np.float32)
        frame, rewards[t + 1], ended = env.step(actions[t + 1])
        frames.append(frame)
        if ended:
            break
    length = len(frames) - 1
    frames += [frames[-1]] * (steps - length)
    return np.stack(frames), actions, rewards, length


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
