"""Named presets, as data (DreamerV3 style).

``basketball``, ``human36m`` and ``dmcs`` reproduce Table S1 of the paper (batch 32,
1e5 steps, Adam 1e-3 halved every 3e4 steps, KL annealed over 2.5e4 steps, scheduled
sampling ramped over the whole run). They are GPU jobs.

The ``*-cpu`` presets do real learning in minutes on a 2-core CPU. They keep the paper's
architecture and losses but shrink the budget: fewer steps with every schedule scaled to
that budget, a smaller batch, and where stated the changes that make every object's
keypoint light up within a small budget (DESIGN.md, "Known pitfall"); each preset's
``note`` says what differs from the paper and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keypoint_wm.config import RunConfig, TrainConfig
from keypoint_wm.model.config import ModelConfig


@dataclass(frozen=True)
class Preset:
    """A named starting point: model and training settings plus a note on its provenance."""

    name: str
    note: str
    model: dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    action_conditioned: bool = False

    def build(self, seed: int = 0) -> RunConfig:
        return RunConfig(
            preset=self.name,
            model=ModelConfig(**self.model),
            train=TrainConfig(**self.train),
            seed=seed,
        )


_PAPER_TRAIN = dict(
    steps=100_000,
    batch_size=32,
    learning_rate=1e-3,
    lr_halving_steps=30_000,
    kl_annealing_steps=25_000,
    scheduled_sampling_steps=100_000,
    probe_every=2_000,
)

_BASKETBALL = dict(
    num_keypoints=12,
    layers_per_scale=1,
    sparsity_loss_scale=0.1,
    separation_loss_scale=0.1,
    separation_loss_width=0.02,
    keypoint_width=1.5,
    latent_size=16,
    kl_beta=0.01,
    prior_net_size=16,
    posterior_net_size=128,
    rnn_units=512,
    num_bom_samples=50,
)
_HUMAN36M = dict(
    num_keypoints=48,
    layers_per_scale=2,
    sparsity_loss_scale=0.01,
    separation_loss_scale=0.02,
    separation_loss_width=0.002,
    keypoint_width=1.5,
    latent_size=16,
    kl_beta=0.01,
    prior_net_size=4,
    posterior_net_size=128,
    rnn_units=512,
    num_bom_samples=50,
)
_DMCS = dict(
    num_keypoints=64,
    layers_per_scale=1,
    sparsity_loss_scale=5.0,
    separation_loss_scale=0.1,
    separation_loss_width=0.02,
    keypoint_width=1.5,
    latent_size=128,
    kl_beta=3e-3,
    prior_net_size=16,
    posterior_net_size=128,
    rnn_units=512,
    num_bom_samples=50,
)

# Budget of the CPU presets: about 20-30 minutes on 2 cores with bf16 + channels_last.
_CPU_TRAIN = dict(
    steps=2_000,
    batch_size=16,
    learning_rate=1e-3,
    lr_halving_steps=800,
    kl_annealing_steps=500,
    scheduled_sampling_steps=2_000,
    log_every=20,
    image_every=250,
    checkpoint_every=250,
    probe_every=100,
)

PRESETS: dict[str, Preset] = {
    "basketball": Preset(
        "basketball", "Table S1, Basketball column (GPU: 1e5 steps).", _BASKETBALL, _PAPER_TRAIN
    ),
    "human36m": Preset(
        "human36m", "Table S1, Human3.6M column (GPU: 1e5 steps).", _HUMAN36M, _PAPER_TRAIN
    ),
    "dmcs": Preset(
        "dmcs",
        "Table S1, DMCS column (GPU: 1e5 steps); action-conditioned, one model for all tasks "
        "with actions zero-padded to the largest action size.",
        _DMCS,
        _PAPER_TRAIN,
        action_conditioned=True,
    ),
    "basketball-cpu": Preset(
        "basketball-cpu",
        "Basketball in minutes on a CPU: Table S1 losses and architecture, 2,000 steps of "
        "batch 16 with schedules scaled to that budget.",
        {**_BASKETBALL, "num_bom_samples": 10},
        _CPU_TRAIN,
    ),
    "human36m-cpu": Preset(
        "human36m-cpu",
        "Human3.6M / figure stand-in in minutes on a CPU: Table S1 losses, 1 layer per scale, "
        "K 24, 2,000 steps of batch 16 with schedules scaled to that budget.",
        {**_HUMAN36M, "num_keypoints": 24, "layers_per_scale": 1, "num_bom_samples": 10},
        _CPU_TRAIN,
    ),
    "dmcs-cpu": Preset(
        "dmcs-cpu",
        "DMCS in minutes on a CPU: Table S1 losses, K 32, 2,000 steps of batch 16 with "
        "schedules scaled to that budget; action-conditioned.",
        {**_DMCS, "num_keypoints": 32, "num_bom_samples": 10},
        _CPU_TRAIN,
        action_conditioned=True,
    ),
}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"--preset: unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
