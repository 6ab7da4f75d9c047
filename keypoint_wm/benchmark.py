"""``keypoint-wm bench train``: training-step time of our fast path vs plain fp32 eager.

Both configurations train the same model (the paper's DMCS size by default: batch 32, K 64,
8 + 8 steps, 64x64, best of 50, latent 128, action-conditioned with 6 actions) with the
same :func:`keypoint_wm.train.train_step` on the same fixed batch, measured in one run:

- ``fast``: what ``keypoint-wm train`` does by default (``train.precision=auto``): image
  networks in channels_last with bf16 autocast where the CPU/GPU has native bf16 kernels,
  channels_last fp32 otherwise; dynamics and keypoint maths in fp32;
- ``fp32_eager``: the same model with ``train.precision=fp32``.

The ratio is ``t_eager / t_fast`` (bigger is better for us).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.precision import resolve_precision
from keypoint_wm.model.struct_vrnn import StructVRNN
from keypoint_wm.presets import get_preset
from keypoint_wm.train import schedule_at, train_step


def _time_steps(
    model_config: ModelConfig, precision: str, batch: int, steps: int, warmup: int, seed: int
) -> list[float]:
    torch.manual_seed(seed)
    model = StructVRNN(model_config)
    model.set_precision(precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    size, frames = model_config.image_size, model_config.num_steps
    images = torch.rand((batch, frames, 3, size, size), generator=generator) - 0.5
    actions = None
    if model_config.action_size:
        actions = torch.rand((batch, frames, model_config.action_size), generator=generator) * 2 - 1
    config = get_preset("dmcs").build()
    schedule = schedule_at(config, 50_000)  # mid-training: KL and scheduled sampling active
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        train_step(model, optimizer, images, actions, schedule, 1e-3, 10.0, i)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def run_train_benchmark(
    preset: str = "dmcs",
    batch: int | None = None,
    steps: int = 3,
    warmup: int = 1,
    action_size: int = 6,
    threads: int | None = None,
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) for both configurations."""
    if threads:
        torch.set_num_threads(threads)
    run = get_preset(preset).build()
    model_config = run.model
    if get_preset(preset).action_conditioned:
        model_config = model_config.replace(action_size=action_size)
    batch = batch or run.train.batch_size
    fast_precision = resolve_precision("auto", torch.device("cpu"))
    fast = _time_steps(model_config, fast_precision, batch, steps, warmup, seed=0)
    eager = _time_steps(model_config, "fp32", batch, steps, warmup, seed=0)
    t_fast, t_eager = statistics.median(fast), statistics.median(eager)
    return {
        "preset": preset,
        "batch_size": batch,
        "num_keypoints": model_config.num_keypoints,
        "steps": f"{model_config.num_observed_steps} + {model_config.num_predicted_steps}",
        "image_size": model_config.image_size,
        "num_bom_samples": model_config.num_bom_samples,
        "latent_size": model_config.latent_size,
        "action_size": model_config.action_size,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "fast_precision": fast_precision,
        "seconds_per_step": {"fast": t_fast, "fp32_eager": t_eager},
        "all_times": {"fast": fast, "fp32_eager": eager},
        "ratios": {"fast_vs_fp32_eager": t_eager / t_fast},
    }


def format_train_benchmark(result: dict[str, Any]) -> str:
    times = result["seconds_per_step"]
    return "\n".join(
        [
            f"bench train: preset {result['preset']}, batch {result['batch_size']}, "
            f"K {result['num_keypoints']}, {result['steps']} steps, {result['image_size']}x"
            f"{result['image_size']}, BoM {result['num_bom_samples']}, latent "
            f"{result['latent_size']}, actions {result['action_size']}, "
            f"{result['threads']} threads (median of {len(result['all_times']['fast'])} steps)",
            f"  fast ({result['fast_precision']})                     {times['fast']:8.2f} s/step",
            f"  fp32 eager                                 {times['fp32_eager']:8.2f} s/step",
            f"  fast_vs_fp32_eager = t_eager / t_fast = "
            f"{result['ratios']['fast_vs_fp32_eager']:.2f}   (target >= 4)",
        ]
    )
