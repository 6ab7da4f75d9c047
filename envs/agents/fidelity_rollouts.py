"""The real rollouts of ``keypoint-wm evaluate dream-fidelity`` and the model's passes over
them (:mod:`keypoint_wm.envs.agents.dream_fidelity`).

:func:`real_rollouts` rolls scripted policies (:func:`scripted_policies`) on the real task
from seeded initial states (:func:`task_seed`); :func:`model_returns` filters or imagines
the same rollouts with the world model and reads the reward head's rewards and the
keypoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.envs.latent.online import LatentFilter
from keypoint_wm.envs.registration import parse_task_name
from keypoint_wm.errors import UsageError
from keypoint_wm.rewards.head import RewardHead

__all__ = ["Policy", "Rollouts", "model_returns", "real_rollouts", "scripted_policies", "task_seed"]

Policy = Callable[[DMCPixelEnv, int, np.random.Generator], np.ndarray]
"""``(env, t, rng) -> action`` float32 ``[A]`` in the env's [-1, 1] units, for agent step t."""


def scripted_policies(task: str, size: int) -> dict[str, Policy]:
    """The :data:`~keypoint_wm.choices.DREAM_POLICIES` defined for ``task`` (``size``: its action dimensions A).

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
