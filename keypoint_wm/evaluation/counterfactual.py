"""Counterfactuals (paper section 5.3, Figure 5): move observed keypoints, roll out, look.

:func:`counterfactual_rollout` observes ``frames``, shifts chosen keypoints by ``offset``
(ramped over the observed frames, :meth:`~keypoint_wm.api.WorldModel.shift_and_rollout`)
and rolls the future out; the same rollout without the shift is made with the same noise,
so the two differ only by the intervention. :func:`write_counterfactual` renders them side
by side (truth | rollout | counterfactual, keypoints drawn, green borders on observed and
red on predicted frames) as a GIF and a PNG strip.

On an untrained stand-in for ``keypoint_wm.load(RUN)``:

>>> import tempfile
>>> import numpy as np
>>> from keypoint_wm.api import WorldModel
>>> from keypoint_wm.config import RunConfig, TrainConfig
>>> from keypoint_wm.model import ModelConfig, StructVRNN
>>> config = RunConfig("custom", ModelConfig(image_size=16, heatmap_width=8, num_keypoints=4,
...                    num_encoder_filters=4, rnn_units=8, action_size=1), TrainConfig())
>>> model = WorldModel(StructVRNN(config.model), config, step=0, run_dir=None)
>>> frames = np.zeros((1, 4, 16, 16, 3), np.uint8)      # observed frames [B, T0, H, W, 3]
>>> actions = np.zeros((1, 7, 1), np.float32)            # [B, T0 + F, A]
>>> cf = counterfactual_rollout(model, frames, actions, keypoint_index=3, offset=(0.3, 0.0),
...                             num_future=3)
>>> cf.original.shape, cf.shifted.shape                   # uint8 [T0 + F, H, W, 3] each
((7, 16, 16, 3), (7, 16, 16, 3))
>>> path = write_counterfactual(f"{tempfile.mkdtemp()}/counterfactual.gif", cf)
>>> path.name, path.with_suffix(".png").is_file()
('counterfactual.gif', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keypoint_wm import viz
from keypoint_wm.api import WorldModel
from keypoint_wm.conventions import ArrayLike

__all__ = ["Counterfactual", "counterfactual_rollout", "write_counterfactual"]


@dataclass
class Counterfactual:
    """Original and intervened rollouts of one sequence (first batch element, sample 0).

    Attributes:
        truth: uint8 ``[T, S, S, 3]`` the given frames (observed, then the real future if
            given, else repeats of the last observed frame).
        original, shifted: uint8 ``[T, S, S, 3]`` decoded rollouts.
        original_keypoints, shifted_keypoints: ``[T, K, 3]``.
        num_observed: T0.
    """

    truth: np.ndarray
    original: np.ndarray
    shifted: np.ndarray
    original_keypoints: np.ndarray
    shifted_keypoints: np.ndarray
    num_observed: int


def counterfactual_rollout(
    model: WorldModel,
    frames: ArrayLike,
    actions: ArrayLike | None,
    keypoint_index: int | list[int],
    offset: tuple[float, float],
    num_future: int,
    num_observed: int | None = None,
    seed: int = 0,
) -> Counterfactual:
    """Roll out with and without shifting keypoints.

    Args:
        frames: uint8 ``[T, S, S, 3]`` (or ``[1, T, ...]``): the first ``num_observed`` are
            observed; later ones (if any) are shown as the truth.
        actions: ``[T0 + num_future, A]`` (action-conditioned models), episode alignment.
        keypoint_index: which keypoint(s) to move; offset: (dx, dy) in keypoint units.
        num_observed: T0 (default: all given frames).
    """
    frames = np.asarray(frames)
    if frames.ndim == 4:
        frames = frames[None]
    if frames.ndim != 5 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, S, S, 3], got {frames.dtype} {frames.shape}")
    observed = frames.shape[1] if num_observed is None else num_observed
    if not 1 <= observed <= frames.shape[1]:
        raise ValueError(f"num_observed must be in [1, {frames.shape[1]}], got {observed}")
    if actions is not None:
        actions = np.asarray(actions, np.float32)
        actions = actions[None] if actions.ndim == 2 else actions
    indices = [keypoint_index] if isinstance(keypoint_index, int) else list(keypoint_index)
    bad = [i for i in indices if not 0 <= i < model.num_keypoints]
    if bad:
        raise ValueError(f"keypoint_index {bad} out of range [0, {model.num_keypoints})")
    context = frames[:, :observed]
    torch.manual_seed(seed)
    original = model.shift_and_rollout(context, indices, (0.0, 0.0), num_future, 1, actions)
    torch.manual_seed(seed)
    shifted = model.shift_and_rollout(context, indices, offset, num_future, 1, actions)
    total = observed + num_future
    truth = frames[0, :total]
    if len(truth) < total:
        truth = np.concatenate([truth, np.repeat(truth[-1:], total - len(truth), axis=0)])
    assert original.images is not None and shifted.images is not None
    return Counterfactual(
        truth=truth,
        original=original.images[0, 0],
        shifted=shifted.images[0, 0],
        original_keypoints=original.keypoints[0, 0].numpy(),
        shifted_keypoints=shifted.keypoints[0, 0].numpy(),
        num_observed=observed,
    )


def write_counterfactual(path: str | Path, cf: Counterfactual, fps: float = 4.0) -> Path:
    """GIF of truth | rollout | counterfactual per time step (+ a PNG strip beside it)."""
    factor = 4
    truth = viz.upscale(cf.truth, factor)
    panels = [truth]
    for images, keypoints in (
        (cf.original, cf.original_keypoints),
        (cf.shifted, cf.shifted_keypoints),
    ):
        drawn = viz.draw_keypoints(images, keypoints, factor=factor)
        panels.append(viz.mark_observed_predicted(drawn, cf.num_observed))
    gap = np.full((*truth.shape[:2], 2, 3), 255, np.uint8)
    frames = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=2)
    path = Path(path)
    viz.write_gif(path, frames, fps=fps)
    strip = np.concatenate([viz.tile_row(p) for p in panels], axis=0)
    viz.write_png(path.with_suffix(".png"), strip)
    return path
