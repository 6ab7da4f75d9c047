"""``keypoint-wm reproduce NAME``: one command per published result.

Each NAME is a protocol (:mod:`keypoint_wm.reproduce.protocol`): a list of units, each one
``keypoint-wm`` command, whose results are recorded as small JSON files under
``docs/results/<NAME>/`` and pooled into the page ``docs/results/<NAME>.md``
(:mod:`keypoint_wm.reproduce.runner`). This module is the registry the command line reads
while it builds its parser, so it imports nothing heavy: each protocol is built when run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keypoint_wm.reproduce.protocol import Protocol

__all__ = ["TARGETS", "Target", "build"]


@dataclass(frozen=True)
class Target:
    """A ``reproduce`` NAME: what it publishes and what it costs."""

    name: str
    summary: str
    cpu_cost: str
    gpu_cost: str
    module: str

    def help_line(self) -> str:
        return (
            f"{self.name}: {self.summary} (2-core CPU: {self.cpu_cost}; one GPU: {self.gpu_cost})"
        )


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target(
            "bench-cpu",
            "the CPU benchmarks: latent wrapper against the bare env (untrained paper-size "
            "model, and the shipped default model), the training step (basketball-cpu, "
            "paper-size dmcs) against fp32 eager, the collector; native and AVX2-capped",
            "about 20 min, each benchmark alone on the machine (15 min measured without the two default-model wrapper units)",
            "not applicable (a CPU benchmark)",
            "keypoint_wm.reproduce.bench_cpu",
        ),
        Target(
            "discovery",
            "object discovery on new Basketball draws: tracking R^2 per object, 3 draws x 2 "
            "training seeds of basketball-cpu",
            "about 2 h: 6 models of 5500 steps (136 ms/step with AVX-512 BF16, about twice "
            "that on AVX2 alone) and their tracking",
            "not measured",
            "keypoint_wm.reproduce.discovery",
        ),
        Target(
            "rewards",
            "the reward-prediction table (paper Fig. 8), like for like: Struct-VRNN and "
            "CNN-VRNN heads reading h_{t-1}, and h_{t-1} plus the model's own frame "
            "representation, on 300 held-out episodes per task",
            "about 7 h: the 6-task collection and 300 held-out episodes per task (about 1.5 h), "
            "6 world models (about 20 min each alone, 50 min beside other units), 6 score units "
            "of two sets of six heads (54 min on one thread beside three other units; 18 min "
            "when the heads exist)",
            "not measured",
            "keypoint_wm.reproduce.rewards",
        ),
        Target(
            "state-probe",
            "what the latent knows: test R^2 of a ridge probe from the filtered latent to the "
            "physics state, per task, positions and velocities apart",
            "the 6-task collection (22 min with AMX to about 35 min, shared with the other "
            "DMCS targets), then per variant 3 world models (a dmcs-cpu model 12-13 min "
            "alone with AMX, 20 min on AVX-512 BF16 without it, about 30 min each when two "
            "share the cores; the 8 + 8 candidate about twice that) and 3 probes (6-7 min "
            'each); docs/measurements.md, "what the frames can tell"',
            "not measured",
            "keypoint_wm.reproduce.state_probe",
        ),
        Target(
            "dream-fidelity",
            "do imagined returns follow the real ones: correlation of imagined with real "
            "returns of scripted policies per task, and the imagined keypoints' error",
            "the state-probe's collection and world models (shared in one --out), then per "
            "world model its reward heads and the rollouts (not yet timed)",
            "not measured",
            "keypoint_wm.reproduce.dream_fidelity",
        ),
        Target(
            "agents",
            "SAC at 100,000 environment steps on reacher-easy, walker-walk, cheetah-run and "
            "cartpole-balance: the latent state against the true state, the dream and random "
            "(3 agent seeds), beside the published pixel SAC and CURL",
            "no world model is trained (the agents read the shipped default model); the shared "
            "collection (the dream's start frames), then 48 agent units (4 tasks x 4 variants x "
            "3 seeds) of 100,000 environment steps each, on one thread beside another unit "
            "(AMD EPYC, 2026-12-07): random under a minute, state 20-35 min, latent 45-70 min, "
            "dream about 75 min, so about 30 core-hours (15 h with two side by side)",
            "not measured",
            "keypoint_wm.reproduce.agents",
        ),
        Target(
            "gym-envs",
            "the pipeline on Gymnasium environments nobody tuned it on: HalfCheetah-v5's state "
            "probe (3 world-model seeds; one more with a closer camera) and Pong's keypoints "
            "and RAM probe",
            "about 4.5 h: the three collections (each HalfCheetah-v5's 200 episodes 35-52 min "
            "beside other work, Pong's 2 min), 5 world models (50-70 min each on one thread "
            "beside other work; a dmcs-cpu model is about 25 min alone on two) and their "
            "probes (2-3 min each)",
            "not measured",
            "keypoint_wm.reproduce.gym_envs",
        ),
        Target(
            "video",
            "video prediction on the Human3.6M stand-in (paper Fig. 6): PSNR and SSIM of the "
            "closest of 100 sampled futures against copying the last frame, 3 seeds of "
            "human36m-cpu",
            "the stand-in's 1,000 sequences (a few minutes), 3 models of 6,000 steps (26 min "
            "each alone with AVX-512 BF16 and AMX, 2026-11-30; not yet timed as this target) "
            "and their evaluations",
            "not measured",
            "keypoint_wm.reproduce.video",
        ),
        Target(
            "default-model",
            "the world model shipped in the package (keypoint_wm.load()): the chosen variant's "
            "seed 0 exported in float16 with its reward heads, and the state probe, tracking "
            "and dream fidelity of the export",
            "the shared collection and world model, then its heads, the export and four "
            "evaluations (not yet timed)",
            "not measured",
            "keypoint_wm.reproduce.default_model",
        ),
        Target(
            "gpu-check",
            "the CUDA path end to end on one GPU: the cuda-marked tests, the training-step "
            "benchmarks, basketball-cpu runs (data on the device, 3 replicas, the DataLoader) "
            "and, on the first, tracking, video, reward heads and the latent wrapper",
            "not applicable: it refuses without a GPU (--smoke runs its units on the CPU, "
            "tiny, in about 1 min)",
            "about 4 to 6 min as scripts/gpu_check.sh's parts on one H200 (2026-11-30, "
            "docs/measurements.md); not yet timed as this target",
            "keypoint_wm.reproduce.gpu_check",
        ),
    )
}
"""Every NAME, in ``--help`` order."""


def build(name: str, smoke: bool = False) -> Protocol:
    """The protocol of ``name`` (``smoke``: its seconds-long setting)."""
    module = importlib.import_module(TARGETS[name].module)
    return module.protocol(smoke=smoke)
