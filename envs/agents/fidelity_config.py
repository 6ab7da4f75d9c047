"""What ``keypoint-wm evaluate dream-fidelity`` evaluates: its settings
(:class:`FidelityConfig`, one field per flag) and its tasks, checked and resolved
(:func:`fidelity_tasks`: a DMCS task, or a Gymnasium id of the run's ``collect --env`` data
made as ``evaluate agents`` makes it; the policies defined for each; their reward heads).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keypoint_wm.api import WorldModel
from keypoint_wm.choices import DREAM_POLICIES as POLICIES
from keypoint_wm.choices import is_dream_policy
from keypoint_wm.data.frames import FrameCrop
from keypoint_wm.data.manifest import MANIFEST_NAME
from keypoint_wm.envs.agents.fidelity_envs import GymTask, gym_policies, scripted_policies
from keypoint_wm.envs.agents.fidelity_heads import heads_folder, task_head
from keypoint_wm.envs.agents.runner import check_tasks, data_env_kwargs
from keypoint_wm.envs.gym_pixels import ActionUnits, make_render_env
from keypoint_wm.errors import UsageError

__all__ = ["FidelityConfig", "FidelityTask", "fidelity_tasks"]


@dataclass(frozen=True)
class FidelityConfig:
    """The settings of one evaluation (each field is the flag of the same name).

    Attributes:
        tasks: ``"domain-task"`` names or the Gymnasium ids of ``collect --env`` data, among
            those the world model was trained on.
        policies: names among :data:`POLICIES` and ``action-<k>``; each task runs those
            defined for it (None: all of them).
        episodes: initial states (task seeds) per policy.
        horizon: imagined steps after the observed frames (None: the model's
            ``num_predicted_steps``, the steps a dream episode imagines).
        long_horizon: a second, longer horizon reported too (0: none).
        context: observed frames (None: the model's ``num_observed_steps``).
        seed: selects the task seeds (:func:`~keypoint_wm.envs.agents.fidelity_rollouts
            .task_seed`), the random policy's actions and the sampled imagination's noise
            (drawn for all of a task's rollouts in one batch: the sampled figures depend on
            the policies and episodes chosen too).
    """

    tasks: tuple[str, ...]
    policies: tuple[str, ...] | None = None
    episodes: int = 6
    horizon: int | None = None
    long_horizon: int = 30
    context: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.tasks:
            raise UsageError("--tasks: give at least one task, e.g. --tasks cartpole-balance")
        if self.policies is not None:
            if not self.policies or not all(map(is_dream_policy, self.policies)):
                raise UsageError(
                    f"--policies must be a comma-separated subset of {','.join(POLICIES)} "
                    f"and action-<k>, got {','.join(self.policies) or 'nothing'}"
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

    def task_policies(self, defined: tuple[str, ...]) -> tuple[str, ...]:
        """The chosen policies among those ``defined`` for a task, in that order."""
        return tuple(p for p in defined if self.policies is None or p in self.policies)


@dataclass(frozen=True)
class FidelityTask:
    """One task of an evaluation, resolved (:func:`fidelity_tasks`).

    Attributes:
        name: the ``"domain-task"`` name, or a Gymnasium id's dataset folder
            (``ALE-Pong-v5``): the JSON's key, the head's folder and the cache file's name.
        policies: the chosen policies defined for it, in their order.
        head: its reward head's folder.
        gym: how to make it, when it is a Gymnasium id (None: a DMCS task).
    """

    name: str
    policies: tuple[str, ...]
    head: Path
    gym: GymTask | None = None


def fidelity_tasks(
    model: WorldModel,
    config: FidelityConfig,
    heads: str | Path | None = None,
    several: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[Path, list[FidelityTask]]:
    """The folder of heads behind ``heads`` (:func:`~keypoint_wm.envs.agents.fidelity_heads
    .heads_folder`) and ``config``'s tasks that have a chosen policy, checked and resolved:
    their names, the policies defined for each, their heads, and how to make a Gymnasium id
    (the data's ``--env-kwargs`` updated by ``env_kwargs``, the data's crop).

    Raises:
        UsageError: naming the flag: ``--tasks`` (not the model's, or a Gymnasium id that
            cannot be made), ``--policies`` (none defined for the tasks), ``--heads``.
    """
    gym_ids: dict[str, str] = {}
    names = check_tasks(config.tasks, model, gym=gym_ids)
    kwargs = {**_data_env_kwargs(model, gym_ids), **(env_kwargs or {})}
    crop = FrameCrop.from_json(model.config.data.get("crop"))
    gyms = {name: GymTask(gym_ids[name], kwargs, crop) for name in gym_ids}
    defined = {name: _defined_policies(name, gyms.get(name)) for name in names}
    if not any(config.task_policies(policies) for policies in defined.values()):
        assert config.policies is not None  # None runs every policy of every task
        raise UsageError(
            f"--policies {','.join(config.policies)}: none is defined for {', '.join(names)} "
            "(pd and pd-flipped are cartpole's only; a Gymnasium id with a Discrete action "
            "space has random and action-<k>)"
        )
    folder = heads_folder(model, heads, several)
    chosen = {name: config.task_policies(defined[name]) for name in names}
    return folder, [
        FidelityTask(name, chosen[name], task_head(model, folder, name), gyms.get(name))
        for name in names
        if chosen[name]
    ]


def _data_env_kwargs(model: WorldModel, gym_ids: dict[str, str]) -> dict[str, Any]:
    """The ``--env-kwargs`` of the run's data (its manifest's); a warning when there are
    Gymnasium ids and the data is no longer where the run says."""
    root = model.config.data.get("root")
    data = Path(root) if root else None
    if gym_ids and (data is None or not (data / MANIFEST_NAME).is_file()):
        warnings.warn(
            f"run {model.run_dir}: its data ({data}) is not there to read the --env-kwargs "
            f"it was collected with; {', '.join(gym_ids.values())} are made with "
            "--env-kwargs alone (pass the data's, e.g. its width and height)",
            stacklevel=3,
        )
    return data_env_kwargs(data)


def _defined_policies(name: str, gym: GymTask | None) -> tuple[str, ...]:
    """The policies defined for a task; makes a Gymnasium id's env to read its action space.

    Raises:
        UsageError: naming ``--tasks``, when the env cannot be made or its action space is
            neither a 1-D ``Box`` nor ``Discrete``.
    """
    if gym is None:
        return tuple(scripted_policies(name, 1))
    try:
        env = make_render_env(gym.env_id, gym.env_kwargs)
        try:
            units = ActionUnits.of(env.action_space)
        finally:
            env.close()
    except ValueError as error:
        raise UsageError(f"--tasks {gym.env_id}: {error}") from None
    return tuple(gym_policies(units))
