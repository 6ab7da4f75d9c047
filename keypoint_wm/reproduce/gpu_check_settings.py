"""The settings of ``reproduce gpu-check`` (every knob, once environment variables of
``scripts/gpu_check.sh``), shared by the protocol (:mod:`~keypoint_wm.reproduce.gpu_check`)
and its page (:mod:`~keypoint_wm.reproduce.gpu_check_page`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from keypoint_wm.reproduce.protocol import OUT

__all__ = ["ROOT", "GpuCheckSettings"]

ROOT = f"{OUT}/gpu-check"
"""Where the check's datasets, runs and figures go under ``--out``."""


@dataclass(frozen=True)
class GpuCheckSettings:
    """Every knob of the GPU check (once environment variables of ``scripts/gpu_check.sh``).

    Attributes:
        device: where every model runs.
        sequences, size: the Basketball draw (sequences of 50 frames, image side).
        steps: training steps of each ``basketball-cpu`` run (its preset has 5500).
        seeds: replicas trained side by side on the one device (``train --seeds``).
        loader_steps: steps of the run fed by the DataLoader (``--data-placement loader``).
        bench_steps: timed steps of ``bench train`` per preset; ``bench_warmup`` untimed
            first; ``bench_batch`` its batch (None: the preset's).
        tracking_samples, video_samples, video_windows: of ``evaluate tracking|video``.
        reward_stride, reward_steps: of ``rewards train`` (frames between windows, steps).
        replay_steps: timed steps of the latent wrapper (``bench replay``).
        tests: the test file run with ``-m cuda``, relative to the repository's root (where
            ``reproduce`` runs).
        smoke: the seconds-long CPU setting (:meth:`smoke_setting`).
    """

    device: str = "cuda"
    sequences: int = 1000
    size: int = 64
    steps: int = 4000
    seeds: int = 3
    loader_steps: int = 1000
    bench_steps: tuple[tuple[str, int], ...] = (("dmcs", 20), ("basketball-cpu", 30))
    bench_warmup: int = 3
    bench_batch: int | None = None
    tracking_samples: int = 50
    video_samples: int = 20
    video_windows: int = 16
    reward_stride: int = 5
    reward_steps: int = 2000
    replay_steps: int = 300
    tests: str = "tests/test_cuda.py"
    smoke: bool = False

    def smoke_setting(self) -> GpuCheckSettings:
        """The same units on the CPU: 12 sequences of 32 x 32, three-step models of
        :data:`~keypoint_wm.presets.SMOKE_OVERRIDES`, one-step benchmarks of batch 2."""
        return replace(
            self,
            device="cpu",
            sequences=12,
            size=32,
            steps=3,
            seeds=2,
            loader_steps=3,
            bench_steps=tuple((preset, 1) for preset, _ in self.bench_steps),
            bench_warmup=0,
            bench_batch=2,
            tracking_samples=2,
            video_samples=2,
            video_windows=2,
            reward_steps=5,
            replay_steps=20,
            smoke=True,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "sequences": self.sequences,
            "size": self.size,
            "preset": "basketball-cpu",
            "steps": self.steps,
            "seeds": self.seeds,
            "loader_steps": self.loader_steps,
            "bench_steps": dict(self.bench_steps),
            "bench_warmup": self.bench_warmup,
            "bench_batch": self.bench_batch,
            "tracking_samples": self.tracking_samples,
            "video_samples": self.video_samples,
            "video_windows": self.video_windows,
            "reward_stride": self.reward_stride,
            "reward_steps": self.reward_steps,
            "replay_steps": self.replay_steps,
            "tests": self.tests,
            "smoke": self.smoke,
        }

    @property
    def data(self) -> str:
        return f"{ROOT}/basketball" + ("-smoke" if self.smoke else "")

    def run(self, name: str) -> str:
        """``{out}/gpu-check/runs/<name>``: ``basketball`` (the run the evaluations read),
        ``seeds`` (a folder of ``seed_<s>/`` replicas) or ``loader``."""
        return f"{ROOT}/runs/{name}"
