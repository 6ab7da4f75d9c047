"""``keypoint-wm bench collect``: our collector against a plain dm_control loop.

Measured in one run, on the same tasks and the same number of frames:

(a) ``raw``: ``suite.load``, a uniform random action, ``physics.render(64, 64, camera_id=0)``
    with the suite's default rendering, one frame per control step, nothing written;
(b) our collector end to end (process start-up, environment creation, random actions,
    rendering, compression and atomic writes included) with 1 and with 2 workers, at
    action repeat 1 so that it also renders one frame per control step.

Ratios are frames/s over frames/s (bigger is better for us).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.collect.config import CollectConfig
from keypoint_wm.collect.runner import collect_dataset

EPISODE_STEPS = 99  # 100 frames per episode file


def raw_suite_fps(tasks: list[str], frames: int, size: int = 64, seed: int = 0) -> float:
    """Frames/s of a plain dm_control loop over ``tasks`` (``frames`` in all, split evenly)."""
    from keypoint_wm.envs import parse_task_name
    from keypoint_wm.envs.gl import dm_control_suite

    suite = dm_control_suite()

    rng = np.random.default_rng(seed)
    per_task = math.ceil(frames / len(tasks))
    elapsed = 0.0
    for name in tasks:
        domain, task = parse_task_name(name)
        env = suite.load(domain, task, task_kwargs={"random": seed})
        spec = env.action_spec()
        env.reset()
        env.physics.render(size, size, camera_id=0)  # create the GL context outside the clock
        start = time.perf_counter()
        for _ in range(per_task):
            step = env.step(rng.uniform(spec.minimum, spec.maximum))
            env.physics.render(size, size, camera_id=0)
            if step.last():
                env.reset()
        elapsed += time.perf_counter() - start
        env.close()
    return per_task * len(tasks) / elapsed


def collector_fps(tasks: list[str], frames: int, workers: int, size: int = 64) -> float:
    """Frames/s of ``collect_dataset`` end to end into a fresh temporary directory."""
    episodes = max(workers, math.ceil(frames / ((EPISODE_STEPS + 1) * len(tasks))))
    with tempfile.TemporaryDirectory(prefix="kwm-bench-") as tmp:
        config = CollectConfig(
            tasks=tuple(tasks),
            episodes=episodes,
            steps=EPISODE_STEPS,
            action_repeat=1,
            size=size,
            out=Path(tmp) / "data",
        )
        start = time.perf_counter()
        summary = collect_dataset(config, workers=workers, progress=False)
        elapsed = time.perf_counter() - start
    return summary.frames_written / elapsed


def run_collect_benchmark(tasks: list[str], frames: int = 2400) -> dict[str, Any]:
    """Measure (a) the raw loop and (b) our collector with 1 and 2 workers, side by side."""
    raw = raw_suite_fps(tasks, frames)
    one = collector_fps(tasks, frames, workers=1)
    two = collector_fps(tasks, frames, workers=2)
    return {
        "tasks": tasks,
        "frames_per_measurement": frames,
        "image_size": 64,
        "cpu_count": os.cpu_count(),
        "fps": {"raw_dm_control": raw, "collector_1_worker": one, "collector_2_workers": two},
        "ratios": {"one_worker_vs_raw": one / raw, "two_workers_vs_raw": two / raw},
    }


def format_results(results: dict[str, Any]) -> str:
    """The printed table of :func:`run_collect_benchmark`."""
    fps, ratios = results["fps"], results["ratios"]
    return "\n".join(
        [
            f"bench collect: {', '.join(results['tasks'])}, {results['frames_per_measurement']} "
            f"frames per measurement, 64x64, {results['cpu_count']} cores",
            f"  (a) raw dm_control loop (suite defaults)   {fps['raw_dm_control']:8.1f} frames/s",
            f"  (b1) keypoint-wm collect, 1 worker          {fps['collector_1_worker']:8.1f} frames/s",
            f"  (b2) keypoint-wm collect, 2 workers         {fps['collector_2_workers']:8.1f} frames/s",
            f"  one_worker_vs_raw  = (b1)/(a) = {ratios['one_worker_vs_raw']:.2f}   (target >= 1.3)",
            f"  two_workers_vs_raw = (b2)/(a) = {ratios['two_workers_vs_raw']:.2f}   (target >= 2.4)",
        ]
    )
