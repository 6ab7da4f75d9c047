"""Run a collection: plan, skip finished episodes, fan out to worker processes, summarise.

Resumable by construction: every episode file is written atomically under its final name
only when complete, so a re-run with the same command collects exactly the missing ones;
a file found damaged (truncated, overwritten:
:func:`~keypoint_wm.data.episodes.present_and_valid`) is collected again.
The same seed gives byte-identical files whatever the number of workers or shards.

Shared folders (docs/design.md, "Atomic writes"): the manifest is checked and written under
a lock, so two collections of different datasets started together into one ``--out`` never
mix (the second is refused), and one process collects a shard at a time (a second one of
the same shard is refused, naming the holder; other shards of the same dataset go side by
side). A manifest without any episode yet (a collection that failed at its start) does not
hold the folder. SIGINT or SIGTERM lets the episodes in progress finish and be written, then
stops (:class:`~keypoint_wm.errors.Stopped`); worker processes never outlive the collection.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from tqdm.auto import tqdm

from keypoint_wm.claims import claim
from keypoint_wm.collect.config import (
    CollectConfig,
    CollectError,
    EpisodeJob,
    Shard,
    env_folder,
    plan_jobs,
)
from keypoint_wm.collect.rollout import random_rollout
from keypoint_wm.data.episodes import (
    iter_episode_files,
    present_and_valid,
    read_manifest,
    save_episode,
    write_manifest,
)
from keypoint_wm.errors import Stopped
from keypoint_wm.stop_signals import stop_requests

if TYPE_CHECKING:
    from keypoint_wm.envs.gym_state import EnvState

MANIFEST_FORMAT = "keypoint-wm/episodes-v1"
WRITER_SUFFIX = ".writer"
"""A shard's writer claim in the dataset folder: ``.shard-<i>-of-<n>.writer``."""


@dataclass
class CollectSummary:
    """What a collection run did."""

    out: Path
    episodes_written: int
    episodes_skipped: int
    frames_written: int
    seconds: float
    dataset_episodes: int
    dataset_bytes: int
    episodes_damaged: int = 0

    @property
    def frames_per_second(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"collected {self.episodes_written} episodes ({self.frames_written} frames) in "
            f"{self.seconds:.1f} s ({self.frames_per_second:.0f} frames/s); "
            f"{self.episodes_skipped} already present"
            + (
                f", {self.episodes_damaged} damaged ones collected again"
                if self.episodes_damaged
                else ""
            )
            + f". Dataset {self.out}: "
            f"{self.dataset_episodes} episodes, {self.dataset_bytes / 1e6:.1f} MB on disk"
        )


# ----------------------------------------------------------------------------- workers
_ENVS: dict[tuple, Any] = {}


def _worker_init(single_thread_rasteriser: bool) -> None:
    # Mesa's llvmpipe spawns a rasteriser thread per core; with one process per core those
    # threads only contend. Must be set before the GL context exists.
    if single_thread_rasteriser:
        os.environ.setdefault("LP_NUM_THREADS", "1")
    _die_with_parent()


def _die_with_parent() -> None:
    """On Linux, have the kernel send this worker SIGKILL when its parent dies, however it
    dies (kill -9 included), so that no worker outlives its collection."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)


def _get_env(task: str, config: CollectConfig) -> Any:
    from keypoint_wm.envs import make_env

    key = (task, config.size, config.camera_id, config.action_repeat)
    if key not in _ENVS:
        _ENVS[key] = make_env(
            task, size=config.size, camera_id=config.camera_id, action_repeat=config.action_repeat
        )
    return _ENVS[key]


def _make_gym_env(name: str, config: CollectConfig) -> Any:
    """``--env name`` made with ``render_mode="rgb_array"`` and ``--env-kwargs``; a
    CollectError naming the flag when it cannot be made."""
    from keypoint_wm.envs.gym_pixels import make_render_env

    try:
        return make_render_env(name, config.env_kwargs)
    except ValueError as error:
        raise CollectError(f"--env {name}: {error}") from None


def _close_gym_env(env: Any) -> None:
    """Close an ``--env`` env, and move the exit hook that closes the cached DMCS envs last
    in line: Gymnasium MuJoCo's EGL module registers the display's termination at exit
    when it first renders, and the DMCS envs must be freed before that runs."""
    env.close()
    atexit.unregister(_close_cached_envs)
    atexit.register(_close_cached_envs)


def _close_cached_envs() -> None:
    """Close this process's cached DMCS envs (at exit, before the EGL display goes)."""
    while _ENVS:
        _ENVS.popitem()[1].close()


def _gym_metadata(name: str, env: Any, config: CollectConfig, state: EnvState | None) -> dict:
    """What an ``--env`` episode's metadata (and the manifest's task entry) says of it."""
    crop = config.frame_crop()
    fps = env.metadata.get("render_fps")
    return {
        "dataset": "gymnasium",
        "env_id": name,
        "env_kwargs": config.env_kwargs,
        "task_name": env_folder(name),
        "action_repeat": 1,
        "action_space": str(env.action_space),
        "size": config.size,
        "crop": None if crop is None else crop.to_json(),
        "fps": None if fps is None else float(fps),
        "object_names": [],
        "state_keys": [] if state is None else [part.to_json() for part in state.parts],
        **({} if state is None else state.metadata),
    }


def collect_episode(job: EpisodeJob, config: CollectConfig) -> tuple[int, int]:
    """Collect one episode and write it atomically; return (frames, bytes)."""
    name = config.env_of(job.task)
    if name is not None:
        return _collect_gym_episode(name, job, config)
    env = _get_env(job.task, config)
    metadata = {
        "dataset": "dmcs",
        "domain": env.unwrapped.domain,
        "task": env.unwrapped.task,
        "task_name": job.task,
        "index": job.index,
        "action_repeat": config.action_repeat,
        "size": config.size,
        "camera_id": config.camera_id,
        "fps": float(env.unwrapped.metadata["render_fps"]),
        "object_names": list(env.unwrapped.object_names),
        "state_keys": [part.to_json() for part in env.unwrapped.state_parts],
    }
    episode = random_rollout(env, config.steps, job.seed, metadata)
    path = save_episode(config.out / job.relative_path(), episode)
    return episode.num_frames, path.stat().st_size


def _collect_gym_episode(name: str, job: EpisodeJob, config: CollectConfig) -> tuple[int, int]:
    """One ``--env`` episode: frames from ``render()``, ending when the env ends it.

    Each episode gets an env of its own, closed after it: a Gymnasium env may keep state
    across ``reset`` (a MuJoCo env's tracking camera moves on from where the last episode
    left it), and an episode's bytes must depend on its seed alone, not on which episodes
    the worker collected before."""
    from keypoint_wm.envs.gym_pixels import RenderedFrames
    from keypoint_wm.envs.gym_state import state_source

    env = _make_gym_env(name, config)
    try:
        state = state_source(env)
        metadata = {**_gym_metadata(name, env, config, state), "index": job.index}
        episode = random_rollout(
            env,
            config.steps,
            job.seed,
            metadata,
            frame=RenderedFrames(env, config.size, config.frame_crop()),
            state=None if state is None else state.read,
            may_end=True,
            versions=("gymnasium", "ale-py") if hasattr(env.unwrapped, "ale") else ("gymnasium",),
        )
    finally:
        _close_gym_env(env)
    path = save_episode(config.out / job.relative_path(), episode)
    return episode.num_frames, path.stat().st_size


# ----------------------------------------------------------------------------- driver
def _check_manifest(config: CollectConfig, own_claim: str) -> None:
    """Refuse to mix datasets: an existing manifest must describe the same dataset, unless
    the folder holds no episode yet and no other process is collecting into it (a
    collection that failed at its start does not hold the folder)."""
    manifest = read_manifest(config.out)
    if manifest is None:
        return
    existing = manifest.get("spec", {})
    wanted = config.dataset_spec()
    differing = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
    if not differing:
        return
    others = _other_writers(config.out, own_claim)
    if others or next(iter_episode_files(config.out), None) is not None:
        details = ", ".join(
            f"{k}: {existing.get(k)!r} on disk vs {wanted.get(k)!r}" for k in differing
        )
        busy = f"; {others[0]} is collecting it" if others else ""
        raise CollectError(
            f"--out {config.out} already holds a different dataset ({details}{busy}); "
            "choose another --out or repeat the original flags"
        )


def _other_writers(out: Path, own_claim: str) -> list[str]:
    """The processes holding a shard's writer claim in ``out`` (other than ``own_claim``)."""
    holders = []
    for path in sorted(out.glob(f".shard-*{WRITER_SUFFIX}")):
        if path.name != own_claim:
            with claim(path) as holder:
                if holder is not None:
                    holders.append(holder)
    return holders


def _task_info(config: CollectConfig) -> dict[str, Any]:
    """Action sizes, object names and time limits of the tasks (checks --steps fits)."""
    from keypoint_wm.envs import make_env
    from keypoint_wm.envs.dmc import DMCPixelEnv

    info = {env_folder(name): _gym_task_info(name, config) for name in config.envs}
    for task in config.tasks:
        try:  # and one frame: a camera the task lacks is named here, not in a worker
            env = make_env(
                task,
                size=config.size,
                camera_id=config.camera_id,
                action_repeat=config.action_repeat,
            )
            env.reset(seed=0)
        except (ValueError, IndexError) as error:
            raise CollectError(f"--camera {config.camera_id}: {task}: {error}") from None
        try:
            dmc = cast(DMCPixelEnv, env.unwrapped)
            limit = dmc.max_episode_steps  # None: no time limit (e.g. lqr)
            if limit is not None and config.steps > limit:
                raise CollectError(
                    f"--steps {config.steps} exceeds the time limit of {task} "
                    f"({limit} agent steps at --action-repeat {config.action_repeat})"
                )
            info[task] = {
                "action_size": dmc.action_size,
                "object_names": list(dmc.object_names),
                "state_keys": [part.to_json() for part in dmc.state_parts],
                "max_episode_steps": None if limit is None else int(limit),
            }
        finally:
            env.close()
    return info


def _gym_task_info(name: str, config: CollectConfig) -> dict[str, Any]:
    """An ``--env``'s manifest entry; makes it, resets it and renders one frame, so that an
    unknown id, an unsupported action space or a frame the crop does not fit is named
    here, in one line, before any worker starts."""
    from keypoint_wm.envs.gym_pixels import (
        RandomActions,
        RenderedFrames,
        UnsupportedActionSpace,
    )
    from keypoint_wm.envs.gym_state import state_source

    env = _make_gym_env(name, config)
    try:
        try:
            actions = RandomActions(env.action_space, np.random.default_rng(0))
        except UnsupportedActionSpace as error:
            raise CollectError(f"--env {name}: {error}") from None
        try:
            env.reset(seed=0)
            frame = env.render()
            RenderedFrames(env, config.size, config.frame_crop())()
        except ValueError as error:
            raise CollectError(f"--env {name}: {error}") from None
        metadata = _gym_metadata(name, env, config, state_source(env))
        limit = env.spec.max_episode_steps if env.spec is not None else None
        return {
            "action_size": actions.size,
            "object_names": [],
            "state_keys": metadata["state_keys"],
            "max_episode_steps": None if limit is None else int(limit),
            "env_id": name,
            "action_space": metadata["action_space"],
            "render_shape": list(np.asarray(frame).shape),
        }
    finally:
        _close_gym_env(env)


@contextmanager
def _manifest_lock(out: Path, seconds: float = 60.0) -> Iterator[None]:
    """Hold ``out``'s manifest lock, waiting up to ``seconds`` for another collection that
    is checking or writing its manifest."""
    deadline = time.monotonic() + seconds
    while True:
        with claim(out / ".manifest.lock") as holder:
            if holder is None:
                yield
                return
        if time.monotonic() > deadline:
            raise CollectError(
                f"--out {out}: its manifest has been locked by {holder} for a minute"
            )
        time.sleep(0.1)


def _prepare_output(config: CollectConfig, tasks: tuple[str, ...]) -> None:
    try:
        config.out.mkdir(parents=True, exist_ok=True)
        for task in tasks:
            (config.out / task).mkdir(exist_ok=True)
    except OSError as error:
        raise CollectError(f"--out {config.out} cannot be created ({error})") from error
    if not os.access(config.out, os.W_OK):
        raise CollectError(f"--out {config.out} is not writable")


def collect_dataset(
    config: CollectConfig,
    shard: Shard | None = None,
    workers: int = 1,
    progress: bool = True,
) -> CollectSummary:
    """Collect the episodes of ``shard`` that are not on disk yet.

    Args:
        config: what to collect and where.
        shard: the part of the dataset this process collects (``--shard i/n``).
        workers: worker processes (1 runs in this process).
        progress: show a progress bar with frames/s and ETA.
    """
    shard = shard or Shard()
    config.validate()
    if workers < 1:
        raise CollectError(f"--workers must be a positive integer, got {workers}")
    tasks = _task_info(config)
    _prepare_output(config, ())
    writer = f".shard-{shard.index}-of-{shard.count}{WRITER_SUFFIX}"
    with claim(config.out / writer) as holder:
        if holder is not None:
            raise CollectError(
                f"--out {config.out}: another process is collecting shard {shard} of this "
                f"dataset ({holder}); wait for it or give another --shard"
            )
        with _manifest_lock(config.out):  # check and write as one step
            _check_manifest(config, writer)
            _prepare_output(config, config.all_tasks)
            write_manifest(
                config.out,
                {
                    "format": MANIFEST_FORMAT,
                    "dataset": _dataset_kind(config),
                    "spec": config.dataset_spec(),
                    "tasks": tasks,
                },
            )
        return _collect_jobs(config, shard, workers, progress)


def _dataset_kind(config: CollectConfig) -> str:
    """The manifest's ``dataset``: ``dmcs``, ``gymnasium`` (only ``--env``) or ``mixed``."""
    if not config.envs:
        return "dmcs"
    return "mixed" if config.tasks else "gymnasium"


def _collect_jobs(
    config: CollectConfig, shard: Shard, workers: int, progress: bool
) -> CollectSummary:
    jobs = plan_jobs(config, shard)
    present = {job: present_and_valid(config.out / job.relative_path()) for job in jobs}
    pending = [job for job in jobs if not present[job]]
    damaged = sum(1 for job in jobs if present[job] is False)
    frames_per_episode = config.steps + 1
    start = time.perf_counter()
    written = frames = 0
    bar = tqdm(
        total=len(pending) * frames_per_episode,
        unit="frame",
        unit_scale=True,
        desc=f"collect {len(pending)} episodes",
        disable=not progress,
        dynamic_ncols=True,
    )
    try:
        with stop_requests() as stop:
            if workers == 1 or len(pending) <= 1:
                for job in pending:
                    n, _ = collect_episode(job, config)
                    written, frames = written + 1, frames + n
                    bar.update(n)
                    if stop.signum is not None:
                        break
            else:
                context = get_context("spawn")  # fork after a GL context exists is unsafe
                with ProcessPoolExecutor(
                    workers, mp_context=context, initializer=_worker_init, initargs=(True,)
                ) as pool:
                    futures = [pool.submit(collect_episode, job, config) for job in pending]
                    try:
                        for future in as_completed(futures):
                            n, _ = future.result()
                            written, frames = written + 1, frames + n
                            bar.update(n)
                            if stop.signum is not None:
                                break
                    finally:  # what is running finishes and is written; nothing new starts
                        for future in futures:
                            future.cancel()
                if stop.signum is not None:  # the pool waited for the episodes in progress
                    written = sum(
                        1 for f in futures if f.done() and not f.cancelled() and not f.exception()
                    )
            if stop.signum is not None and written < len(pending):
                raise Stopped(
                    f"stopped by {stop.name} after {written} of {len(pending)} episodes, each "
                    f"written whole; run the same command again to collect the rest of "
                    f"{config.out}",
                    stop.signum,
                )
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    files = list(iter_episode_files(config.out))
    return CollectSummary(
        out=config.out,
        episodes_written=written,
        episodes_skipped=len(jobs) - len(pending),
        episodes_damaged=damaged,
        frames_written=frames,
        seconds=seconds,
        dataset_episodes=len(files),
        dataset_bytes=sum(f.stat().st_size for f in files),
    )
