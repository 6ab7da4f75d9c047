"""Pictures people would rather look at than read: keypoint overlays and prediction strips.

All functions take and return uint8 numpy images ``[..., H, W, 3]``; keypoints are in the
keypoint frame (x, y in [-1, 1], y up; scale in [0, 1]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from keypoint_wm.conventions import keypoint_to_pixel

OBSERVED_COLOUR = (40, 180, 40)  # green border: observed frames (as in the paper's figures)
PREDICTED_COLOUR = (220, 40, 40)  # red border: predicted frames


def keypoint_colours(num_keypoints: int) -> np.ndarray:
    """Distinct, saturated colours ``[K, 3]`` uint8 (evenly spaced hues)."""
    hue = np.arange(num_keypoints) / max(num_keypoints, 1)
    k = (np.array([5.0, 3.0, 1.0])[None] + hue[:, None] * 6.0) % 6.0
    rgb = 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return (rgb * 255).astype(np.uint8)


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of ``[..., H, W, 3]`` by an integer factor."""
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def as_drawn(keypoints: np.ndarray, amplitude: str) -> np.ndarray:
    """Keypoints ``[..., K, 3]`` with the scale :func:`draw_keypoints` should show: the
    model's ``heatmap_amplitude``. With ``"one"`` the reconstructor draws every keypoint at
    full strength whatever its scale (a sparsity loss drives all scales but the largest
    toward 0), so each is drawn opaque; with ``"scale"`` the scale is the strength.

    >>> dim = np.array([[0.1, 0.2, 0.003]])
    >>> float(as_drawn(dim, "one")[0, 2]), float(as_drawn(dim, "scale")[0, 2])
    (1.0, 0.003)
    """
    if amplitude == "scale":
        return keypoints
    drawn = np.array(keypoints, dtype=np.float32, copy=True)
    drawn[..., 2] = 1.0
    return drawn


def draw_keypoints(
    images: np.ndarray,
    keypoints: np.ndarray,
    factor: int = 4,
    radius: float = 2.5,
    min_scale: float = 0.05,
) -> np.ndarray:
    """Draw keypoints as filled discs on (upscaled) frames.

    Args:
        images: uint8 ``[T, H, W, 3]``.
        keypoints: ``[T, K, 3]`` (x, y, scale); keypoints with scale < ``min_scale`` are
            skipped, others are blended with opacity = scale.
        factor: integer upscaling so that dots stay visible on 64x64 frames.
        radius: disc radius in output pixels.

    Returns:
        uint8 ``[T, H*factor, W*factor, 3]``.
    """
    out = upscale(images, factor).astype(np.float32)
    height, width = out.shape[1:3]
    colours = keypoint_colours(keypoints.shape[1]).astype(np.float32)
    rows, cols = np.mgrid[0:height, 0:width]
    for t in range(out.shape[0]):
        pixels = keypoint_to_pixel(keypoints[t, :, :2], (height, width))
        for k, (col, row) in enumerate(pixels):
            scale = float(np.clip(keypoints[t, k, 2], 0.0, 1.0))
            if scale < min_scale:
                continue
            inside = (cols - col) ** 2 + (rows - row) ** 2 <= radius**2
            ring = inside & ((cols - col) ** 2 + (rows - row) ** 2 > (radius - 1.0) ** 2)
            out[t][inside] = (1 - scale) * out[t][inside] + scale * colours[k]
            out[t][ring] = 0.0
    return out.round().astype(np.uint8)


def add_border(images: np.ndarray, colour: tuple[int, int, int], width: int = 2) -> np.ndarray:
    """A coloured border of ``width`` pixels inside each frame ``[..., H, W, 3]``."""
    out = images.copy()
    out[..., :width, :, :] = colour
    out[..., -width:, :, :] = colour
    out[..., :, :width, :] = colour
    out[..., :, -width:, :] = colour
    return out


def mark_observed_predicted(frames: np.ndarray, num_observed: int, width: int = 2) -> np.ndarray:
    """Green borders on the first ``num_observed`` frames, red on the rest."""
    out = frames.copy()
    out[:num_observed] = add_border(frames[:num_observed], OBSERVED_COLOUR, width)
    out[num_observed:] = add_border(frames[num_observed:], PREDICTED_COLOUR, width)
    return out


def tile_row(frames: np.ndarray, gap: int = 1) -> np.ndarray:
    """``[T, H, W, 3]`` -> one image ``[H, T*W + (T-1)*gap, 3]`` on a white background."""
    count, height, width = frames.shape[:3]
    canvas = np.full((height, count * width + (count - 1) * gap, 3), 255, np.uint8)
    for t in range(count):
        canvas[:, t * (width + gap) : t * (width + gap) + width] = frames[t]
    return canvas


def side_by_side_frames(
    truth: np.ndarray, predicted: np.ndarray, num_observed: int, factor: int = 4
) -> np.ndarray:
    """Per time step: truth beside the (bordered) prediction, ``[T, H*f, 2*W*f + 1, 3]``."""
    left = upscale(truth, factor)
    right = mark_observed_predicted(upscale(predicted, factor), num_observed)
    gap = np.full((*left.shape[:2], 1, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=2)


def write_gif(path: str | Path, frames: np.ndarray, fps: float = 4.0) -> Path:
    """Write ``[T, H, W, 3]`` uint8 frames as a looping GIF."""
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, list(frames), extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def write_png(path: str | Path, image: np.ndarray) -> Path:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, image, extension=".png")
    return path


def write_figure(fig: Any, path: str | Path, dpi: float | None = None) -> Path:
    """Write a matplotlib figure in the format its path's suffix names (matplotlib's
    ``savefig``, written in place; ``dpi`` None: matplotlib's default), making its folder,
    and close it. For a PNG that a reader must never see half-written:
    :func:`save_figure`."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_figure(fig: Any, path: str | Path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as a PNG so that a reader never sees a partial file
    (rendered in memory, then :func:`keypoint_wm.data.atomic.atomic_write_bytes`), and
    close it."""
    import io

    import matplotlib.pyplot as plt

    from keypoint_wm.data.atomic import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return path
