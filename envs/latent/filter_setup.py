"""What a :class:`~keypoint_wm.envs.latent.online.LatentFilter` and the latent wrappers are
built from: the world model (:func:`resolve_model`: a run, a shipped model's name or a loaded
one), the bounds of the observation its features make (:func:`feature_bounds`) and the torch
threads its work runs on (:func:`torch_threads`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from keypoint_wm.api import WorldModel

__all__ = ["feature_bounds", "resolve_model", "torch_threads"]


@contextlib.contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run the block with ``count`` torch threads (None: unchanged), then restore the count."""
    previous = torch.get_num_threads()
    if count is None or count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def feature_bounds(model: WorldModel, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float32 vectors of the observation built from ``features``.

    Keypoints: x, y in [-1, 1] and the scale in [0, 1]; a CNN-VRNN's per-frame features, which
    take their place, are in [-1, 1] in all three channels; the GRU state in [-1, 1].
    """
    lows, highs = [], []
    for name in features:
        if name == "keypoints":
            k = model.num_keypoints
            scale_low = -1.0 if model.config.model.representation == "cnn" else 0.0
            lows.append(np.tile(np.array([-1, -1, scale_low], np.float32), k))
            highs.append(np.ones(3 * k, np.float32))
        else:
            units = model.config.model.rnn_units
            lows.append(-np.ones(units, np.float32))
            highs.append(np.ones(units, np.float32))
    return np.concatenate(lows), np.concatenate(highs)


def resolve_model(
    run: str | Path | WorldModel | None, device: str | torch.device | None = None
) -> WorldModel:
    """A loaded :class:`~keypoint_wm.api.WorldModel` from a run directory, an exported model,
    the name of a shipped one, or None: the shipped default (:mod:`keypoint_wm.bundled`);
    a WorldModel as given.

    Raises:
        TypeError / FileNotFoundError: naming ``run``.
    """
    if isinstance(run, WorldModel):
        return run
    if run is not None and not isinstance(run, (str, Path)):
        raise TypeError(
            f"run must be a run directory (str or Path), a shipped model's name, None (the "
            f"shipped default) or a keypoint_wm.api.WorldModel, got {type(run).__name__}"
        )
    from keypoint_wm.api import load
    from keypoint_wm.bundled import resolve_run

    folder = resolve_run(run)
    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"run={str(run)!r} is not a run directory written by `keypoint-wm train` "
            "(no config.json)"
        )
    return load(folder, device=device or "cpu", precision="auto")
