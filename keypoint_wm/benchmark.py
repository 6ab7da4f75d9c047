"""``keypoint-wm bench train``: training-step time of our fast path vs plain fp32 eager.

Both configurations train the same model (the paper's DMCS size by default: batch 32, K 64,
8 + 8 steps, 64x64, best of 50, latent 128, action-conditioned with 6 actions) on the same
fixed batch and the same device, measured side by side in one run:

- ``fast``: what ``keypoint-wm train`` does by default: image networks in channels_last with
  bf16 autocast where the device has native bf16 kernels (channels_last fp32 otherwise),
  dynamics and keypoint maths in fp32; on CUDA a fused Adam and the whole step replayed from
  a captured CUDA graph (:class:`keypoint_wm.train_step.StepRunner`); on a CPU freed memory
  kept in the process (:mod:`keypoint_wm.host_memory`), timed after the reference;
- ``fp32_eager``: the plain eager reference, untouched: ``train.precision=fp32``, the eager
  :func:`keypoint_wm.train_step.train_step` with ``torch.optim.Adam``'s defaults.

Both take the step of the middle of the preset's own schedule (``schedule_step``, step
50,000 of the paper's DMCS): the loss terms and ramps active there (KL weight, scheduled
sampling, the motion prior where the preset keeps one) are the ones a training run pays for
most of its steps, so ``keypoint-wm train``'s steps per second can be held against the fast
path's time (docs/measurements.md, "the training loop against the bench on a CPU").

The ratio is ``t_eager / t_fast`` (bigger is better for us). Times are medians over the
timed steps, each ended by a device synchronisation.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch

from keypoint_wm.config import RunConfig
from keypoint_wm.host_memory import keep_freed_memory
from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.device import device_name, resolve_device
from keypoint_wm.model.outputs import LossSchedule
from keypoint_wm.model.precision import resolve_precision
from keypoint_wm.model.struct_vrnn import StructVRNN
from keypoint_wm.presets import get_preset
from keypoint_wm.train import schedule_at
from keypoint_wm.train_step import StepRunner, train_step

AVX2_CAP = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
"""Environment that makes a process run as on an AVX2-only CPU (PyTorch's, oneDNN's and MKL's
kernels capped; the precision rule then sees no native bf16): how the AVX2 figures are
measured on a machine with AVX-512 (``reproduce bench-cpu``, ``scripts/as_avx2.sh``)."""

TARGETS = (
    "targets: one H100/H200 at dmcs size <= 12 ms/step (1e5 steps <= 20 min), basketball-cpu "
    "<= 5 ms/step; an AVX2-only CPU at dmcs size <= 12 s/step"
)
"""The printed target line (issue 13's bars)."""


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_schedule(run: RunConfig) -> tuple[int, LossSchedule]:
    """The step the bench times (the middle of ``run``'s schedule) and its loss schedule."""
    step = run.train.steps // 2
    return step, schedule_at(run, step)


def _time_steps(
    model_config: ModelConfig,
    schedule: LossSchedule,
    fast: bool,
    precision: str,
    batch: int,
    steps: int,
    warmup: int,
    seed: int,
    device: torch.device,
) -> list[float]:
    torch.manual_seed(seed)
    model = StructVRNN(model_config).to(device)
    model.set_precision(precision)
    generator = torch.Generator().manual_seed(seed)
    size, frames = model_config.image_size, model_config.num_steps
    images = torch.randint(0, 256, (batch, frames, size, size, 3), generator=generator)
    images = images.to(torch.uint8).to(device)
    actions = None
    if model_config.action_size:
        actions = torch.rand((batch, frames, model_config.action_size), generator=generator)
        actions = (actions * 2 - 1).to(device)
    if fast:
        runner = StepRunner(model, 1e-3, 10.0, use_graph=device.type == "cuda")
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(warmup + steps):
        _synchronize(device)
        start = time.perf_counter()
        if fast:
            runner.step(images, actions, None, schedule, 1e-3)
        else:
            inputs = images.permute(0, 1, 4, 2, 3).float().div(255.0).sub(0.5)
            train_step(model, optimizer, inputs, actions, schedule, 1e-3, 10.0)
        _synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    if fast:
        runner.raise_if_nonfinite(warmup + steps)
    return times


def run_train_benchmark(
    preset: str = "dmcs",
    batch: int | None = None,
    steps: int = 3,
    warmup: int = 1,
    action_size: int = 6,
    threads: int | None = None,
    device: str | None = "cpu",
    precision: str = "auto",
) -> dict[str, Any]:
    """Time ``steps`` training steps (after ``warmup``) for both configurations on
    ``device`` (``None``: the default rule of :func:`resolve_device`); ``precision`` is the
    fast path's (``"auto"``: what training picks on the device)."""
    if threads:
        torch.set_num_threads(threads)
    target = resolve_device(device)
    run = get_preset(preset).build()
    model_config = run.model
    if model_config.action_conditioned:
        model_config = model_config.replace(action_size=action_size)
    batch = batch or run.train.batch_size
    fast_precision = resolve_precision(precision, target)
    # The graphed step needs its warm-up and capture outside the timed steps.
    fast_warmup = max(warmup, 5) if target.type == "cuda" else warmup
    schedule_step, schedule = bench_schedule(run)
    # The reference first: on a CPU the fast path, as `train` does, then keeps freed memory in
    # the process (keypoint_wm/host_memory.py), which cannot be undone for what follows.
    eager = _time_steps(model_config, schedule, False, "fp32", batch, steps, warmup, 0, target)
    kept = keep_freed_memory() if target.type == "cpu" else False
    fast = _time_steps(
        model_config, schedule, True, fast_precision, batch, steps, fast_warmup, 0, target
    )
    t_fast, t_eager = statistics.median(fast), statistics.median(eager)
    peak = torch.cuda.max_memory_allocated(target) if target.type == "cuda" else None
    return {
        "preset": preset,
        "device": str(target),
        "device_name": device_name(target),
        "batch_size": batch,
        "num_keypoints": model_config.num_keypoints,
        "steps": f"{model_config.num_observed_steps} + {model_config.num_predicted_steps}",
        "image_size": model_config.image_size,
        "num_bom_samples": model_config.num_bom_samples,
        "latent_size": model_config.latent_size,
        "action_size": model_config.action_size,
        "schedule_step": schedule_step,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "fast_precision": fast_precision,
        "fast_keeps_freed_memory": kept,
        "fast_cuda_graph": target.type == "cuda",
        "seconds_per_step": {"fast": t_fast, "fp32_eager": t_eager},
        "hours_per_100k_steps": t_fast * 100_000 / 3600,
        "peak_memory_bytes": peak,
        "all_times": {"fast": fast, "fp32_eager": eager},
        "ratios": {"fast_vs_fp32_eager": t_eager / t_fast},
    }


def format_train_benchmark(result: dict[str, Any]) -> str:
    """The printed table of :func:`run_train_benchmark`'s result."""
    times = result["seconds_per_step"]
    unit, scale = ("ms", 1e3) if times["fast"] < 1.0 else ("s", 1.0)
    fast_name = result["fast_precision"] + (", CUDA graph" if result["fast_cuda_graph"] else "")
    fast_name += ", freed memory kept" if result.get("fast_keeps_freed_memory") else ""
    return "\n".join(
        [
            f"bench train on {result['device']} ({result['device_name']}): preset "
            f"{result['preset']}, batch {result['batch_size']}, K {result['num_keypoints']}, "
            f"{result['steps']} steps, {result['image_size']}x{result['image_size']}, BoM "
            f"{result['num_bom_samples']}, latent {result['latent_size']}, actions "
            f"{result['action_size']}, {result['threads']} threads, median of "
            f"{len(result['all_times']['fast'])} steps at schedule step "
            f"{result['schedule_step']}",
            f"{f'  fast ({fast_name})':<48} {times['fast'] * scale:10.2f} {unit}/step   "
            f"({result['hours_per_100k_steps']:.2f} h per 1e5 steps)",
            f"{'  fp32 eager':<48} {times['fp32_eager'] * scale:10.2f} {unit}/step",
            f"  fast_vs_fp32_eager = t_eager / t_fast = "
            f"{result['ratios']['fast_vs_fp32_eager']:.2f}",
            f"  {TARGETS}",
        ]
    )
