"""Where a training step's time goes: kernel time by operator, and the step under each mode.

    python3 scripts/profile_train_step.py [--preset dmcs] [--device cuda] [--steps 3]

Prints (1) the eager step's operators sorted by device time (torch.profiler), with the number
of kernels per step, and (2) the step time of the fast path (CUDA graph on CUDA) with bf16
autocast and with float32 channels_last image networks, so that compute-bound and
launch-bound parts can be told apart. A development tool; the benchmark of record is
``keypoint-wm bench train``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from keypoint_wm.benchmark import bench_schedule
from keypoint_wm.model.device import resolve_device
from keypoint_wm.model.struct_vrnn import StructVRNN
from keypoint_wm.presets import get_preset
from keypoint_wm.train_step import StepRunner


def build(preset: str, device: torch.device, precision: str):
    run = get_preset(preset).build()
    config = run.model
    if config.action_conditioned:
        config = config.replace(action_size=6)
    torch.manual_seed(0)
    model = StructVRNN(config).to(device).set_precision(precision)
    batch = run.train.batch_size
    frames = torch.randint(0, 256, (batch, config.num_steps, config.image_size,
                                    config.image_size, 3), dtype=torch.uint8, device=device)  # fmt: skip
    actions = None
    if config.action_size:
        actions = torch.rand((batch, config.num_steps, config.action_size), device=device) * 2 - 1
    return model, frames, actions, bench_schedule(run)[1]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fast(preset: str, device: torch.device, precision: str, steps: int) -> float:
    model, frames, actions, schedule = build(preset, device, precision)
    runner = StepRunner(model, 1e-3, 10.0, use_graph=device.type == "cuda")
    times = []
    for i in range(6 + steps):
        sync(device)
        start = time.perf_counter()
        runner.step(frames, actions, None, schedule, 1e-3)
        sync(device)
        if i >= 6:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="dmcs")
    parser.add_argument("--device", default=None)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rows", type=int, default=30)
    args = parser.parse_args()
    device = resolve_device(args.device)
    model, frames, actions, schedule = build(args.preset, device, "bf16")
    runner = StepRunner(model, 1e-3, 10.0, use_graph=False)
    for _ in range(3):
        runner.step(frames, actions, None, schedule, 1e-3)
    sync(device)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(args.steps):
            runner.step(frames, actions, None, schedule, 1e-3)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
    if device.type == "cuda":
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.device_time for e in kernels) / 1e3 / args.steps
        print(f"kernels per step: {len(kernels) / args.steps:.0f}; device busy {busy:.1f} ms/step")
    for precision in ("bf16", "channels_last"):
        seconds = time_fast(args.preset, device, precision, args.steps + 7)
        print(f"fast step, {precision}: {seconds * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
