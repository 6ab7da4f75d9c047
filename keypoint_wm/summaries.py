"""What a training run shows: TensorBoard scalars, keypoint overlays and prediction strips.

Scalars: every loss term (``loss/<term>``, unweighted, plus ``loss/total``), the learning
rate, steps/s, the gradient norm and the schedules. Pictures (TensorBoard images and files
under ``RUN/media/``): the detected keypoints drawn on the frames, and observed + predicted
frames beside the truth with green (observed) and red (predicted) borders, as a PNG strip
and as an animated GIF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from keypoint_wm import viz
from keypoint_wm.conventions import images_to_uint8
from keypoint_wm.model.struct_vrnn import StructVRNN


class RunLogger:
    """TensorBoard event files and media for one run (a no-op on non-main ranks)."""

    def __init__(self, run_dir: Path, config: Any, enabled: bool = True, max_sequences: int = 2):
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self.config = config
        self.max_sequences = max_sequences
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def scalars(
        self,
        step: int,
        terms: dict[str, float],
        lr: float,
        steps_per_second: float,
        schedule: Any,
        grad_norm: float,
    ) -> None:
        if self.writer is None:
            return
        for name, value in terms.items():
            self.writer.add_scalar(f"loss/{name}", value, step)
        self.writer.add_scalar("train/learning_rate", lr, step)
        self.writer.add_scalar("train/steps_per_second", steps_per_second, step)
        self.writer.add_scalar("train/grad_norm", grad_norm, step)
        self.writer.add_scalar("schedule/kl_scale", schedule.kl_scale, step)
        self.writer.add_scalar(
            "schedule/p_own_sample_observed", schedule.p_own_sample_observed, step
        )
        self.writer.add_scalar(
            "schedule/p_own_sample_predicted", schedule.p_own_sample_predicted, step
        )

    def probe(self, step: int, r2: np.ndarray) -> None:
        """Held-out tracking probe: R^2 per object and the worst one."""
        if self.writer is None:
            return
        self.writer.add_scalar("probe/r2_min", float(r2.min()), step)
        for i, value in enumerate(r2):
            self.writer.add_scalar(f"probe/r2_{i}", float(value), step)

    @torch.no_grad()
    def media(
        self,
        step: int,
        model: StructVRNN,
        images: torch.Tensor,
        actions: torch.Tensor | None,
        batch: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Keypoint overlays and observed + predicted frames for the first sequences."""
        if self.writer is None:
            return
        was_training = model.training
        model.eval()
        # Sampling for pictures must not consume the training RNG: a run resumed after a
        # checkpoint that drew pictures would otherwise diverge from an uninterrupted one.
        with torch.random.fork_rng(devices=[]):
            try:
                n = self.max_sequences
                pictures = render_media(model, images[:n], None if actions is None else actions[:n])
            finally:
                model.train(was_training)
        media = self.run_dir / "media"
        overlay = np.concatenate([viz.tile_row(seq) for seq in pictures["overlay"]], axis=0)
        strip = np.concatenate(list(pictures["strip"]), axis=0)
        self.writer.add_image("keypoints/overlay", overlay, step, dataformats="HWC")
        self.writer.add_image("prediction/truth_vs_predicted", strip, step, dataformats="HWC")
        viz.write_png(media / "keypoints.png", overlay)
        viz.write_png(media / "prediction.png", strip)
        viz.write_gif(media / "keypoints.gif", pictures["overlay"][0], fps=4)
        viz.write_gif(media / "prediction.gif", pictures["side_by_side"][0], fps=4)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def render_media(
    model: StructVRNN, images: torch.Tensor, actions: torch.Tensor | None
) -> dict[str, list[np.ndarray]]:
    """Pictures of what the model sees and predicts.

    Args:
        images: ``[B, T, 3, H, W]`` in [-0.5, 0.5] (T = observed + predicted steps).
        actions: ``[B, T, A]`` or None.

    Returns:
        ``overlay``: per sequence uint8 ``[T, 4H, 4W, 3]`` frames with detected keypoints;
        ``strip``: per sequence uint8 image, truth above observed/predicted reconstructions;
        ``side_by_side``: per sequence uint8 ``[T, 4H, 8W+1, 3]`` GIF frames.
    """
    cfg = model.config
    observed = min(cfg.num_observed_steps, images.shape[1])
    future = images.shape[1] - observed
    keypoints, _ = model.detect(images)
    rollout = model.rollout(
        images[:, :observed],
        actions[:, : observed + future] if actions is not None and cfg.action_size else None,
        num_future=future,
        num_samples=1,
        decode_images=True,
    )
    assert rollout.images is not None  # decode_images=True
    truth = images_to_uint8(images)
    predicted = images_to_uint8(rollout.images[:, 0])
    decoded = viz.as_drawn(rollout.decoded_keypoints[:, 0].float().cpu().numpy(),
                           cfg.heatmap_amplitude)  # fmt: skip
    detected = viz.as_drawn(keypoints.float().cpu().numpy(), cfg.heatmap_amplitude)
    result: dict[str, list[np.ndarray]] = {"overlay": [], "strip": [], "side_by_side": []}
    for b in range(images.shape[0]):
        if cfg.representation == "keypoints":
            result["overlay"].append(viz.draw_keypoints(truth[b], detected[b]))
            drawn = viz.draw_keypoints(predicted[b], decoded[b], factor=2)
        else:
            result["overlay"].append(viz.upscale(truth[b], 4))
            drawn = viz.upscale(predicted[b], 2)
        top = viz.tile_row(viz.upscale(truth[b], 2))
        bottom = viz.tile_row(viz.mark_observed_predicted(drawn, observed))
        gap = np.full((1, top.shape[1], 3), 255, np.uint8)
        result["strip"].append(np.concatenate([top, gap, bottom], axis=0))
        result["side_by_side"].append(viz.side_by_side_frames(truth[b], predicted[b], observed))
    return result
