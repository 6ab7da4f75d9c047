"""The keypoint frame, used everywhere (docs/design.md, "Keypoint frame").

Keypoints are ``(x, y, scale)`` with x and y in [-1, 1], **y pointing up**, scale in [0, 1].
Pixel (col, row) of an S x S image maps to ``x = col / (S - 1) * 2 - 1`` and
``y = 1 - row / (S - 1) * 2``: the top-left pixel centre is (-1, 1), the bottom-right
(1, -1).

>>> pixel_to_keypoint(np.array([[0.0, 0.0], [63.0, 63.0]]), size=64).tolist()
[[-1.0, 1.0], [1.0, -1.0]]
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
"""numpy array or torch tensor, as the public API accepts them."""


def pixel_to_keypoint(col_row: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Map pixel coordinates ``[..., 2]`` as (col, row) to the keypoint frame ``[..., 2]``.

    ``size`` is S for an S x S image or ``(height, width)``.
    """
    height, width = (size, size) if isinstance(size, int) else size
    col_row = np.asarray(col_row, dtype=np.float64)
    x = col_row[..., 0] / (width - 1) * 2.0 - 1.0
    y = 1.0 - col_row[..., 1] / (height - 1) * 2.0
    return np.stack([x, y], axis=-1)


def keypoint_to_pixel(xy: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Inverse of :func:`pixel_to_keypoint`: ``[..., 2]`` (x, y) to (col, row) pixels."""
    height, width = (size, size) if isinstance(size, int) else size
    xy = np.asarray(xy, dtype=np.float64)
    col = (xy[..., 0] + 1.0) / 2.0 * (width - 1)
    row = (1.0 - xy[..., 1]) / 2.0 * (height - 1)
    return np.stack([col, row], axis=-1)


def frames_to_tensor(frames: ArrayLike, device: torch.device) -> torch.Tensor:
    """uint8 ``[B, T, H, W, 3]`` (numpy or torch) -> float ``[B, T, 3, H, W]`` in [-0.5, 0.5]."""
    tensor = torch.as_tensor(frames)
    if tensor.dtype != torch.uint8 or tensor.dim() != 5 or tensor.shape[-1] != 3:
        raise ValueError(
            f"frames must be uint8 [B, T, H, W, 3], got {tensor.dtype} {list(tensor.shape)}"
        )
    return tensor.to(device).permute(0, 1, 4, 2, 3).float().div(255.0).sub(0.5)


def images_to_uint8(images: torch.Tensor) -> np.ndarray:
    """float ``[..., 3, H, W]`` in [-0.5, 0.5] -> uint8 ``[..., H, W, 3]``."""
    scaled = ((images.detach().float().cpu() + 0.5) * 255.0).clamp(0, 255).round()
    return scaled.to(torch.uint8).movedim(-3, -1).numpy()
