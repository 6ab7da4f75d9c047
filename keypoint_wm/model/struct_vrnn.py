"""The Struct-VRNN world model (Minderer et al. 2019): detector + reconstructor + dynamics.

``StructVRNN.forward`` detects keypoints, reconstructs the frames from them, runs the
dynamics over the detected keypoints and computes every loss term of paper eq. 9
(:mod:`keypoint_wm.model.objective`).

Precision: :meth:`StructVRNN.set_precision` makes the image networks run in channels_last
memory format, optionally under bf16 autocast (about 5x faster on a CPU with native bf16,
much SLOWER on an AVX2-only CPU: see :mod:`keypoint_wm.model.precision`); heatmaps are cast
to float32 before :func:`maps_to_keypoints`, and keypoint maths, dynamics and losses always
run in float32 with autocast disabled, even if the caller wraps the call in autocast.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from keypoint_wm.choices import PRECISIONS
from keypoint_wm.model import losses, objective
from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.dynamics import KeypointDynamics
from keypoint_wm.model.image_nets import (
    FeatureEncoder,
    FeatureToMaps,
    ImageEncoder,
    KeypointDetector,
    Reconstructor,
    decayed_kernels,
    maybe_channels_last,
)
from keypoint_wm.model.keypoint_ops import keypoints_to_maps, maps_to_keypoints
from keypoint_wm.model.outputs import (
    TERM_NAMES,
    LossSchedule,
    ModelOutput,
    ObserveOutput,
    RolloutOutput,
    ScheduleValue,
)
from keypoint_wm.model.precision import bf16_is_fast, preferred_precision

__all__ = [
    "PRECISIONS",
    "TERM_NAMES",
    "LossSchedule",
    "ModelOutput",
    "ObserveOutput",
    "RolloutOutput",
    "StructVRNN",
    "bf16_is_fast",
    "preferred_precision",
]


def detector_output_to_keypoints(out: Tensor, config: ModelConfig) -> Tensor:
    """The detector's float32 output for N frames -> ``[N, K, 3]``.

    Heatmaps ``[N, K, w, w]`` give their keypoints (x, y in [-1, 1], y up; scale in [0, 1]);
    for ``representation="cnn"`` the flat features ``[N, K * 3]`` in [-1, 1] are reshaped.
    """
    if config.representation == "cnn":
        return out.view(len(out), config.num_keypoints, 3)
    return maps_to_keypoints(out, config.scale_normalization)


class StructVRNN(nn.Module):
    """Struct-VRNN and its baselines (Struct-RNN, no-BoM, CNN-VRNN), chosen by config."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.detector: KeypointDetector | FeatureEncoder
        self.feature_to_maps: FeatureToMaps | None = None
        if config.representation == "keypoints":
            self.detector = KeypointDetector(config)
        else:
            self.detector = FeatureEncoder(config)
            self.feature_to_maps = FeatureToMaps(config)
        self.appearance = ImageEncoder(
            3,
            config.image_size,
            config.num_encoder_filters,
            config.heatmap_width,
            config.layers_per_scale,
        )
        self.reconstructor = Reconstructor(config, self.appearance.out_channels)
        self.dynamics = KeypointDynamics(config)
        self._channels_last = False
        self._autocast_dtype: torch.dtype | None = None

    # ------------------------------------------------------------------ precision
    def set_image_precision(
        self, channels_last: bool = True, autocast_dtype: torch.dtype | None = torch.bfloat16
    ) -> StructVRNN:
        """Run the image nets in channels_last format and/or under autocast (e.g. bf16).

        Parameters stay float32 (autocast casts on the fly); the dynamics and keypoint
        maths are unaffected. Returns ``self``.
        """
        self._channels_last = channels_last
        self._autocast_dtype = autocast_dtype
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for net in self.image_nets():
            net.to(memory_format=fmt)  # type: ignore[call-overload]  # torch's stubs lack it
            for module in net.modules():
                if hasattr(module, "channels_last"):
                    module.channels_last = channels_last  # type: ignore[assignment]
        return self

    def set_precision(self, precision: str) -> StructVRNN:
        """Named precision modes of the image nets (see :data:`PRECISIONS`).

        ``"bf16"``: channels_last + bf16 autocast; ``"channels_last"``: channels_last in
        float32; ``"fp32"``: plain eager. ``"bf16"`` on a CPU without native bf16 support
        (see :func:`bf16_is_fast`) is many times SLOWER than float32 (PyTorch falls back to
        a reference convolution): it is honoured, with a warning. Returns ``self``.
        """
        if precision == "bf16":
            device = next(self.parameters()).device
            if not bf16_is_fast(device):
                warnings.warn(
                    "bf16 autocast on a CPU without native bf16 convolutions (no AVX-512 "
                    "BF16/AMX) is much slower than float32; use precision 'channels_last' "
                    "(see keypoint_wm.model.preferred_precision)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return self.set_image_precision(True, torch.bfloat16)
        if precision == "channels_last":
            return self.set_image_precision(True, None)
        if precision == "fp32":
            return self.set_image_precision(False, None)
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")

    @property
    def image_autocast_dtype(self) -> torch.dtype | None:
        """The dtype the image nets autocast to (None: float32)."""
        return self._autocast_dtype

    @property
    def image_channels_last(self) -> bool:
        """Whether the image nets run in channels_last memory format."""
        return self._channels_last

    def image_nets(self) -> list[nn.Module]:
        """The convolutional networks: detector, appearance net, reconstructor."""
        return [self.detector, self.appearance, self.reconstructor]

    def _image_autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self._autocast_dtype is None:
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, dtype=self._autocast_dtype)

    @contextlib.contextmanager
    def _float32(self, device: torch.device) -> Iterator[None]:
        with torch.autocast(device_type=device.type, enabled=False):
            yield

    # ------------------------------------------------------------------ image part
    def detect(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Detect keypoints in every frame.

        Args:
            images: ``[B, T, 3, H, W]`` float in [-0.5, 0.5].

        Returns:
            ``(keypoints [B, T, K, 3], heatmaps [B, T, K, w, w])`` float32; x, y in [-1, 1]
            (y up), scale in [0, 1]. For ``representation="cnn"``: ``(features reshaped
            [B, T, K, 3] in [-1, 1], None)``.
        """
        self._check_images(images)
        batch, steps = images.shape[:2]
        flat = maybe_channels_last(images.flatten(0, 1), self._channels_last)
        with self._image_autocast(images.device):
            out = self.detector(flat)
        with self._float32(images.device):
            out = out.float()
            keypoints = detector_output_to_keypoints(out, self.config)
            keypoints = keypoints.view(batch, steps, *keypoints.shape[1:])
            if self.feature_to_maps is not None:  # CNN-VRNN: no heatmaps
                return keypoints, None
            return keypoints, out.view(batch, steps, *out.shape[1:])

    def keypoints_to_maps(
        self, keypoints: Tensor, keypoint_width: ScheduleValue | None = None
    ) -> Tensor:
        """``[N, K, 3]`` keypoints (or CNN features) to the reconstructor's input maps
        ``[N, K, w, w]`` float32 (blob width ``keypoint_width``, default the config's)."""
        with self._float32(keypoints.device):
            if self.feature_to_maps is not None:
                return self.feature_to_maps(keypoints.flatten(1))
            cfg = self.config
            return keypoints_to_maps(
                keypoints,
                cfg.heatmap_width,
                cfg.keypoint_width if keypoint_width is None else keypoint_width,
                cfg.heatmap_amplitude,
            )

    def reconstruct(
        self,
        first_image: Tensor,
        first_keypoints: Tensor,
        keypoints: Tensor,
        keypoint_width: ScheduleValue | None = None,
    ) -> Tensor:
        """Reconstruct frames from keypoints and frame 1 (paper eq. S5).

        Args:
            first_image: ``[B, 3, H, W]`` frame 1, in [-0.5, 0.5].
            first_keypoints: ``[B, K, 3]`` frame 1's keypoints.
            keypoints: ``[B, T, K, 3]`` keypoints of the frames to draw.
            keypoint_width: Blob width (default ``config.keypoint_width``).

        Returns:
            ``[B, T, 3, H, W]`` float32 images (frame 1 plus a predicted difference).
        """
        batch, steps = keypoints.shape[:2]
        maps = self.keypoints_to_maps(keypoints.flatten(0, 1), keypoint_width)
        first_maps = self.keypoints_to_maps(first_keypoints, keypoint_width)
        first_image_cl = maybe_channels_last(first_image, self._channels_last)
        with self._image_autocast(first_image.device):
            features = self.appearance(first_image_cl)
            images = self.reconstructor(maps, features, first_maps, first_image)
        return images.float().view(batch, steps, *images.shape[1:])

    # ------------------------------------------------------------------ training
    def loss_weights(self, schedule: LossSchedule) -> dict[str, ScheduleValue]:
        """Weight of every term of :data:`TERM_NAMES` under ``schedule``."""
        return objective.loss_weights(self.config, schedule)

    def forward(
        self,
        images: Tensor,
        actions: Tensor | None = None,
        schedule: LossSchedule | None = None,
        reference: Tensor | None = None,
    ) -> ModelOutput:
        """Detect, reconstruct, run the dynamics and compute every loss term.

        Args:
            images: ``[B, T, 3, H, W]`` float in [-0.5, 0.5]; the first
                ``config.num_observed_steps`` frames are observed, the rest predicted.
            actions: ``[B, T, A]`` (``actions[:, t]`` led to frame t) or None.
            schedule: KL weight and scheduled-sampling probabilities for this step;
                default :meth:`LossSchedule.final` with ``config.kl_beta``.
            reference: ``[B, 3, H, W]`` in [-0.5, 0.5], the frame the reconstructor
                draws on (``train.reference_frame``); default frame 1 (the paper).

        Returns:
            :class:`ModelOutput`.
        """
        cfg = self.config
        schedule = LossSchedule.final(cfg.kl_beta) if schedule is None else schedule
        batch, steps = images.shape[:2]
        observed = cfg.num_observed_steps
        if observed > steps:
            raise ValueError(f"need at least num_observed_steps={observed} frames, got {steps}")
        keypoints, heatmaps = self.detect(images)
        if reference is None:
            reference, reference_keypoints = images[:, 0], keypoints[:, 0]
        else:
            reference_keypoints = self.detect(reference[:, None])[0][:, 0]
        reconstruction = self.reconstruct(
            reference, reference_keypoints, keypoints, schedule.keypoint_width
        )
        target = keypoints.detach().flatten(2)  # [B, T, D]; no gradient into the detector
        dyn = self.dynamics(
            target,
            actions,
            observed,
            schedule.p_own_sample_observed,
            schedule.p_own_sample_predicted,
        )
        with self._float32(images.device):
            zero = images.new_zeros((), dtype=torch.float32)
            terms = objective.image_terms(
                cfg, images, keypoints, heatmaps, reconstruction, schedule.motion_scale, zero
            )
            terms.update(objective.dynamics_terms(target, dyn, observed, zero))
            terms["weight_decay"] = losses.weight_decay_loss(self.decayed_kernels()).to(zero)
            weights = self.loss_weights(schedule)
            total = objective.weighted_total(terms, weights, zero)
            terms["total"] = total
        k = cfg.num_keypoints
        return ModelOutput(
            loss=total,
            terms=terms,
            weights=weights,
            keypoints=keypoints,
            heatmaps=heatmaps,
            decoded_keypoints=dyn.decoded.view(batch, steps, k, 3),
            reconstruction=reconstruction,
            hidden=dyn.hidden,
            latent=dyn.latent,
            best_index=dyn.best_index,
            kl=dyn.kl,
        )

    def decayed_kernels(self) -> list[Tensor]:
        """Conv kernels under L2 weight decay (all image-net convs but the heatmap layer)."""
        return [w for net in self.image_nets() for w in decayed_kernels(net)]

    # ------------------------------------------------------------------ inference
    def observe(
        self, images: Tensor, actions: Tensor | None = None, feed_observed: bool = False
    ) -> ObserveOutput:
        """Observe every frame: detect keypoints, run the posterior at every step.

        One posterior sample per step; the GRU is fed the decoded sample (authors'
        inference behaviour) or, with ``feed_observed``, the detected keypoints.

        Args:
            images: ``[B, T, 3, H, W]`` in [-0.5, 0.5].
            actions: ``[B, T, A]`` (``actions[:, t]`` led to frame t) or None.
            feed_observed: See above.
        """
        keypoints, heatmaps = self.detect(images)
        return self.observe_detected(keypoints, actions, feed_observed, heatmaps)

    def observe_detected(
        self,
        keypoints: Tensor,
        actions: Tensor | None = None,
        feed_observed: bool = False,
        heatmaps: Tensor | None = None,
    ) -> ObserveOutput:
        """:meth:`observe` after the detector: the posterior over keypoints ``[B, T, K, 3]``
        that :meth:`detect` found (for a CNN-VRNN run, its features); ``heatmaps`` are only
        passed through. The detector sees each frame alone, so frames shared by overlapping
        windows can be detected once and their keypoints sliced into every window."""
        batch, steps = keypoints.shape[:2]
        dyn = self.dynamics(
            keypoints.detach().flatten(2),
            actions,
            steps,
            p_own_observed=0.0 if feed_observed else 1.0,
            num_samples=1,
            select_best=False,
        )
        return ObserveOutput(
            keypoints=keypoints,
            heatmaps=heatmaps,
            decoded_keypoints=dyn.decoded.view(batch, steps, self.config.num_keypoints, 3),
            hidden=dyn.hidden,
            latent=dyn.latent,
            feed=dyn.feed,
            posterior_mean=dyn.posterior_mean,
            posterior_std=dyn.posterior_std,
            prior_mean=dyn.prior_mean,
            prior_std=dyn.prior_std,
        )

    def rollout(
        self,
        images_observed: Tensor,
        actions: Tensor | None,
        num_future: int,
        num_samples: int = 1,
        keypoint_edit: Callable[[Tensor], Tensor] | None = None,
        decode_images: bool = False,
        feed_observed: bool = False,
    ) -> RolloutOutput:
        """Observe T0 frames, then sample ``num_samples`` futures of ``num_future`` frames.

        Each sample is an independent run over the whole sequence (posterior samples in the
        observed frames, prior samples after), as when the authors draw samples. Call under
        ``torch.no_grad()`` for inference.

        Args:
            images_observed: ``[B, T0, 3, H, W]`` in [-0.5, 0.5].
            actions: ``[B, T0 + num_future, A]`` (``actions[:, t]`` produces frame t) or
                None for an action-free model.
            num_future: Frames to predict.
            num_samples: N futures per batch element.
            keypoint_edit: Optional function ``[B, T0, K, 3] -> [B, T0, K, 3]`` applied to
                the detected keypoints before the dynamics (counterfactuals, paper 5.3).
            decode_images: Also reconstruct images from the decoded keypoints.
            feed_observed: Feed the detected keypoints to the GRU in observed frames.

        Returns:
            :class:`RolloutOutput`.
        """
        cfg = self.config
        batch, observed = images_observed.shape[:2]
        total = observed + num_future
        keypoints, _ = self.detect(images_observed)
        if keypoint_edit is not None:
            keypoints = keypoint_edit(keypoints)
        if cfg.action_size:
            if actions is None or tuple(actions.shape) != (batch, total, cfg.action_size):
                got = None if actions is None else tuple(actions.shape)
                raise ValueError(f"actions must be [B, T0 + num_future, A]; got {got}")
            actions = actions.float().repeat_interleave(num_samples, dim=0)
            last_action = torch.zeros_like(actions[:, 0])
        else:
            actions, last_action = None, None
        x = keypoints.detach().flatten(2).repeat_interleave(num_samples, dim=0)
        dyn = self.dynamics
        h = dyn.initial_state(batch * num_samples, images_observed.device)
        decoded, hidden = [], []
        for t in range(total):
            action_next = None
            if actions is not None:
                action_next = actions[:, t + 1] if t + 1 < total else last_action
            hidden.append(h)
            if t < observed:
                step = dyn.observe_step(h, x[:, t], action_next, feed_observed)
            else:
                step = dyn.imagine_step(h, action_next)
            decoded.append(step.decoded)
            assert step.next_hidden is not None
            h = step.next_hidden
        k = cfg.num_keypoints
        decoded_kp = torch.stack(decoded, dim=1).view(batch, num_samples, total, k, 3)
        hidden_seq = torch.stack(hidden, dim=1).view(batch, num_samples, total, -1)
        images = None
        if decode_images:
            first = images_observed[:, 0].repeat_interleave(num_samples, dim=0)
            first_kp = keypoints[:, 0].repeat_interleave(num_samples, dim=0)
            images = self.reconstruct(first, first_kp, decoded_kp.flatten(0, 1))
            images = images.view(batch, num_samples, *images.shape[1:])
        return RolloutOutput(keypoints, decoded_kp, hidden_seq, images)

    def _check_images(self, images: Tensor) -> None:
        size = self.config.image_size
        if images.dim() != 5 or tuple(images.shape[2:]) != (3, size, size):
            raise ValueError(f"images must be [B, T, 3, {size}, {size}], got {tuple(images.shape)}")
