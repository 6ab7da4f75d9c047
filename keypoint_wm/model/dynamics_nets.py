"""The small networks of the dynamics model and its best-of-many selection.

:class:`GaussianHead` (the prior and the posterior), :class:`KeypointDecoder`, the draw of
reparameterised samples (:func:`draw`) and the choice of the best of them
(:func:`select_best_sample`). :mod:`keypoint_wm.model.dynamics` runs them step by step.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypoint_wm.model.image_nets import he_uniform_

STD_EPSILON = 1e-4


class Belief(NamedTuple):
    """A diagonal Gaussian over z: ``mean`` and ``std`` ``[B, Z]`` (std > 0)."""

    mean: Tensor
    std: Tensor


def _dense(in_features: int, out_features: int, he: bool, bias: bool = True) -> nn.Linear:
    """Dense layer with Keras init: He-uniform (hidden, ReLU) or Glorot-uniform (heads)."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    if he:
        he_uniform_(layer.weight)
    else:
        nn.init.xavier_uniform_(layer.weight)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class GaussianHead(nn.Module):
    """MLP ``[.., in] -> (mean, std)`` ``[.., Z]``: Dense(units, ReLU), two Dense heads."""

    def __init__(self, in_features: int, units: int, latent_size: int) -> None:
        super().__init__()
        self.hidden = _dense(in_features, units, he=True)
        self.mean = _dense(units, latent_size, he=False)
        self.std = _dense(units, latent_size, he=False)

    def forward(self, x: Tensor) -> Belief:
        a = F.relu(self.hidden(x))
        return Belief(self.mean(a), F.softplus(self.std(a)) + STD_EPSILON)


class KeypointDecoder(nn.Module):
    """``tanh(Dense(ReLU(Dense([h, z]))))`` to ``[.., D]``.

    The first layer is split into an h part and a z part (the same function as a Dense on
    the concatenation, He-uniform with fan_in = H + Z) so that N best-of-many samples
    ``z [N, B, Z]`` share one ``h [B, H]`` product.
    """

    def __init__(self, hidden_size: int, latent_size: int, units: int, out_size: int) -> None:
        super().__init__()
        fan_in = hidden_size + latent_size
        self.from_h = nn.Linear(hidden_size, units)
        he_uniform_(self.from_h.weight, fan_in)
        nn.init.zeros_(self.from_h.bias)
        self.from_z: nn.Linear | None = None
        if latent_size:
            self.from_z = nn.Linear(latent_size, units, bias=False)
            he_uniform_(self.from_z.weight, fan_in)
        self.out = _dense(units, out_size, he=False)

    def forward(self, h: Tensor, z: Tensor | None = None) -> Tensor:
        """``h [B, H]``, ``z [B, Z]`` or ``[N, B, Z]`` -> ``[B, D]`` or ``[N, B, D]``."""
        a = self.from_h(h)
        if z is not None and self.from_z is not None:
            a = a + self.from_z(z)
        return torch.tanh(self.out(F.relu(a)))


def draw(belief: Belief, noise: Tensor | None, sample: bool) -> Tensor:
    """z from ``belief`` (``[B, Z]``): ``mean + std * noise`` or, without ``sample``, the mean.

    ``noise`` is ``[B, Z]`` (one sample) or ``[N, B, Z]`` (N samples: z is ``[N, B, Z]``);
    None draws one ``[B, Z]`` with ``torch.randn_like`` (the global generator).
    """
    if not sample:
        return belief.mean
    if noise is None:
        noise = torch.randn_like(belief.std)
    return belief.mean + belief.std * noise


def select_best_sample(
    samples: Tensor, target: Tensor, latents: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Best-of-many selection (paper eq. 8).

    Args:
        samples: ``[N, B, D]`` decoded samples.
        target: ``[B, D]`` detected keypoints.
        latents: ``[N, B, Z]`` the z each sample was decoded from.

    Returns:
        ``(index [B], chosen [B, D], chosen_latent [B, Z])``: the sample with the smallest
        mean squared error to the target (over D, including the scale channel) and its z,
        gathered so that only they are in the graph.
    """
    errors = (samples - target.unsqueeze(0)).pow(2).mean(dim=-1)  # [N, B]
    index = errors.argmin(dim=0)
    rows = torch.arange(samples.shape[1], device=samples.device)
    return index, samples[index, rows], latents[index, rows]
