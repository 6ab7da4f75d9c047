"""``keypoint-wm bench wrapper``: per-step time of the latent wrappers vs the bare pixel env.

Measured in one run, on the same task, with the same fixed random actions:

- 1 env: :class:`~keypoint_wm.envs.DMCPixelEnv` alone vs the same env inside
  :class:`~keypoint_wm.envs.LatentObservation`;
- N envs (default 8): an SB3 ``DummyVecEnv`` of N pixel envs vs the same inside
  :class:`~keypoint_wm.envs.LatentVecEnv` (one batched model call per step).

The model has the paper's DMCS size by default (preset ``dmcs``: K 64, 32 encoder filters,
GRU 512, 64x64 frames, 6 zero-padded actions) with untrained weights (the cost does not
depend on them), in the precision ``keypoint-wm train`` would pick on this machine. With
``run`` it is that world model instead (a run folder, or ``"default"``: the model shipped in
the package), at its own image size, keypoints and action repeat.
Timings alternate between bare and wrapped in short blocks so that a change of machine load
hits both; each figure is the median over blocks of the mean step time. Episode resets are
not timed. Ratios are ``t_bare / t_wrapped`` (1.0 = the wrapper costs nothing).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.model.device import device_name

__all__ = ["format_wrapper_benchmark", "run_wrapper_benchmark"]


def _trained(run: str | Path, precision: str) -> tuple[Any, str]:
    """The world model of ``run`` on the CPU, in ``precision`` (``"auto"`` resolved)."""
    import keypoint_wm
    from keypoint_wm.model.precision import resolve_precision

    precision = resolve_precision(precision, torch.device("cpu"))
    return keypoint_wm.load(run, device="cpu", precision=precision), precision


def _model(
    preset: str, num_keypoints: int, size: int, action_size: int, seed: int, precision: str
) -> Any:
    from keypoint_wm.api import WorldModel
    from keypoint_wm.model.precision import resolve_precision
    from keypoint_wm.model.struct_vrnn import StructVRNN
    from keypoint_wm.presets import get_preset

    config = (
        get_preset(preset)
        .build(seed)
        .with_overrides(
            {
                "model.num_keypoints": num_keypoints,
                "model.image_size": size,
                "model.action_size": action_size,
            }
        )
    )
    torch.manual_seed(seed)
    model = StructVRNN(config.model).eval()
    precision = resolve_precision(precision, torch.device("cpu"))
    model.set_precision(precision)
    return WorldModel(model, config, 0, None), precision


def _timed_blocks(
    runners: dict[str, Callable[[int], float]], steps: int, block: int, bar: tqdm
) -> dict[str, float]:
    """Alternate the runners in blocks; median over blocks of seconds per step."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    done = 0
    while done < steps:
        n = min(block, steps - done)
        for name, run in runners.items():
            times[name].append(run(n) / n)
            bar.update(n)
        done += n
    return {name: statistics.median(values) for name, values in times.items()}


def run_wrapper_benchmark(
    task: str = "cheetah-run",
    steps: int = 200,
    num_envs: int = 8,
    preset: str | None = None,
    num_keypoints: int | None = None,
    size: int | None = None,
    action_repeat: int | None = None,
    block: int = 10,
    warmup: int = 5,
    seed: int = 0,
    progress: bool = True,
    precision: str = "auto",
    run: str | Path | None = None,
    identity: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time bare vs wrapped steps; returns figures and ``"ratios"`` (see module doc).

    Args:
        task: DMCS task, e.g. ``"cheetah-run"``.
        steps: timed steps per configuration (1 env and ``num_envs`` envs).
        num_envs: size of the vectorised comparison.
        preset, num_keypoints, size: the untrained model's architecture (default: the
            paper's DMCS model, ``"dmcs"``, K 64, 64x64).
        action_repeat: of the pixel envs (default 2).
        block: steps per alternating block.
        warmup: untimed steps first.
        precision: the model's image precision (``"auto"``: what ``keypoint-wm train``
            picks on this CPU; ``"channels_last"`` on a native-bf16 CPU times the numbers
            an AVX2-only CPU runs).
        run: time this world model instead (a run folder, an exported model, or the name of
            a shipped one, ``"default"``): its image size, keypoints and action repeat.
        identity: recorded under ``"model"`` with ``run`` (e.g. its weights hash).

    Raises:
        ValueError: ``run`` with any of ``preset``, ``num_keypoints``, ``size`` or
            ``action_repeat`` (the run fixes them).
    """
    if steps < 1 or num_envs < 1 or block < 1:
        raise ValueError("--steps, --envs and the block size must be positive")
    if run is not None:
        given = {"preset": preset, "num_keypoints": num_keypoints, "size": size,
                 "action_repeat": action_repeat}  # fmt: skip
        fixed = [name for name, value in given.items() if value is not None]
        if fixed:
            raise ValueError(f"run={str(run)!r} fixes {', '.join(fixed)}: give none of them")
        from keypoint_wm.envs.latent.wrapper import training_action_repeat

        model, precision = _trained(run, precision)
        size = int(model.config.model.image_size)
        action_repeat = training_action_repeat(model)
        described: dict[str, Any] = {"run": str(run), **(identity or {}), "preset": None}
    else:
        preset = "dmcs" if preset is None else preset
        size = 64 if size is None else size
        action_repeat = 2 if action_repeat is None else action_repeat
        num_keypoints = 64 if num_keypoints is None else num_keypoints
        model, precision = _model(preset, num_keypoints, size, 6, seed, precision)
        described = {"run": None, "preset": preset}
    t1, tn = _time_bare_and_wrapped(
        model, task, size, action_repeat, num_envs, steps, block, warmup, seed, progress
    )
    ms = lambda seconds: round(seconds * 1000.0, 3)  # noqa: E731
    return {
        "task": task,
        "image_size": size,
        "action_repeat": action_repeat,
        "model": {
            **described,
            "num_keypoints": int(model.config.model.num_keypoints),
            "num_encoder_filters": model.config.model.num_encoder_filters,
            "rnn_units": model.config.model.rnn_units,
            "precision": precision,
        },
        "steps": steps,
        "num_envs": num_envs,
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "device_name": device_name(torch.device("cpu")),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "ms_per_step": {
            "bare_1env": ms(t1["bare"]),
            "wrapped_1env": ms(t1["wrapped"]),
            f"bare_{num_envs}env": ms(tn["bare"]),
            f"wrapped_{num_envs}env": ms(tn["wrapped"]),
        },
        "ratios": {
            "bare_vs_wrapped_1env": round(t1["bare"] / t1["wrapped"], 4),
            f"bare_vs_wrapped_{num_envs}env": round(tn["bare"] / tn["wrapped"], 4),
        },
    }


def _time_bare_and_wrapped(
    model: Any,
    task: str,
    size: int,
    action_repeat: int,
    num_envs: int,
    steps: int,
    block: int,
    warmup: int,
    seed: int,
    progress: bool,
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per step, bare and wrapped, of 1 env and of ``num_envs`` envs (after
    ``warmup`` untimed steps each), with the same fixed random actions."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    from keypoint_wm.envs.latent.sb3 import LatentVecEnv
    from keypoint_wm.envs.latent.wrapper import LatentObservation
    from keypoint_wm.envs.registration import make_env

    def pixel_env() -> Any:
        return make_env(task, size=size, action_repeat=action_repeat)

    bare, wrapped = pixel_env(), LatentObservation(pixel_env(), model)
    action_size = int(bare.action_space.shape[0])
    actions = np.random.default_rng(seed).uniform(-1, 1, (4096, num_envs, action_size))
    actions = actions.astype(np.float32)
    counter = {"i": 0}
    bare_vec = DummyVecEnv([pixel_env] * num_envs)
    wrapped_vec = LatentVecEnv(DummyVecEnv([pixel_env] * num_envs), model)
    total = 2 * (steps + warmup) * 2
    try:
        with tqdm(total=total, desc="bench wrapper", unit="step", disable=not progress) as bar:
            one = {
                "bare": _single_runner(bare, actions, counter, seed),
                "wrapped": _single_runner(wrapped, actions, counter, seed),
            }
            many = {
                "bare": _vector_runner(bare_vec, actions, counter, seed),
                "wrapped": _vector_runner(wrapped_vec, actions, counter, seed),
            }
            _timed_blocks(one, warmup, warmup, bar)
            _timed_blocks(many, warmup, warmup, bar)
            t1 = _timed_blocks(one, steps, block, bar)
            tn = _timed_blocks(many, steps, block, bar)
    finally:
        for env in (bare, wrapped, bare_vec, wrapped_vec):
            env.close()
    return t1, tn


def _single_runner(
    env: Any, actions: np.ndarray, counter: dict[str, int], seed: int
) -> Callable[[int], float]:
    """Reset ``env``; the runner steps it ``n`` times and returns the seconds its steps took
    (resets untimed). ``counter`` walks the actions shared by every runner."""
    env.reset(seed=seed)

    def run(n: int) -> float:
        total = 0.0
        for _ in range(n):
            action = actions[counter["i"] % len(actions), 0]
            counter["i"] += 1
            start = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            total += time.perf_counter() - start
            if terminated or truncated:
                env.reset()
        return total

    return run


def _vector_runner(
    venv: Any, actions: np.ndarray, counter: dict[str, int], seed: int
) -> Callable[[int], float]:
    """Seed and reset the vectorised ``venv``; the runner steps it ``n`` times and returns
    the seconds taken. ``counter`` walks the actions shared by every runner."""
    venv.seed(seed)
    venv.reset()

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            venv.step(actions[counter["i"] % len(actions)])
            counter["i"] += 1
        return time.perf_counter() - start

    return run


def _model_name(model: dict[str, Any]) -> str:
    """``preset`` (untrained), or the run and its weights hash where recorded."""
    if model.get("run") is None:
        return str(model["preset"])
    weights = model.get("weights")
    return f"{model['run']}" + (f" (weights {weights})" if weights else "")


def format_wrapper_benchmark(result: dict[str, Any]) -> str:
    """A small table of the figures and what each ratio compares."""
    n = result["num_envs"]
    ms = result["ms_per_step"]
    m = result["model"]
    lines = [
        f"task {result['task']} ({result['image_size']}x{result['image_size']}, action repeat "
        f"{result['action_repeat']}); model {_model_name(m)} K {m['num_keypoints']}, "
        f"F {m['num_encoder_filters']}, GRU {m['rnn_units']}, {m['precision']}; "
        f"{result['torch_threads']} torch thread(s); {result['steps']} timed steps each",
        f"CPU: {result['device_name']} (ATen {result['cpu_capability']})",
        f"{'':<10}{'bare ms/step':>14}{'wrapped ms/step':>17}{'ratio':>8}",
        f"{'1 env':<10}{ms['bare_1env']:>14.2f}{ms['wrapped_1env']:>17.2f}"
        f"{result['ratios']['bare_vs_wrapped_1env']:>8.3f}",
        f"{f'{n} envs':<10}{ms[f'bare_{n}env']:>14.2f}{ms[f'wrapped_{n}env']:>17.2f}"
        f"{result['ratios'][f'bare_vs_wrapped_{n}env']:>8.3f}",
        "ratio = t_bare / t_wrapped per step (1 env: DMCPixelEnv vs LatentObservation; "
        f"{n} envs: DummyVecEnv vs LatentVecEnv, one batched model call per step)",
    ]
    return "\n".join(lines)
