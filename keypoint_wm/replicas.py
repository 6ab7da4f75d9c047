"""``keypoint-wm train --seeds N``: N independent replicas of one run, for the paper's
protocol of averaging several initialisations (docs/design.md, "Seeds").

Replica ``i`` is exactly the single run ``train --seed S+i --out OUT/seed_<S+i>``: its own
process, its own random generators, its own complete run directory (config, checkpoints,
TensorBoard, probe). So a replica has the same initial weights, the same data order and, on
a CPU, bitwise the same training curve as that single run (tested); on a GPU the same within
the nondeterminism of its kernels.

On CUDA the replicas train concurrently, one process each on the same device: a small model
leaves most of a GPU idle, so N replicas take clearly less wall time than N runs one after
another. On a CPU with T threads, min(N, T) replicas train side by side, T // min(N, T)
threads each, the rest as places free up: a small model's step does not scale to all cores,
so replicas side by side do more steps per second in all (docs/measurements.md,
"2026-12-01: data in RAM and replicas side by side on the CPU").
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

from keypoint_wm.config import RunConfig
from keypoint_wm.errors import RunError
from keypoint_wm.model.device import resolve_device


def replica_dir(out: str | Path, seed: int) -> Path:
    """Where the replica with ``seed`` lives: ``OUT/seed_<seed>``."""
    return Path(out) / f"seed_{seed}"


def replica_seeds(first_seed: int, count: int) -> list[int]:
    """The seeds of ``count`` replicas starting at ``first_seed``: S, S+1, ..., S+N-1."""
    if count < 1:
        raise RunError(f"--seeds must be at least 1, got {count}")
    return [first_seed + i for i in range(count)]


def _train_one(kwargs: dict[str, Any]) -> dict[str, Any]:
    from keypoint_wm.train import train

    return train(**kwargs)


def _set_threads(threads: int | None) -> None:
    """A replica process's torch threads (None: the default)."""
    if threads is not None:
        torch.set_num_threads(threads)


def side_by_side(device: torch.device, count: int) -> tuple[int, int | None]:
    """``(processes, threads each)`` for ``count`` replicas on ``device``: on CUDA all at once
    (threads as by default: None); on a CPU with T threads, min(count, T) processes with
    T // processes threads each; ``(1, None)`` means one after another in this process.

    >>> side_by_side(torch.device("cpu"), 1)
    (1, None)
    """
    if count == 1:
        return 1, None
    if device.type == "cuda":
        return count, None
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        return 1, None
    processes = min(count, threads)
    return processes, threads // processes


def train_replicas(
    config: RunConfig,
    data_dir: Path,
    out: Path,
    count: int,
    resume: bool = False,
    device_name: str | None = None,
    progress: bool = True,
    data_placement: str = "auto",
    cuda_graph: str = "auto",
) -> list[dict[str, Any]]:
    """Train ``count`` replicas of ``config`` (seeds ``config.seed`` ...) into
    ``out/seed_<s>``; returns each replica's :func:`keypoint_wm.train.train` summary."""
    device = resolve_device(device_name)
    jobs = [
        {
            "config": config.with_overrides({"seed": seed}),
            "data_dir": Path(data_dir),
            "run_dir": replica_dir(out, seed),
            "resume": resume,
            "device_name": str(device),
            "progress": progress,
            "data_placement": data_placement,
            "cuda_graph": cuda_graph,
            "progress_label": f"seed {seed}",
            "progress_position": i,
        }
        for i, seed in enumerate(replica_seeds(config.seed, count))
    ]
    processes, threads = side_by_side(device, count)
    if processes == 1:
        return [_train_one(job) for job in jobs]
    context = multiprocessing.get_context("spawn")  # CUDA and OpenMP threads cannot be forked
    with ProcessPoolExecutor(
        max_workers=processes, mp_context=context, initializer=_set_threads, initargs=(threads,)
    ) as pool:
        futures = [pool.submit(_train_one, job) for job in jobs]
        results, failures = [], []
        for job, future in zip(jobs, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as error:  # a replica's failure is reported with its seed
                failures.append(f"{job['run_dir']}: {type(error).__name__}: {error}")
    if failures:
        raise RunError("replica(s) failed:\n  " + "\n  ".join(failures))
    return results
