"""Where the latent wrapper's step time goes: the bare env, and each part of the model's work.

    python3 scripts/profile_wrapper.py [--envs 1] [--steps 200] [--precision auto]
    scripts/as_avx2.sh python3 scripts/profile_wrapper.py      # as an AVX2-only CPU runs it

Prints the median milliseconds per step of: the bare pixel env's step; the filter's whole
update after the GRU (``LatentFilter.step`` given the finished GRU future); inside it, the
detector on the frames, the posterior step, and the features copied out to numpy; and the
GRU update itself (which the wrappers overlap with the env step). The model is the one
``keypoint-wm bench wrapper`` times (paper-size DMCS, K 64, untrained weights). A
development tool; the benchmark of record is ``keypoint-wm bench wrapper``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import torch

from keypoint_wm.conventions import frames_to_tensor
from keypoint_wm.envs.benchmark import _model
from keypoint_wm.envs.latent.online import LatentFilter
from keypoint_wm.envs.registration import make_env


def median_ms(run: Callable[[], object], steps: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--task", default="cheetah-run")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    model, precision = _model("dmcs", 64, 64, 6, 0, args.precision)
    env = make_env(args.task, size=64, action_repeat=2)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, np.float32)
    n = args.envs
    filt = LatentFilter(model, n)
    frames = np.stack([env.step(action)[0]] * n)
    actions = np.zeros((n, 6), np.float32)
    filt.reset(frames)
    threads = filt.num_threads or torch.get_num_threads()

    def in_threads(run: Callable[[], object]) -> Callable[[], object]:
        def wrapped() -> object:
            with torch.no_grad():
                previous = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    return run()
                finally:
                    torch.set_num_threads(previous)

        return wrapped

    images = frames_to_tensor(torch.from_numpy(frames)[:, None], filt.device)[:, 0]
    keypoints = filt.detector(images)
    hidden = filt.hidden
    parts = {
        "bare env step (one env)": lambda: env.step(action),
        "filter.step after the GRU": lambda: filt.step(
            None, frames, advanced=_done(filt.advance(actions))
        ),
        "  frames -> tensor": in_threads(
            lambda: frames_to_tensor(torch.from_numpy(frames)[:, None], filt.device)
        ),
        "  detector": in_threads(lambda: filt.detector(images)),
        "  posterior step": in_threads(
            lambda: filt.dynamics.posterior_step(
                hidden, keypoints.flatten(1), False, noise=None, sample=False, with_prior=False
            )
        ),
        "  observations + keypoints to numpy": lambda: (
            filt.observations(),
            filt.keypoints_numpy(),
        ),
        "GRU update (overlapped with the env)": in_threads(lambda: filt.advance(actions)),
    }
    print(
        f"{n} env(s), precision {precision}, {threads} torch thread(s) for the model, "
        f"ATen {torch.backends.cpu.get_cpu_capability()}"
    )
    for name, run in parts.items():
        print(f"{name:<40}{median_ms(run, args.steps):>9.3f} ms")
    filt.close()
    env.close()


def _done(value: torch.Tensor):  # a finished future, as advance_in_background returns
    from concurrent.futures import Future

    future: Future[torch.Tensor] = Future()
    future.set_result(value)
    return future


if __name__ == "__main__":
    main()
