"""Rendered frames to the model's square images: an optional crop, then an area resize.

THE frame preparation of environments that render their own frames (``env.render()`` of a
Gymnasium environment made with ``render_mode="rgb_array"``): ``keypoint-wm collect --env``
stores frames made here, and the latent wrappers feed the world model frames made here, so
an agent's model sees what it was trained on.

A :class:`FrameCrop` first cuts the frame (``--crop``): ``"center"`` keeps the central
square of a wide or tall frame, ``"T,B,L,R"`` cuts that many pixels off the top, bottom,
left and right (a letterboxed frame's bars). The rest is then resampled to ``size x size``
by area averaging (each output pixel the mean of the input pixels it covers; PIL's ``BOX``
filter), deterministic for equal input.

>>> crop = FrameCrop.parse("2,2,0,0")
>>> frame = np.zeros((8, 4, 3), np.uint8); frame[2:6] = 200
>>> fit_frames(frame[None], 2, crop)[0, :, :, 0].tolist()
[[200, 200], [200, 200]]
>>> FrameCrop.parse("center").box(6, 10)
(0, 6, 2, 8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FrameCrop", "fit_frames"]


@dataclass(frozen=True)
class FrameCrop:
    """Pixels cut off each side of a frame, or the central square (``center=True``)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0
    center: bool = False

    @classmethod
    def parse(cls, text: str) -> FrameCrop:
        """``"center"`` or ``"T,B,L,R"`` (non-negative ints); ValueError saying what was
        expected otherwise (the caller names its flag)."""
        text = text.strip()
        if text == "center":
            return cls(center=True)
        try:
            values = [int(part) for part in text.split(",")]
        except ValueError:
            values = []
        if len(values) != 4 or min(values) < 0:
            raise ValueError(
                f"expected 'center' or four non-negative pixel counts TOP,BOTTOM,LEFT,RIGHT, "
                f"got {text!r}"
            )
        top, bottom, left, right = values
        return cls(top, bottom, left, right)

    @classmethod
    def from_json(cls, value: Any) -> FrameCrop | None:
        """From :meth:`to_json`'s form (None: no crop)."""
        if value is None:
            return None
        if value == "center":
            return cls(center=True)
        top, bottom, left, right = (int(v) for v in value)
        return cls(top, bottom, left, right)

    def to_json(self) -> str | list[int]:
        """``"center"`` or ``[top, bottom, left, right]`` (what metadata and configs hold)."""
        return "center" if self.center else [self.top, self.bottom, self.left, self.right]

    def box(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the kept region of a ``height x width`` frame.

        Raises:
            ValueError: the crop leaves nothing of such a frame.
        """
        if self.center:
            side = min(height, width)
            y0, x0 = (height - side) // 2, (width - side) // 2
            return y0, y0 + side, x0, x0 + side
        y0, y1, x0, x1 = self.top, height - self.bottom, self.left, width - self.right
        if y1 <= y0 or x1 <= x0:
            raise ValueError(
                f"crop {','.join(map(str, self.to_json()))} leaves nothing of a "
                f"{height}x{width} frame"
            )
        return y0, y1, x0, x1


def fit_frames(frames: np.ndarray, size: int, crop: FrameCrop | None = None) -> np.ndarray:
    """uint8 ``[N, H, W, C]`` (C = 3, or 4 with alpha, dropped) -> uint8 ``[N, size, size, 3]``.

    Crop first (``crop``), then area-resample to ``size x size``; frames already of that size
    and not cropped come back unchanged (the same values).

    Raises:
        ValueError: not uint8 ``[N, H, W, 3|4]`` frames, or a crop that leaves nothing.
    """
    from PIL import Image

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (3, 4):
        raise ValueError(
            f"frames must be uint8 [N, H, W, 3] (RGB), got {frames.dtype} {list(frames.shape)}"
        )
    frames = frames[..., :3]
    if crop is not None:
        y0, y1, x0, x1 = crop.box(frames.shape[1], frames.shape[2])
        frames = frames[:, y0:y1, x0:x1]
    if frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames)
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i, frame in enumerate(frames):
        image = Image.fromarray(np.ascontiguousarray(frame)).resize(
            (size, size), Image.Resampling.BOX
        )
        out[i] = np.asarray(image, dtype=np.uint8)
    return out
