"""Where the latent wrapper's step time goes: the bare env, and each part of the model's work.

    python3 scripts/profile_wrapper.py [--envs 1] [--steps 200] [--precision auto]
    scripts/as_avx2.sh python3 scripts/profile_wrapper.py      # as an AVX2-only CPU runs it

Prints the median milliseconds per step of: the bare pixel env's step; the filter's whole
update after the GRU (``LatentFilter.step`` given the finished GRU future); inside it, the
detector on the frames, the posterior step, and the features copied out to numpy; and the
GRU update itself (which the wrappers overlap with the env step); then, in place, a
``LatentObservation`` stepping with 1 and with 2 torch threads for the model (the env's
renderer runs between two model calls, so these differ from the isolated figures). The
model is the one
``keypoint-wm bench wrapper`` times (paper-size DMCS, K 64, untrained weights), or with
``--run`` a trained run or shipped model (``--run default``, as ``bench wrapper --run``). A
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
from keypoint_wm.envs.latent.online import LatentFilter, resolve_model
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
    parser.add_argument("--run", default=None, help="a trained run or shipped model ('default')")
    args = parser.parse_args()

    if args.run is None:
        model, precision = _model("dmcs", 64, 64, 6, 0, args.precision)
    else:
        model = resolve_model(args.run)
        precision = "as loaded (auto)"
    env = make_env(args.task, size=64, action_repeat=2)
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, np.float32)
    n = args.envs
    filt = LatentFilter(model, n)
    frames = np.stack([env.step(action)[0]] * n)
    actions = np.zeros((n, env.action_space.shape[0]), np.float32)
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
    for count in (1, 2):
        timed = _in_place(args.task, model, count, args.steps)
        print(
            f"in place, {count} model thread(s): "
            + ", ".join(f"{name} {value:.3f} ms" for name, value in timed.items())
        )


def _in_place(task: str, model: object, threads: int, steps: int) -> dict[str, float]:
    """Median ms of the env's step, the filter's update and the whole wrapped step."""
    from keypoint_wm.envs.latent.wrapper import LatentObservation

    wrapped = LatentObservation(make_env(task, size=64, action_repeat=2), model)
    wrapped.filter.num_threads = threads
    times: dict[str, list[float]] = {"env": [], "filter": [], "wrapped step": []}

    def timing(name: str, function: Callable[..., object]) -> Callable[..., object]:
        def run(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            result = function(*args, **kwargs)
            times[name].append(time.perf_counter() - start)
            return result

        return run

    wrapped.env.step = timing("env", wrapped.env.step)
    wrapped.filter.step = timing("filter", wrapped.filter.step)
    step = timing("wrapped step", wrapped.step)
    wrapped.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(steps + 20):
        _, _, terminated, truncated, _ = step(rng.uniform(-1, 1, 6).astype(np.float32))
        if terminated or truncated:
            wrapped.reset()
    wrapped.close()
    return {name: 1000.0 * statistics.median(values[20:]) for name, values in times.items()}


def _done(value: torch.Tensor):  # a finished future, as advance_in_background returns
    from concurrent.futures import Future

    future: Future[torch.Tensor] = Future()
    future.set_result(value)
    return future


if __name__ == "__main__":
    main()
