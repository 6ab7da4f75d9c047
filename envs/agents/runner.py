"""The resumable loop of ``keypoint-wm evaluate agents``: one result file per finished unit.

:func:`run_agents` trains and scores every (task, variant, seed) of an
:class:`~keypoint_wm.envs.agents.config.AgentEvalConfig` in turn. Each finished unit is
written at once, atomically (docs/design.md, "Atomic writes"), to
``OUT/units/<task>/<variant>-seed<seed>.json``; a re-run reads the finished ones back and
skips them, provided they were run with the same settings (a unit of other settings is
refused, naming ``--out``). A unit still training is checkpointed beside its result file
and resumed from there by a re-run, exactly: it ends bitwise where it would have ended had
it never been stopped (:mod:`~keypoint_wm.envs.agents.checkpoints`). SIGINT or SIGTERM
(:mod:`keypoint_wm.stop_signals`) saves the training unit at its next round of updates, or
lets a unit that does not train finish, and raises :class:`~keypoint_wm.errors.Stopped`
(exit status 130 or 143) naming what was saved; a second signal stops at once. Several
processes may share one ``--out``: each unit is claimed before it trains and skipped by the
others meanwhile (:mod:`~keypoint_wm.envs.agents.claims`). The report (``--json``, every
unit finished in ``--out``) is rewritten after every unit, the plot (``--plot``) at the end.

A unit's file holds::

    {"task", "variant", "seed", "settings": {...},
     "env_steps": real env steps trained on (0 for random and dream),
     "imagined_steps": (dream) imagined steps trained on,
     "curve": [[env_steps, mean return], ...] (dream: [[0, final]]; random: [[0, mean]]),
     "imagined_curve": (dream) [[imagined_steps, mean real return], ...],
     "final_return": mean return of the last evaluation, "final_episode_returns": [...],
     "reward_head": (dream) the head's directory, "seconds": wall time}

Evaluations are deterministic policies on the real task (``eval_episodes`` episodes, one
env each, seeded per agent seed, the same episodes for every variant), every ``eval_every``
env steps while training and once more at the end.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.collect.config import env_folder
from keypoint_wm.data.episodes import atomic_write_json
from keypoint_wm.envs.agents.checkpoints import (
    CHECKPOINT_SECONDS,
    UnitCheckpoints,
    discard,
    partial_dir,
    resume_unit,
)
from keypoint_wm.envs.agents.claims import claimed
from keypoint_wm.envs.agents.config import AgentEvalConfig, Unit, settings_differences
from keypoint_wm.envs.agents.report import build_report, format_report, plot_report
from keypoint_wm.envs.agents.variants import (
    AgentSetup,
    RandomPolicy,
    check_variants,
    eval_env,
    eval_seed,
    make_agent,
    reward_head_for,
    train_env,
)
from keypoint_wm.envs.latent.wrapper import training_action_repeat
from keypoint_wm.envs.registration import parse_task_name
from keypoint_wm.errors import DataError, Stopped, UsageError
from keypoint_wm.stop_signals import StopRequest, stop_requests

__all__ = ["check_tasks", "episode_returns", "run_agents", "run_unit"]


def check_tasks(
    tasks: tuple[str, ...], model: WorldModel, *, gym: dict[str, str] | None = None
) -> tuple[str, ...]:
    """``tasks`` as ``"domain-task"`` names, each one the run was trained on.

    With ``gym`` (a dict this fills), a task that is no suite task but a registered
    Gymnasium id (``InvertedPendulum-v5``, ``ALE/Pong-v5``, ``module:ID``) is taken too, as
    the dataset folder ``collect --env`` wrote it to (``ALE-Pong-v5``), and
    ``gym[folder] = id``.

    Raises:
        UsageError: naming ``--tasks``, for a name that is no suite task (nor Gymnasium id)
            or one the world model's data did not hold.
    """
    names = []
    for task in tasks:
        gym_id = _gym_id(task) if gym is not None else None
        if gym is not None and gym_id is not None:
            folder = env_folder(gym_id)
            gym[folder] = gym_id
            names.append(folder)
            continue
        try:
            domain, name = parse_task_name(task)
        except ValueError as error:
            raise UsageError(f"--tasks: {error}") from None
        names.append(f"{domain}-{name}")
    trained = model.config.data.get("tasks")
    if not trained:
        warnings.warn(
            f"run {model.run_dir}: its config does not record the tasks it was trained on; "
            f"scoring {', '.join(names)} unchecked",
            stacklevel=2,
        )
        return tuple(names)
    foreign = [name for name in names if name not in trained]
    if foreign:
        raise UsageError(
            f"--tasks: the world model was not trained on {', '.join(foreign)}; "
            f"its tasks are {', '.join(trained)}"
        )
    return tuple(names)


def _gym_id(task: str) -> str | None:
    """``task`` when it is no suite task (``"domain-task"`` of the known ones) but a
    registered Gymnasium id, else None."""
    from keypoint_wm.envs.gym_pixels import is_registered
    from keypoint_wm.envs.registration import ALL_TASKS

    try:
        if parse_task_name(task) in ALL_TASKS:
            return None
    except ValueError:
        pass
    return task if is_registered(task) else None


def data_env_kwargs(data: Path | None) -> dict[str, Any]:
    """The ``--env-kwargs`` a dataset was collected with (its manifest's), ``{}`` when it
    records none or there is no dataset."""
    from keypoint_wm.data.episodes import read_manifest

    manifest = read_manifest(data) if data is not None and data.is_dir() else None
    kwargs = ((manifest or {}).get("spec") or {}).get("env_kwargs")
    return dict(kwargs) if isinstance(kwargs, dict) else {}


def episode_returns(policy: Any, venv: VecEnv, episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` real episodes of ``policy`` (deterministic), seeded ``seed``,
    ``seed + 1``, ... (one env of ``venv`` per episode)."""
    venv.seed(seed)
    returns, _ = evaluate_policy(
        policy, venv, n_eval_episodes=episodes, deterministic=True, return_episode_rewards=True
    )
    return [float(r) for r in returns]  # type: ignore[union-attr]


class _Evaluations(BaseCallback):
    """Advances the unit's progress bar and scores the policy every ``every`` steps."""

    def __init__(self, score: Callable[[], float], every: int, budget: int, bar: Any) -> None:
        super().__init__()
        self.score, self.every, self.budget, self.bar = score, every, budget, bar
        self.next = every
        self.curve: list[list[float]] = []

    def _on_step(self) -> bool:
        self.bar.update(self.num_timesteps - self.bar.n)
        if self.next <= self.num_timesteps < self.budget:  # the final score comes after
            self.bar.set_postfix_str("evaluating")
            self.curve.append([self.num_timesteps, self.score()])
            self.bar.set_postfix_str(f"return {self.curve[-1][1]:.1f}")
            while self.next <= self.num_timesteps:
                self.next += self.every
        return True


class _SingleThreadUpdates(BaseCallback):
    """Runs the agent's gradient updates on one torch thread, its rollouts as before.

    A small MLP's update is hundreds of tiny ops, and with several threads each one waits at
    a barrier for threads that the renderer, the world model or other processes keep busy:
    SAC on cartpole-balance's true state made 0.8 env steps/s with 2 threads and 55 with 1
    while other work shared the 2 cores (docs/measurements.md, "agents on the latent state").
    SB3 calls ``on_rollout_end`` before each round of updates and ``on_rollout_start`` after.
    """

    def __init__(self) -> None:
        super().__init__()
        self.previous: int | None = None

    def _on_rollout_end(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(1)

    def _restore(self) -> None:
        if self.previous is not None:
            torch.set_num_threads(self.previous)
            self.previous = None

    def _on_rollout_start(self) -> None:
        self._restore()

    def _on_training_end(self) -> None:
        self._restore()

    def _on_step(self) -> bool:
        return True


def run_unit(
    unit: Unit,
    setup: AgentSetup,
    settings: dict[str, Any],
    out: Path | None = None,
    stop: StopRequest | None = None,
) -> dict[str, Any]:
    """Train (unless ``random``) and score one unit; its result (see the module doc).

    With ``out``, a training unit is checkpointed into its
    :func:`~keypoint_wm.envs.agents.checkpoints.partial_dir` as it trains and resumed from
    there, exactly, when it was killed; the caller removes that folder once the result is
    written. Once ``stop`` holds a signal, a training unit saves a checkpoint at its next
    round of updates and raises :class:`~keypoint_wm.errors.Stopped`.
    """
    config = setup.config
    started = time.perf_counter()
    seed = eval_seed(unit.seed)
    result: dict[str, Any] = {
        "task": unit.task,
        "variant": unit.variant,
        "seed": unit.seed,
        "settings": settings,
    }
    before = 0.0
    scoring = eval_env(unit.variant, unit.task, setup)
    try:
        if unit.variant == "random":
            policy = RandomPolicy(scoring.action_space, unit.seed)
            returns = episode_returns(policy, scoring, config.eval_episodes, seed)
            result.update(env_steps=0, curve=[[0, float(np.mean(returns))]])
        else:
            folder = partial_dir(unit, out) if out is not None else None
            returns, before = _train(unit, setup, scoring, seed, result, folder, stop)
    finally:
        scoring.close()
    result.update(
        final_return=float(np.mean(returns)),
        final_episode_returns=returns,
        seconds=round(before + time.perf_counter() - started, 1),
    )
    return result


def _train(
    unit: Unit,
    setup: AgentSetup,
    scoring: VecEnv,
    seed: int,
    result: dict[str, Any],
    folder: Path | None,
    stop: StopRequest | None,
) -> tuple[list[float], float]:
    """Train and score the unit's agent: (final returns, seconds spent before a resume)."""
    config = setup.config
    dream = unit.variant == "dream"
    head = None
    if dream:
        head, head_dir = reward_head_for(unit.task, setup)
        result["reward_head"] = str(head_dir)
    budget = config.imagined_steps if dream else config.steps
    venv = train_env(unit.variant, unit.task, setup, unit.seed, head)
    bar = tqdm(
        total=budget,
        desc=str(unit),
        unit="step",
        leave=False,
        disable=not setup.progress,
        dynamic_ncols=True,
    )
    try:
        agent = make_agent(unit.variant, venv, setup, unit.seed)
        # The envs are not reset: a resume restores their episodes in progress.
        resumed = resume_unit(agent, folder, result["settings"]) if folder else None
        before = 0.0
        if resumed is not None:
            progress, path = resumed
            before = progress.seconds
            tqdm.write(f"{unit}: resuming from {path} ({progress.env_steps} steps)")
            bar.update(progress.env_steps)

        def score() -> float:
            return float(np.mean(episode_returns(agent, scoring, config.eval_episodes, seed)))

        callback = _Evaluations(score, config.eval_interval, budget, bar)
        callbacks: list[BaseCallback] = [callback]
        if resumed is not None:
            callback.curve, callback.next = progress.curve, progress.next_eval
        if folder is not None:
            callbacks.append(
                UnitCheckpoints(
                    folder,
                    result["settings"],
                    callback.curve,
                    lambda: callback.next,
                    every=setup.checkpoint_seconds,
                    seconds=before,
                    saved_steps=agent.num_timesteps if resumed is not None else -1,
                    stop=stop,
                    label=str(unit),
                    budget=budget,
                )
            )
        if unit.variant != "pixels":  # MlpPolicy: see _SingleThreadUpdates
            callbacks.append(_SingleThreadUpdates())
        agent.learn(
            total_timesteps=budget - agent.num_timesteps,
            callback=CallbackList(callbacks),
            reset_num_timesteps=resumed is None,
        )
        bar.set_postfix_str("evaluating")
        returns = episode_returns(agent, scoring, config.eval_episodes, seed)
        curve = [*callback.curve, [agent.num_timesteps, float(np.mean(returns))]]
    finally:
        bar.close()
        venv.close()
    _record_curve(result, dream, agent.num_timesteps, curve)
    return returns, before


def _record_curve(
    result: dict[str, Any], dream: bool, steps: int, curve: list[list[float]]
) -> None:
    """Enter the steps trained and the learning curve: a dream agent's steps are imagined,
    and its real-return curve is over imagined steps (its env curve is the final point)."""
    if dream:
        result.update(
            env_steps=0, imagined_steps=steps, curve=[[0, curve[-1][1]]], imagined_curve=curve
        )
    else:
        result.update(env_steps=steps, curve=curve)


def _read_unit(unit: Unit, out: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The unit's finished result, None if it has none; refuses one of other settings."""
    path = unit.path(out)
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataError(
            f"{path}: unreadable unit result ({error}); delete it to rerun it"
        ) from None
    differences = settings_differences(result.get("settings") or {}, settings)
    if differences:
        raise UsageError(
            f"--out {out}: {path} was run with other settings ({differences}); "
            "give another --out, or delete that file to rerun it"
        )
    return result


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload)


def run_agents(
    model: WorldModel,
    config: AgentEvalConfig,
    out: str | Path,
    *,
    data: str | Path | None = None,
    json_path: str | Path | None = None,
    plot_path: str | Path | None = None,
    device: str | torch.device | None = None,
    heads: str | Path | None = None,
    progress: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    report_only: bool = False,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every unit of ``config`` not yet finished in ``out``; write and return the report.

    Args:
        model: the world model (loaded from its run directory).
        config: the comparison; its tasks must be among the model's.
        out: the folder of unit results (``OUT/units/...``) and, by default, of the report
            (``OUT/agents.json``) and the plot (``OUT/agents.png``).
        data: the run's dataset, for the dream variant (default: where the run was trained).
        device: where the agents run (default: the model's device).
        heads: the folder of the dream's reward heads, one ``<task>/`` each (default
            ``RUN/rewards``); a task without one gets a head trained into
            ``OUT/reward_heads``.
        checkpoint_seconds: wall time between two checkpoints of a training unit, which a
            re-run resumes (:mod:`~keypoint_wm.envs.agents.checkpoints`).
        report_only: train nothing: write the report and plot of the units finished in
            ``out`` so far (while other processes train the rest, say).
        env_kwargs: keyword arguments of the envs of the tasks that are Gymnasium ids, on
            top of (and overriding) the ``--env-kwargs`` the run's data was collected with.

    Returns:
        The report (:func:`~keypoint_wm.envs.agents.report.build_report`).
    """
    out = Path(out)
    json_path = Path(json_path) if json_path else out / "agents.json"
    plot_path = Path(plot_path) if plot_path else out / "agents.png"
    setup = _agent_setup(
        model, config, out, data, device, heads, progress, checkpoint_seconds, env_kwargs
    )
    config = setup.config
    run = _run_record(setup)
    meta = _report_meta(setup, run["path"], out)
    units = config.units()
    settings = {v: config.unit_settings(v, run) for v in config.variants}
    done = _skip_finished(units, out, settings)
    todo = [unit for unit in units if (unit.task, unit.variant, unit.seed) not in done]
    overall = tqdm(
        total=len(units),
        initial=len(done),
        desc="agents",
        unit="unit",
        disable=not progress,
        dynamic_ncols=True,
    )
    if report_only:
        todo = []
    try:
        _run_units(todo, units, setup, settings, out, json_path, meta, overall)
    finally:
        overall.close()
    report = build_report(_finished_units(units, out, settings), meta, config)
    print(format_report(report))
    _write(json_path, report)
    print(f"wrote {json_path}")
    print(f"wrote {plot_report(report, plot_path)}")
    return report


def _agent_setup(
    model: WorldModel,
    config: AgentEvalConfig,
    out: Path,
    data: str | Path | None,
    device: str | torch.device | None,
    heads: str | Path | None,
    progress: bool,
    checkpoint_seconds: float,
    env_kwargs: dict[str, Any] | None = None,
) -> AgentSetup:
    """What every unit shares, checked: the run, its tasks (Gymnasium ids among them, made
    with the data's ``--env-kwargs`` updated by ``env_kwargs``), the dream's data and heads
    (:func:`~keypoint_wm.envs.agents.variants.check_variants`)."""
    if model.run_dir is None:
        raise UsageError("--run: the world model must be loaded from its run directory")
    gym_ids: dict[str, str] = {}
    config = replace(config, tasks=check_tasks(config.tasks, model, gym=gym_ids))
    root = data if data is not None else model.config.data.get("root")
    data_dir = Path(root) if root else None
    heads_dir = Path(heads) if heads is not None else Path(model.run_dir) / "rewards"
    if heads is not None and not heads_dir.is_dir():
        raise UsageError(f"--heads {heads}: no such folder; expected one <task>/ head each")
    setup = AgentSetup(
        model=model,
        config=config,
        action_repeat=training_action_repeat(model),
        device=torch.device(device) if device is not None else model.device,
        data=data_dir,
        heads=(heads_dir, out / "reward_heads"),
        progress=progress,
        checkpoint_seconds=checkpoint_seconds,
        gym_ids=gym_ids,
        env_kwargs={**data_env_kwargs(data_dir), **(env_kwargs or {})},
    )
    check_variants(setup)
    return setup


def _run_record(setup: AgentSetup) -> dict[str, Any]:
    """The world model behind the units, as every unit's settings record it."""
    model = setup.model
    return {
        "path": str(Path(model.run_dir or "").resolve()),
        "checkpoint_step": model.step,
        "action_repeat": setup.action_repeat,
        "image_size": setup.image_size,
        "observed_steps": model.config.model.num_observed_steps,
        "dream_horizon": setup.dream_horizon,
        "heads": str(setup.heads[0].resolve()),
        "env_kwargs": setup.env_kwargs if setup.gym_ids else None,
    }


def _report_meta(setup: AgentSetup, run_path: str, out: Path) -> dict[str, Any]:
    """The report's description of the comparison (its settings, not its results)."""
    config = setup.config
    meta: dict[str, Any] = {
        "run": run_path,
        "checkpoint_step": setup.model.step,
        "algo": config.algo,
        "steps": config.steps,
        "seeds": len(config.agent_seeds),
        "agent_seeds": list(config.agent_seeds),
        "action_repeat": setup.action_repeat,
        "eval_every": config.eval_interval,
        "eval_episodes": config.eval_episodes,
        "envs": config.num_envs,
        "time_limit": config.time_limit,
        "features": config.features,
        "out": str(out),
    }
    if "dream" in config.variants:
        meta.update(
            dream_steps=config.imagined_steps,
            dream_context=setup.model.config.model.num_observed_steps,
            dream_horizon=setup.dream_horizon,
            dream_starts=config.dream_starts,
        )
    return meta


def _finished_units(
    units: list[Unit], out: Path, settings: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The results of ``units`` in ``out`` now, whichever process ran them."""
    found = (_read_unit(unit, out, settings[unit.variant]) for unit in units)
    return [result for result in found if result is not None]


def _skip_finished(
    units: list[Unit], out: Path, settings: dict[str, dict[str, Any]]
) -> set[tuple[str, str, int]]:
    """The (task, variant, seed) of the units finished in ``out``, their leftover checkpoints
    removed (a process killed between writing a result and removing its checkpoints)."""
    done = {(r["task"], r["variant"], r["seed"]) for r in _finished_units(units, out, settings)}
    for unit in units:
        if (unit.task, unit.variant, unit.seed) in done and partial_dir(unit, out).exists():
            discard(partial_dir(unit, out))
    if done:
        tqdm.write(f"{len(done)} of {len(units)} units already finished in {out}: skipped")
    return done


def _run_units(
    todo: list[Unit],
    units: list[Unit],
    setup: AgentSetup,
    settings: dict[str, dict[str, Any]],
    out: Path,
    json_path: Path,
    meta: dict[str, Any],
    overall: Any,
) -> None:
    """Run each unit of ``todo`` that no other process holds or has finished, rewriting the
    report after each; stops between units on a signal."""
    with stop_requests() as stop:
        for number, unit in enumerate(todo, 1):
            overall.set_postfix_str(str(unit))
            with claimed(unit, out) as holder:
                if holder is not None:
                    tqdm.write(f"{unit}: being trained by {holder}: skipped")
                elif _read_unit(unit, out, settings[unit.variant]) is None:
                    result = run_unit(unit, setup, settings[unit.variant], out, stop)
                    _write(unit.path(out), result)
                    discard(partial_dir(unit, out))
                    tqdm.write(f"{unit}: final return {result['final_return']:.1f}")
                    report = build_report(_finished_units(units, out, settings), meta, setup.config)
                    _write(json_path, report)
            overall.update()
            if stop.signum is not None and number < len(todo):
                raise Stopped(
                    f"stopped by {stop.name} after {unit} ({number} of {len(todo)} units "
                    f"to run; the finished ones are in {out / 'units'}); run the same "
                    "command again to run the rest",
                    stop.signum,
                )
