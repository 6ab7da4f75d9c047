"""Run a collection: plan, skip finished episodes, fan out to worker processes, summarise.

Resumable by construction: every episode file is written atomically under its final name
only when complete, so a re-run with the same command collects exactly the missing ones.
The same seed gives byte-identical files whatever the number of workers or shards.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, cast

from tqdm.auto import tqdm

from keypoint_wm.collect.config import CollectConfig, CollectError, EpisodeJob, Shard, plan_jobs
from keypoint_wm.collect.rollout import random_rollout
from keypoint_wm.data.episodes import (
    iter_episode_files,
    read_manifest,
    save_episode,
    write_manifest,
)

MANIFEST_FORMAT = "keypoint-wm/episodes-v1"


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

    @property
    def frames_per_second(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        return (
            f"collected {self.episodes_written} episodes ({self.frames_written} frames) in "
            f"{self.seconds:.1f} s ({self.frames_per_second:.0f} frames/s); "
            f"{self.episodes_skipped} already present. Dataset {self.out}: "
            f"{self.dataset_episodes} episodes, {self.dataset_bytes / 1e6:.1f} MB on disk"
        )


# ----------------------------------------------------------------------------- workers
_ENVS: dict[tuple, Any] = {}


def _worker_init(single_thread_rasteriser: bool) -> None:
    # Mesa's llvmpipe spawns a rasteriser thread per core; with one process per core those
    # threads only contend. Must be set before the GL context exists.
    if single_thread_rasteriser:
        os.environ.setdefault("LP_NUM_THREADS", "1")


def _get_env(task: str, config: CollectConfig) -> Any:
    from keypoint_wm.envs import make_env

    key = (task, config.size, config.camera_id, config.action_repeat)
    if key not in _ENVS:
        _ENVS[key] = make_env(
            task, size=config.size, camera_id=config.camera_id, action_repeat=config.action_repeat
        )
    return _ENVS[key]


def collect_episode(job: EpisodeJob, config: CollectConfig) -> tuple[int, int]:
    """Collect one episode and write it atomically; return (frames, bytes)."""
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


# ----------------------------------------------------------------------------- driver
def _check_manifest(config: CollectConfig) -> None:
    """Refuse to mix datasets: an existing manifest must describe the same dataset."""
    manifest = read_manifest(config.out)
    if manifest is None:
        return
    existing = manifest.get("spec", {})
    wanted = config.dataset_spec()
    differing = sorted(k for k in set(existing) | set(wanted) if existing.get(k) != wanted.get(k))
    if differing:
        details = ", ".join(
            f"{k}: {existing.get(k)!r} on disk vs {wanted.get(k)!r}" for k in differing
        )
        raise CollectError(
            f"--out {config.out} already holds a different dataset ({details}); "
            "choose another --out or repeat the original flags"
        )


def _task_info(config: CollectConfig) -> dict[str, Any]:
    """Action sizes, object names and time limits of the tasks (checks --steps fits)."""
    from keypoint_wm.envs import make_env
    from keypoint_wm.envs.dmc import DMCPixelEnv

    info = {}
    for task in config.tasks:
        env = make_env(task, size=config.size, action_repeat=config.action_repeat)
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


def _prepare_output(config: CollectConfig) -> None:
    try:
        config.out.mkdir(parents=True, exist_ok=True)
        for task in config.tasks:
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
    _check_manifest(config)
    tasks = _task_info(config)
    _prepare_output(config)
    write_manifest(
        config.out,
        {
            "format": MANIFEST_FORMAT,
            "dataset": "dmcs",
            "spec": config.dataset_spec(),
            "tasks": tasks,
        },
    )
    jobs = plan_jobs(config, shard)
    pending = [job for job in jobs if not (config.out / job.relative_path()).exists()]
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
        if workers == 1 or len(pending) <= 1:
            _worker_init(single_thread_rasteriser=False)
            for job in pending:
                n, _ = collect_episode(job, config)
                written, frames = written + 1, frames + n
                bar.update(n)
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
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    files = list(iter_episode_files(config.out))
    return CollectSummary(
        out=config.out,
        episodes_written=written,
        episodes_skipped=len(jobs) - len(pending),
        frames_written=frames,
        seconds=seconds,
        dataset_episodes=len(files),
        dataset_bytes=sum(f.stat().st_size for f in files),
    )
