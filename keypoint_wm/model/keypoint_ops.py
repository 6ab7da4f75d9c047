"""Heatmaps <-> keypoints, in the keypoint frame (docs/design.md, "Keypoint frame").

Keypoints are ``(x, y, scale)`` triplets: x in [-1, 1] from left to right, y in [-1, 1]
from bottom to top (**y up**), scale in [0, 1]. The pixel grid of an ``H x W`` map puts
column ``c`` at ``x = -1 + 2 c / (W - 1)`` and row ``r`` at ``y = 1 - 2 r / (H - 1)``, so the
centre of the top-left pixel is (-1, 1) and that of the bottom-right pixel (1, -1).

All functions here compute in float32 whatever the input dtype (they run outside bf16
autocast; see :class:`~keypoint_wm.model.StructVRNN`).
"""

from __future__ import annotations

import torch
from torch import Tensor

EPSILON = 1e-6
"""Numerical-stability constant of the authors' code (added to every heatmap pixel)."""


def x_grid(width: int, device: torch.device | None = None) -> Tensor:
    """``[width]`` x coordinates of pixel columns: linspace(-1, 1), left to right."""
    return torch.linspace(-1.0, 1.0, width, device=device)


def y_grid(height: int, device: torch.device | None = None) -> Tensor:
    """``[height]`` y coordinates of pixel rows: linspace(1, -1), top row is +1 (y up)."""
    return torch.linspace(1.0, -1.0, height, device=device)


def maps_to_keypoints(heatmaps: Tensor, scale_normalization: str = "max") -> Tensor:
    """Reduce non-negative heatmaps to ``(x, y, scale)`` keypoints.

    x is the centre of mass of the map's marginal over rows (a distribution over columns),
    y that of the marginal over columns; each marginal is normalised after adding
    :data:`EPSILON` to every pixel (so an all-zero map gives (0, 0)). The scale is the mean
    of the raw map (paper eq. S3); with ``scale_normalization="max"`` (authors' code) it is
    divided by ``EPSILON + max`` over the K keypoints of the same frame, so it lies in
    [0, 1] and the brightest keypoint has scale ~1.

    Args:
        heatmaps: ``[N, K, H, W]``, values >= 0 (softplus outputs). Cast to float32.
        scale_normalization: ``"max"`` or ``"none"``.

    Returns:
        ``[N, K, 3]`` float32: x, y in [-1, 1] (y up), scale >= 0 (in [0, 1] for "max").
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be [N, K, H, W], got shape {tuple(heatmaps.shape)}")
    maps = heatmaps.float()
    height, width = maps.shape[-2:]
    shifted = maps + EPSILON
    # Marginal over rows -> distribution over columns (x); over columns -> rows (y).
    weights_x = shifted.sum(dim=2)
    weights_x = weights_x / weights_x.sum(dim=-1, keepdim=True)
    weights_y = shifted.sum(dim=3)
    weights_y = weights_y / weights_y.sum(dim=-1, keepdim=True)
    x = (weights_x * x_grid(width, maps.device)).sum(dim=-1)
    y = (weights_y * y_grid(height, maps.device)).sum(dim=-1)
    scale = maps.mean(dim=(2, 3))
    if scale_normalization == "max":
        scale = scale / (EPSILON + scale.amax(dim=1, keepdim=True))
    elif scale_normalization != "none":
        raise ValueError(
            f"scale_normalization must be 'max' or 'none', got {scale_normalization!r}"
        )
    return torch.stack([x, y, scale], dim=-1)


def keypoints_to_maps(
    keypoints: Tensor,
    heatmap_width: int,
    sigma: float | Tensor,
    amplitude: str = "scale",
) -> Tensor:
    """Draw one Gaussian blob per keypoint (paper eq. S4, authors' parameterisation).

    ``map_k(row, col) = a_k * exp(-((gx[col] - x_k)**2 + (gy[row] - y_k)**2) / (2 s**2))``
    with ``s = sigma / heatmap_width`` on the [-1, 1] grid (authors' formula) and
    ``a_k = clamp(scale_k, 0, 1)`` (``amplitude="scale"``, paper) or ``a_k = 1``
    (``amplitude="one"``). The Gaussian is separable and computed as an outer product.

    Args:
        keypoints: ``[N, K, 3]`` (x, y, scale); x, y in [-1, 1] (values outside are fine).
        heatmap_width: Side of the square output maps.
        sigma: Blob width in the authors' unit (``ModelConfig.keypoint_width``).
        amplitude: ``"scale"`` or ``"one"``.

    Returns:
        ``[N, K, heatmap_width, heatmap_width]`` float32 maps with values in [0, 1].
    """
    if keypoints.dim() != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be [N, K, 3], got shape {tuple(keypoints.shape)}")
    keypoints = keypoints.float()
    device = keypoints.device
    two_s2 = 2.0 * (sigma / heatmap_width) ** 2
    x = keypoints[..., 0:1]  # [N, K, 1]
    y = keypoints[..., 1:2]
    gauss_x = torch.exp(-((x_grid(heatmap_width, device) - x) ** 2) / two_s2)  # [N, K, W]
    gauss_y = torch.exp(-((y_grid(heatmap_width, device) - y) ** 2) / two_s2)  # [N, K, H]
    maps = gauss_y.unsqueeze(-1) * gauss_x.unsqueeze(-2)  # [N, K, H, W]
    if amplitude == "scale":
        maps = maps * keypoints[..., 2].clamp(0.0, 1.0)[..., None, None]
    elif amplitude != "one":
        raise ValueError(f"amplitude must be 'scale' or 'one', got {amplitude!r}")
    return maps


def add_coord_channels(images: Tensor) -> Tensor:
    """Append x and y coordinate channels ("CoordConv") to a batch of feature maps.

    Args:
        images: ``[N, C, H, W]`` of any floating dtype.

    Returns:
        ``[N, C + 2, H, W]``: channel C holds x = linspace(-1, 1) along the width, channel
        C + 1 holds y = linspace(1, -1) along the height (y up), in the input's dtype.
    """
    n, _, height, width = images.shape
    xs = x_grid(width, images.device).to(images.dtype).view(1, 1, 1, width)
    ys = y_grid(height, images.device).to(images.dtype).view(1, 1, height, 1)
    coords = torch.cat([xs.expand(n, 1, height, width), ys.expand(n, 1, height, width)], dim=1)
    return torch.cat([images, coords], dim=1)
