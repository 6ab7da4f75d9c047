"""Helpers shared by the tests (importable because pytest puts tests/ on sys.path)."""

from __future__ import annotations

from typing import Any

TINY_OVERRIDES = {
    "model.image_size": 32,
    "model.heatmap_width": 8,
    "model.num_keypoints": 4,
    "model.num_encoder_filters": 4,
    "model.rnn_units": 16,
    "model.latent_size": 4,
    "model.prior_net_size": 8,
    "model.posterior_net_size": 16,
    "model.decoder_net_size": 16,
    "model.num_bom_samples": 3,
    "model.num_observed_steps": 3,
    "model.num_predicted_steps": 2,
    "train.batch_size": 2,
    "train.precision": "fp32",
    "train.data_workers": 0,
    "train.log_every": 1,
    "train.image_every": 1000,
    "train.checkpoint_every": 2,
    "train.lr_halving_steps": 3,
    "train.kl_annealing_steps": 3,
    "train.scheduled_sampling_steps": 4,
}


def tiny_config(steps: int, preset: str = "basketball-cpu", **extra):
    """A seconds-to-train config of the real model on 32x32 frames."""
    from keypoint_wm.presets import get_preset

    overrides = {**TINY_OVERRIDES, "train.steps": steps, **extra}
    return get_preset(preset).build(seed=3).with_overrides(overrides)


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key of a JSON value as a dotted path (``[]`` marks a list's elements)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            paths |= {path} | key_paths(item, path)
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
    return paths
