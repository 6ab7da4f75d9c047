"""Shared tiny configurations and synthetic data for the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from keypoint_wm.model import ModelConfig


def _tiny_config(**changes: object) -> ModelConfig:
    """A model small enough for a unit test: 32x32 images, K 4, 8 filters, GRU 32, BoM 3."""
    base = dict(
        image_size=32,
        num_keypoints=4,
        num_encoder_filters=8,
        layers_per_scale=1,
        heatmap_width=16,
        latent_size=8,
        prior_net_size=16,
        posterior_net_size=16,
        decoder_net_size=16,
        rnn_units=32,
        num_bom_samples=3,
        num_observed_steps=3,
        num_predicted_steps=3,
    )
    base.update(changes)
    return ModelConfig(**base)  # type: ignore[arg-type]


def _moving_dots(batch: int, steps: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``[B, T, 3, S, S]`` in [-0.5, 0.5]: two coloured 3x3 dots moving on a grey background."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.full((batch, steps, 3, size, size), -0.3)
    colours = torch.tensor([[0.5, -0.5, -0.5], [-0.5, -0.5, 0.5]])
    start = torch.randint(4, size - 4, (batch, 2, 2), generator=gen).float()
    velocity = torch.randint(-2, 3, (batch, 2, 2), generator=gen).float()
    for t in range(steps):
        pos = (start + velocity * t).clamp(1, size - 2).long()
        for b in range(batch):
            for d in range(2):
                col, row = pos[b, d].tolist()
                images[b, t, :, row - 1 : row + 2, col - 1 : col + 2] = colours[d, :, None, None]
    return images


@pytest.fixture
def tiny_config() -> Callable[..., ModelConfig]:
    """Factory: ``tiny_config(**changes)``."""
    return _tiny_config


@pytest.fixture
def moving_dots() -> Callable[..., torch.Tensor]:
    """Factory: ``moving_dots(batch, steps, size=32, seed=0)``."""
    return _moving_dots


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
