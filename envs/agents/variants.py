"""The five variants of ``keypoint-wm evaluate agents``: their environments and agents.

Every variant is scored on the real task at the action repeat of the world model's data;
they differ in what the agent sees and where it learns:

- ``random``: uniform random actions (:class:`RandomPolicy`), no learning;
- ``state``: dm_control's low-dimensional observation, flattened
  (:class:`~keypoint_wm.envs.agents.state.StateEnv`), ``MlpPolicy``;
- ``pixels``: the raw frames at the model's image size, ``CnnPolicy`` (SB3's NatureCNN,
  which needs frames of at least 36x36); the uint8 ``[H, W, 3]`` frames are made
  channel-first by SB3's ``VecTransposeImage``, explicitly, for training and evaluation;
- ``latent``: the world model's latent state through
  :class:`~keypoint_wm.envs.LatentVecEnv`, ``MlpPolicy``;
- ``dream``: ``MlpPolicy`` trained only inside :class:`~keypoint_wm.envs.DreamEnv` (the
  model's prior and a reward head, episodes starting from the run's data), then scored on
  the real task through the same latent wrapper as ``latent``: zero real env steps.

The SB3 hyperparameters are SB3's defaults except where the budget needs otherwise
(:func:`make_agent`), and the same for every variant.

A task may also be a Gymnasium id the run was trained on (``collect --env`` data;
``AgentSetup.gym_ids``). Its envs are made with the data's ``--env-kwargs`` and step once
per action, in the env's own action space: ``state`` sees the env's own flat ``Box``
observation (an Atari game's RAM: ``obs_type="ram"``, the ``state`` its data stores);
``pixels`` and ``latent`` see its rendered frames as ``collect --env`` stored them
(:class:`~keypoint_wm.envs.gym_pixels.RenderedPixels`, the data's crop, the model's size);
``dream`` is for DMCS tasks only.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv, VecTransposeImage
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.data.frames import FrameCrop
from keypoint_wm.envs.agents.checkpoints import CHECKPOINT_SECONDS
from keypoint_wm.envs.agents.config import AgentEvalConfig
from keypoint_wm.envs.agents.dream_checks import check_dream, find_head, head_train_config
from keypoint_wm.envs.agents.env_state import ReplayableEpisode, ReplayableGymEpisode
from keypoint_wm.envs.agents.state import StateEnv
from keypoint_wm.envs.dmc import DMCPixelEnv
from keypoint_wm.envs.gym_pixels import (
    ALE_PREFIX,
    RenderedPixels,
    make_gym_env,
    make_render_env,
)
from keypoint_wm.envs.gym_state import flat_state_size
from keypoint_wm.envs.latent.dream import DreamEnv
from keypoint_wm.envs.latent.sb3 import LatentVecEnv
from keypoint_wm.envs.registration import parse_task_name
from keypoint_wm.errors import DataError, UsageError
from keypoint_wm.rewards.head import RewardHead

__all__ = [
    "MIN_CNN_SIZE",
    "AgentSetup",
    "RandomPolicy",
    "check_variants",
    "eval_env",
    "eval_seed",
    "make_agent",
    "ppo_rollout",
    "reward_head_for",
    "train_env",
]

MIN_CNN_SIZE = 36
"""The smallest frame SB3's NatureCNN (8x8 stride 4, 4x4 stride 2, 3x3) accepts."""

TRAIN_SEED_STRIDE = 1_000
"""Agent seed s trains on envs seeded ``1000 * s + i`` (i: the env's index)."""

EVAL_SEED_BASE = 1_000_000
"""Agent seed s is scored on episodes seeded ``1_000_000 + 1000 * s + k``, the same episodes
for every variant and every evaluation of that seed."""


@dataclass
class AgentSetup:
    """What every unit of one command shares.

    Attributes:
        model: the world model (latent and dream variants; its config gives the image size).
        config: the comparison's settings.
        action_repeat: physics control steps per env step: the run's data's.
        device: where the world model and the agents run (PPO with an MLP policy runs on
            the CPU, as SB3 advises).
        data: the run's dataset (dream start windows; reward heads trained on its test
            split when the run has none), or None when no dream unit needs it.
        heads: directories searched for a task's reward head, in order (``RUN/rewards``,
            then where missing heads are trained, ``OUT/reward_heads``).
        progress: show progress bars.
        checkpoint_seconds: wall time between two checkpoints of a training unit
            (:mod:`keypoint_wm.envs.agents.checkpoints`; 0: at every round of updates).
        gym_ids: the tasks that are Gymnasium ids: dataset folder -> id
            (``ALE-Pong-v5`` -> ``ALE/Pong-v5``).
        env_kwargs: keyword arguments of every Gymnasium id's env (the data's
            ``--env-kwargs``).
    """

    model: WorldModel
    config: AgentEvalConfig
    action_repeat: int
    device: torch.device
    data: Path | None
    heads: tuple[Path, ...]
    progress: bool = True
    checkpoint_seconds: float = CHECKPOINT_SECONDS
    gym_ids: dict[str, str] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> int:
        return int(self.model.config.model.image_size)

    @property
    def crop(self) -> FrameCrop | None:
        """The crop of the run's ``collect --env`` frames (None: none, or DMCS data)."""
        return FrameCrop.from_json(self.model.config.data.get("crop"))

    @property
    def dream_horizon(self) -> int:
        """Imagined steps per dream episode: ``--dream-horizon``, by default the steps the
        model was trained to predict (docs/design.md, "Agents")."""
        return self.config.dream_horizon or int(self.model.config.model.num_predicted_steps)


def _task_kwargs(setup: AgentSetup) -> dict[str, Any] | None:
    limit = setup.config.time_limit
    return None if limit is None else {"time_limit": limit}


def _state_env(
    task: str, setup: AgentSetup, replayable: bool = False
) -> Callable[[], gymnasium.Env]:
    """A builder of the task's :class:`StateEnv`; ``replayable``: behind a
    :class:`~keypoint_wm.envs.agents.env_state.ReplayableEpisode` (a training env, which a
    checkpoint restores mid-episode)."""

    gym_id = setup.gym_ids.get(task)
    if gym_id is not None:

        def build_gym() -> gymnasium.Env:
            env = gym_state_env(gym_id, setup.env_kwargs)
            return ReplayableGymEpisode(env) if replayable else env

        return build_gym

    def build() -> gymnasium.Env:
        env = StateEnv(task, action_repeat=setup.action_repeat, time_limit=setup.config.time_limit)
        return ReplayableEpisode(env) if replayable else env

    return build


def gym_state_env(name: str, kwargs: dict[str, Any]) -> gymnasium.Env:
    """The ``state`` (and ``random``) variant's env of a Gymnasium id: rendering nothing,
    observing its own observation; an Atari game its RAM (``obs_type="ram"``).

    Raises:
        ValueError: the env cannot be made (the message names the id).
    """
    if name.rpartition(":")[2].startswith(ALE_PREFIX):
        kwargs = {**kwargs, "obs_type": "ram"}
    return make_gym_env(name, kwargs)


def _pixel_env(
    task: str, setup: AgentSetup, replayable: bool = False
) -> Callable[[], gymnasium.Env]:
    """A builder of the task's :class:`~keypoint_wm.envs.DMCPixelEnv` at the run's image
    size; ``replayable`` as in :func:`_state_env`. A Gymnasium id: its rendered frames as
    the run's data stored them (:class:`~keypoint_wm.envs.gym_pixels.RenderedPixels`)."""
    gym_id = setup.gym_ids.get(task)
    if gym_id is not None:

        def build_gym() -> gymnasium.Env:
            env = RenderedPixels(
                make_render_env(gym_id, setup.env_kwargs), setup.image_size, setup.crop
            )
            return ReplayableGymEpisode(env) if replayable else env

        return build_gym
    domain, name = parse_task_name(task)

    def build() -> gymnasium.Env:
        env = DMCPixelEnv(
            domain,
            name,
            size=setup.image_size,
            action_repeat=setup.action_repeat,
            task_kwargs=_task_kwargs(setup),
        )
        return ReplayableEpisode(env) if replayable else env

    return build


def _vec(build: Callable[[], gymnasium.Env], n: int, seed: int | None = None) -> VecEnv:
    """``n`` envs in one SB3 ``DummyVecEnv``, each behind a ``Monitor`` (episode returns)."""
    return make_vec_env(build, n_envs=n, seed=seed)


def reward_head_for(task: str, setup: AgentSetup) -> tuple[RewardHead, Path]:
    """The dream's reward head for ``task`` and its directory: the run's own
    (``RUN/rewards/<task>``) or, when it has none, one trained now on the run's data
    (:func:`keypoint_wm.rewards.train_reward_heads`) into the last of ``setup.heads``."""
    from keypoint_wm.rewards import load_reward_head, train_reward_heads

    found = find_head(task, setup.heads)
    if found is not None:
        return load_reward_head(found, device=setup.model.device), found
    if setup.data is None:
        raise DataError(f"no reward head for {task} and no --data to train one on")
    out = setup.heads[-1]
    tqdm.write(f"no reward head for {task} in {setup.heads[0]}: training one into {out / task}")
    train_reward_heads(
        setup.model,
        setup.data,
        out=out,
        config=head_train_config(setup.config),
        tasks=[task],
        progress=setup.progress,
    )
    return load_reward_head(out / task, device=setup.model.device), out / task


def _dream_data(task: str, setup: AgentSetup) -> Path:
    if setup.data is None or not (setup.data / task).is_dir():
        raise DataError(
            f"--data {setup.data}: no folder {task}/ of episodes for the dream variant's start "
            "windows; expected the dataset the run was trained on"
        )
    return setup.data / task


def _latent(venv: VecEnv, task: str, setup: AgentSetup) -> LatentVecEnv:
    """The latent wrapper of the task's pixel envs: a Gymnasium id's frames come already
    cropped and resized as collected (:class:`RenderedPixels`), a DMCS task's at the
    model's size: neither is resized again."""
    return LatentVecEnv(venv, setup.model, features=setup.config.features, resize=False)


def train_env(
    variant: str, task: str, setup: AgentSetup, seed: int, head: RewardHead | None = None
) -> VecEnv:
    """The ``VecEnv`` an agent of ``variant`` trains on (``setup.config.num_envs`` envs);
    ``head``: the dream's reward head (default: :func:`reward_head_for`).

    Every layer of it can be checkpointed mid-episode and restored exactly
    (:mod:`~keypoint_wm.envs.agents.env_state`): the dm_control envs record their episodes.
    """
    n, base = setup.config.num_envs, TRAIN_SEED_STRIDE * seed
    if variant == "state":
        return _vec(_state_env(task, setup, replayable=True), n, base)
    if variant == "pixels":
        return VecTransposeImage(_vec(_pixel_env(task, setup, replayable=True), n, base))
    if variant == "latent":
        venv = _vec(_pixel_env(task, setup, replayable=True), n, base)
        return _latent(venv, task, setup)
    if variant == "dream":
        if head is None:
            head, _ = reward_head_for(task, setup)
        data = _dream_data(task, setup)
        probe = StateEnv(task)
        actions = probe.action_size
        probe.close()

        def build() -> gymnasium.Env:
            return DreamEnv(
                setup.model,
                head,
                data=data,
                action_size=actions,
                features=setup.config.features,
                max_episode_steps=setup.dream_horizon,
                starts=setup.config.dream_starts,
                context=setup.model.config.model.num_observed_steps,
            )

        return _vec(build, n, base)
    raise ValueError(f"variant {variant!r} does not train")


def eval_env(variant: str, task: str, setup: AgentSetup) -> VecEnv:
    """The real-task ``VecEnv`` a ``variant`` is scored on: one env per evaluation episode."""
    n = setup.config.eval_episodes
    if variant in ("random", "state"):
        return _vec(_state_env(task, setup), n)
    if variant == "pixels":
        return VecTransposeImage(_vec(_pixel_env(task, setup), n))
    if variant in ("latent", "dream"):
        venv = _vec(_pixel_env(task, setup), n)
        return _latent(venv, task, setup)
    raise ValueError(f"unknown variant {variant!r}")


def eval_seed(seed: int) -> int:
    """The seed of agent seed ``seed``'s evaluation episodes (see :data:`EVAL_SEED_BASE`)."""
    return EVAL_SEED_BASE + TRAIN_SEED_STRIDE * seed


def check_variants(setup: AgentSetup) -> None:
    """Refuse, before any work, a variant the run cannot serve (UsageError naming
    ``--variants``), a dream its data or heads cannot serve (naming ``--data`` or
    ``--heads``: :func:`~keypoint_wm.envs.agents.dream_checks.check_dream`), and a
    Gymnasium id whose env cannot be made or serve ``state`` (naming ``--tasks``) or that
    is given ``--time-limit``."""
    if "pixels" in setup.config.variants and setup.image_size < MIN_CNN_SIZE:
        raise UsageError(
            f"--variants: pixels needs frames of at least {MIN_CNN_SIZE}x{MIN_CNN_SIZE} for "
            f"SB3's CnnPolicy, but the run's are {setup.image_size}x{setup.image_size}; "
            "leave pixels out of --variants"
        )
    if not setup.gym_ids:
        if "dream" in setup.config.variants:
            check_dream(setup.model, setup.config, setup.data, setup.heads)
        return
    names = ", ".join(setup.gym_ids.values())
    if "dream" in setup.config.variants:
        raise UsageError(
            f"--variants: dream takes DMCS tasks only, not the Gymnasium ids {names}; "
            "leave dream out of --variants"
        )
    if setup.config.time_limit is not None:
        raise UsageError(
            f"--time-limit is in simulated seconds of DMCS tasks; the Gymnasium ids {names} "
            'end by their own limits (give one in --env-kwargs, e.g. {"max_episode_steps": 50})'
        )
    for gym_id in setup.gym_ids.values():
        try:
            env = gym_state_env(gym_id, setup.env_kwargs)
        except ValueError as error:
            raise UsageError(f"--tasks {gym_id}: {error}") from None
        space = env.observation_space
        env.close()
        if "state" in setup.config.variants and flat_state_size(space) is None:
            raise UsageError(
                f"--variants: state needs a flat Box observation, but {gym_id}'s is {space}; "
                "leave state out of --variants"
            )


def ppo_rollout(steps: int, envs: int) -> tuple[int, int]:
    """PPO's ``(n_steps, batch_size)`` for a budget of ``steps`` env steps on ``envs`` envs.

    SB3 trains PPO on whole rollouts of ``n_steps * envs`` steps. The budget is split into
    ``k`` rollouts of at most 512 steps per env (SB3's default rollout is 2048 steps: 512 on
    each of 4 envs), at least 4 of them, so that ``k * n_steps * envs`` is the budget or
    just above it (50,000 steps on 4 envs: 25 rollouts of 500 steps per env). The
    minibatch is the largest divisor of the rollout up to SB3's 64 (no truncated
    minibatches), or 64 when that divisor would be below 16.

    >>> ppo_rollout(50_000, 4), ppo_rollout(128, 2), ppo_rollout(10, 1)
    ((500, 50), (16, 32), (8, 8))
    """
    rollouts = max(4, math.ceil(steps / (512 * envs)))
    n_steps = max(8, math.ceil(steps / (envs * rollouts)))
    size = n_steps * envs
    batch = max(d for d in range(1, min(64, size) + 1) if size % d == 0)
    return n_steps, batch if batch >= 16 or batch == size else min(64, size)


def make_agent(variant: str, venv: VecEnv, setup: AgentSetup, seed: int) -> BaseAlgorithm:
    """An SB3 agent for ``venv`` (``setup.config.algo``), seeded with ``seed``.

    SB3's defaults, except: PPO's rollout length and minibatch (:func:`ppo_rollout`); SAC's replay buffer (at most the budget: a buffer of a million 64x64
    frames would take 25 GB) and ``learning_starts`` (a tenth of the budget, at most
    SB3's examples' 1000). ``CnnPolicy`` for ``pixels``, ``MlpPolicy`` otherwise.
    """
    agent = _new_agent(variant, venv, setup, seed)
    # A logger that writes nothing: SB3's default makes an empty /tmp/SB3-<time> folder per
    # agent. The runner records the curves itself.
    agent.set_logger(Logger(folder=None, output_formats=[]))
    return agent


def _new_agent(variant: str, venv: VecEnv, setup: AgentSetup, seed: int) -> BaseAlgorithm:
    config = setup.config
    policy = "CnnPolicy" if variant == "pixels" else "MlpPolicy"
    budget = config.imagined_steps if variant == "dream" else config.steps
    if config.algo == "ppo":
        n_steps, batch_size = ppo_rollout(budget, venv.num_envs)
        device = setup.device if policy == "CnnPolicy" else torch.device("cpu")
        return PPO(
            policy,
            venv,
            n_steps=n_steps,
            batch_size=batch_size,
            seed=seed,
            device=device,
            verbose=0,
        )
    return SAC(
        policy,
        venv,
        buffer_size=min(1_000_000, budget),
        learning_starts=min(1_000, budget // 10),
        seed=seed,
        device=setup.device,
        verbose=0,
    )


class RandomPolicy:
    """Uniform random actions for a batch of envs, with SB3's ``predict`` signature.

    >>> from gymnasium import spaces
    >>> policy = RandomPolicy(spaces.Box(-1, 1, (2,)), seed=0)
    >>> actions, state = policy.predict(np.zeros((3, 5)))
    >>> actions.shape, state, bool(np.all(np.abs(actions) <= 1))
    ((3, 2), None, True)
    """

    def __init__(self, action_space: gymnasium.spaces.Space, seed: int) -> None:
        self.action_space = copy.deepcopy(action_space)
        self.action_space.seed(seed)

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        count = len(observation)
        return np.stack([self.action_space.sample() for _ in range(count)]), None
