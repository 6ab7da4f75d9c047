"""The training objective of :class:`~keypoint_wm.model.StructVRNN` (paper eq. 9).

:meth:`StructVRNN.forward <keypoint_wm.model.StructVRNN.forward>` computes every term for a
training batch:

======================  ======================================  ============================
term                    what                                    weight
======================  ======================================  ============================
``image``               image L2 of the reconstruction from     ``image_loss_scale``
                        the detected keypoints, all frames
``separation``          temporal separation of the detected     ``separation_loss_scale``
                        keypoints (observed frames by default)
``overlap``             overlap of the detector's heatmaps      ``overlap_loss_scale``
                        (not in the paper; 0 in its presets,
                        and then not computed)
``concentration``       spatial variance of each normalised     ``concentration_loss_scale``
                        heatmap (not in the paper; 0 in its
                        presets, and then not computed)
``motion``              heatmaps on moving regions (curriculum, ``LossSchedule.motion_scale``
                        not in the paper; off by default)
``sparsity``            L1 on scales (or raw heatmap means)     ``sparsity_loss_scale``
``kp_observed``         keypoint L2, observed steps             1
``kl``                  KL(posterior || prior), observed steps  ``LossSchedule.kl_scale``
``kp_future``           keypoint L2, predicted steps            1
``weight_decay``        sum of squared conv kernels             ``weight_decay``
======================  ======================================  ============================

Reductions are the authors' (see :mod:`keypoint_wm.model.losses`). The detector (and the
reconstructor) learn only from the image-part terms (``image`` to ``sparsity``): the
keypoints enter the dynamics model with ``.detach()`` (paper section 4.1).

All terms are float32 scalars; the caller runs them with autocast disabled.
"""

from __future__ import annotations

from torch import Tensor

from keypoint_wm.model import losses
from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.outputs import (
    TERM_NAMES,
    DynamicsOutput,
    LossSchedule,
    ScheduleValue,
    is_off,
)


def loss_weights(config: ModelConfig, schedule: LossSchedule) -> dict[str, ScheduleValue]:
    """Weight of every term of :data:`TERM_NAMES` under ``schedule``."""
    return {
        "image": config.image_loss_scale,
        "separation": config.separation_loss_scale,
        "overlap": config.overlap_loss_scale,
        "concentration": config.concentration_loss_scale,
        "motion": schedule.motion_scale,
        "sparsity": config.sparsity_loss_scale,
        "kp_observed": 1.0,
        "kl": schedule.kl_scale,
        "kp_future": 1.0,
        "weight_decay": config.weight_decay,
    }


def image_terms(
    config: ModelConfig,
    images: Tensor,
    keypoints: Tensor,
    heatmaps: Tensor | None,
    reconstruction: Tensor,
    motion_scale: ScheduleValue,
    zero: Tensor,
) -> dict[str, Tensor]:
    """The image-part terms, ``image`` to ``sparsity`` (a term weighted 0 is ``zero``).

    Args:
        config: the model's config.
        images: ``[B, T, 3, H, W]`` the batch, in [-0.5, 0.5].
        keypoints: ``[B, T, K, 3]`` detected keypoints (with their gradient).
        heatmaps: ``[B, T, K, w, w]`` the detector's maps (None for CNN-VRNN).
        reconstruction: ``[B, T, 3, H, W]`` the frames drawn from the keypoints.
        motion_scale: this step's weight of the motion prior (a float 0 skips it).
        zero: a float32 0-d zero on the batch's device.
    """
    terms: dict[str, Tensor] = {"image": losses.image_loss(images, reconstruction)}
    if config.representation != "keypoints":
        return {**terms, **dict.fromkeys(TERM_NAMES[1:6], zero)}
    assert heatmaps is not None
    observed = config.num_observed_steps
    sep_steps = keypoints[:, :observed] if config.separation_loss_steps == "observed" else keypoints
    terms["separation"] = losses.temporal_separation_loss(sep_steps, config.separation_loss_width)
    terms["overlap"] = (
        losses.heatmap_overlap_loss(heatmaps) if config.overlap_loss_scale > 0 else zero
    )
    terms["concentration"] = (
        losses.heatmap_concentration_loss(heatmaps) if config.concentration_loss_scale > 0 else zero
    )
    terms["motion"] = zero
    if not is_off(motion_scale):
        motion = losses.motion_map(images, config.heatmap_width)
        prior = (
            losses.motion_coverage_loss
            if config.motion_prior == "coverage"
            else losses.motion_prior_loss
        )
        terms["motion"] = prior(heatmaps, motion)
    if config.sparsity_target == "scale":
        terms["sparsity"] = losses.sparsity_loss(keypoints[..., 2])
    else:
        terms["sparsity"] = losses.heatmap_sparsity_loss(heatmaps)
    return terms


def dynamics_terms(
    target: Tensor, dyn: DynamicsOutput, observed: int, zero: Tensor
) -> dict[str, Tensor]:
    """The dynamics terms ``kp_observed``, ``kl`` and ``kp_future``.

    Args:
        target: ``[B, T, D]`` the detected keypoints, flat and detached.
        dyn: the dynamics' pass over them (``decoded [B, T, D]``, ``kl [B, T0]``).
        observed: T0, the observed steps.
        zero: a float32 0-d zero (the KL of Struct-RNN).
    """
    steps = target.shape[1]
    return {
        "kp_observed": losses.keypoint_loss(target, dyn.decoded, slice(0, observed), steps),
        "kl": dyn.kl.mean() if dyn.latent is not None else zero,
        "kp_future": losses.keypoint_loss(target, dyn.decoded, slice(observed, steps), steps),
    }


def weighted_total(
    terms: dict[str, Tensor], weights: dict[str, ScheduleValue], zero: Tensor
) -> Tensor:
    """``sum(weights[name] * terms[name])`` over :data:`TERM_NAMES`, in that order."""
    return sum((weights[name] * terms[name] for name in TERM_NAMES), zero)
