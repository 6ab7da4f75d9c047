"""Loss schedule and output containers of :class:`~keypoint_wm.model.StructVRNN` and its
dynamics (:class:`~keypoint_wm.model.dynamics.KeypointDynamics`)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from keypoint_wm.model.dynamics_nets import Belief

ScheduleValue = float | Tensor
"""A schedule entry: a Python float, or a 0-d float32 tensor on the model's device. A
CUDA-graphed training step passes tensors so that one captured graph serves every step of a
ramp (docs/design.md, "Training speed"); the eager step passes floats."""


def is_off(value: ScheduleValue) -> bool:
    """True when ``value`` is a float <= 0 (the term or branch is skipped). A tensor is
    never "off": deciding would need its value on the host, a synchronisation."""
    return not isinstance(value, Tensor) and value <= 0.0


def is_full(value: ScheduleValue) -> bool:
    """True when ``value`` is a float >= 1 (a probability that is certain)."""
    return not isinstance(value, Tensor) and value >= 1.0


TERM_NAMES = (
    "image",
    "separation",
    "overlap",
    "concentration",
    "motion",
    "sparsity",
    "kp_observed",
    "kl",
    "kp_future",
    "weight_decay",
)


@dataclass(frozen=True)
class LossSchedule:
    """Per-step training schedule, ramped by the trainer (paper S1.2, S1.3).

    Attributes:
        kl_scale: Weight of the KL term as used in this step (the trainer anneals it
            linearly from 0 to ``ModelConfig.kl_beta``).
        p_own_sample_observed: Probability of feeding the model's own decoded sample
            (rather than the detected keypoints) to the GRU in observed steps; the paper
            ramps it from 0 to 1.0.
        p_own_sample_predicted: Same for predicted steps; the paper ramps it to 0.5.
        keypoint_width: Width of the reconstructor's Gaussian blobs in this step (a
            curriculum; not in the paper); None uses ``ModelConfig.keypoint_width``.
        motion_scale: Weight of the motion-prior term in this step (a curriculum; not in
            the paper; 0 leaves it uncomputed).
    """

    kl_scale: ScheduleValue
    p_own_sample_observed: ScheduleValue
    p_own_sample_predicted: ScheduleValue
    keypoint_width: ScheduleValue | None = None
    motion_scale: ScheduleValue = 0.0

    @classmethod
    def start(cls) -> LossSchedule:
        """Start of training: no KL, full teacher forcing."""
        return cls(0.0, 0.0, 0.0)

    @classmethod
    def final(
        cls, kl_beta: float, p_observed: float = 1.0, p_predicted: float = 0.5
    ) -> LossSchedule:
        """End of the ramps: KL weight beta, the paper's final own-sample probabilities."""
        return cls(kl_beta, p_observed, p_predicted)


@dataclass
class ModelOutput:
    """Output of :meth:`StructVRNN.forward`.

    Attributes:
        loss: Scalar weighted total, ``sum(weights[k] * terms[k])``.
        terms: Unweighted float32 scalars for every name in :data:`TERM_NAMES`, plus
            ``"total"`` (= ``loss``).
        weights: The weight of every term in this step.
        keypoints: ``[B, T, K, 3]`` detected keypoints (with gradient to the detector). For
            ``representation="cnn"`` the unstructured feature vector reshaped to K x 3.
        heatmaps: ``[B, T, K, w, w]`` raw detector heatmaps (None for "cnn").
        decoded_keypoints: ``[B, T, K, 3]`` decoded by the dynamics (selected sample).
        reconstruction: ``[B, T, 3, H, W]`` images reconstructed from the detected keypoints.
        hidden: ``[B, T, rnn_units]``; ``hidden[:, t]`` = h_{t-1}, the state conditioning
            frame t.
        latent: ``[B, T, Z]`` selected z (None for Struct-RNN).
        best_index: ``[B, T]`` selected best-of-many sample.
        kl: ``[B, T0]`` KL per observed step (summed over Z).
    """

    loss: Tensor
    terms: dict[str, Tensor]
    weights: dict[str, ScheduleValue]
    keypoints: Tensor
    heatmaps: Tensor | None
    decoded_keypoints: Tensor
    reconstruction: Tensor
    hidden: Tensor
    latent: Tensor | None
    best_index: Tensor
    kl: Tensor


@dataclass
class ObserveOutput:
    """Output of :meth:`StructVRNN.observe` (all frames observed, posterior at every step).

    To continue online after the last frame:
    ``h = model.dynamics.advance(out.hidden[:, -1], out.feed[:, -1], out.latent[:, -1],
    action_next)`` (``latent`` is None for Struct-RNN).

    Attributes:
        keypoints: ``[B, T, K, 3]`` detected.
        heatmaps: ``[B, T, K, w, w]`` (None for "cnn").
        decoded_keypoints: ``[B, T, K, 3]`` decoded from one posterior sample.
        hidden: ``[B, T, H]`` (h_{t-1} for frame t).
        latent: ``[B, T, Z]`` posterior samples (None for Struct-RNN).
        feed: ``[B, T, D]`` what was fed to the GRU after each frame.
        posterior_mean, posterior_std, prior_mean, prior_std: ``[B, T, Z]`` (None for
            Struct-RNN).
    """

    keypoints: Tensor
    heatmaps: Tensor | None
    decoded_keypoints: Tensor
    hidden: Tensor
    latent: Tensor | None
    feed: Tensor
    posterior_mean: Tensor | None
    posterior_std: Tensor | None
    prior_mean: Tensor | None
    prior_std: Tensor | None


@dataclass
class RolloutOutput:
    """Output of :meth:`StructVRNN.rollout`; N samples, T = T0 + num_future frames.

    Attributes:
        observed_keypoints: ``[B, T0, K, 3]`` detected (after ``keypoint_edit``).
        decoded_keypoints: ``[B, N, T, K, 3]`` posterior-decoded for the first T0 frames,
            prior samples after.
        hidden: ``[B, N, T, H]`` (h_{t-1} for frame t).
        images: ``[B, N, T, 3, H, W]`` reconstructed from the decoded keypoints, or None.
    """

    observed_keypoints: Tensor
    decoded_keypoints: Tensor
    hidden: Tensor
    images: Tensor | None


@dataclass
class StepOutput:
    """One online step of the dynamics model.

    Attributes:
        decoded: ``[B, D]`` decoded keypoints (flat K * 3, tanh range [-1, 1]).
        latent: ``[B, Z]`` the z used (None for Struct-RNN).
        prior: Prior belief for this frame (None for Struct-RNN).
        posterior: Posterior belief (observe steps of the VRNN only).
        kl: ``[B]`` KL(posterior || prior) summed over Z (observe steps of the VRNN only).
        feed: ``[B, D]`` the keypoints fed to the GRU.
        next_hidden: ``[B, H]`` the state after the GRU update, conditioning frame t+1
            (None from :meth:`KeypointDynamics.posterior_step`).
        best_index: ``[B]`` which of N samples ``decoded`` and ``latent`` are (a step given
            ``noise [N, B, Z]``); None for one sample.
    """

    decoded: Tensor
    latent: Tensor | None
    prior: Belief | None
    posterior: Belief | None
    kl: Tensor | None
    feed: Tensor
    next_hidden: Tensor | None
    best_index: Tensor | None = None


@dataclass
class DynamicsOutput:
    """Full-sequence output of :meth:`KeypointDynamics.forward`.

    Attributes:
        decoded: ``[B, T, D]`` decoded keypoints of the selected sample.
        kl: ``[B, T0]`` KL per observed step, summed over Z (zeros for Struct-RNN).
        best_index: ``[B, T]`` index of the selected best-of-many sample (zeros without
            BoM).
        hidden: ``[B, T, H]``: ``hidden[:, t]`` is h_{t-1}, the state that conditions the
            prior, posterior and decoder of frame t (summarises frames < t and actions up
            to ``action[t]``); ``hidden[:, 0]`` is the zero initial state.
        latent: ``[B, T, Z]`` selected z (None for Struct-RNN).
        feed: ``[B, T, D]`` keypoints fed to the GRU after each frame.
        prior_mean, prior_std: ``[B, T, Z]`` (None for Struct-RNN).
        posterior_mean, posterior_std: ``[B, T0, Z]`` (None for Struct-RNN).
    """

    decoded: Tensor
    kl: Tensor
    best_index: Tensor
    hidden: Tensor
    latent: Tensor | None
    feed: Tensor
    prior_mean: Tensor | None
    prior_std: Tensor | None
    posterior_mean: Tensor | None
    posterior_std: Tensor | None
