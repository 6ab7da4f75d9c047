"""Hyperparameters of the Struct-VRNN world model (paper Table S1, Basketball column).

:class:`ModelConfig` is a frozen dataclass. It round-trips through JSON with
``dataclasses.asdict`` and :meth:`ModelConfig.from_dict`; unknown keys are rejected with a
message naming them, so a typo in a YAML file or a ``--set`` override fails loudly.

``ModelConfig()`` is the authors' network: the paper's Basketball values (Table S1) where
the table gives one and the authors' TensorFlow code (google-research/video_structure)
otherwise. Options that depart from the paper (the "dark keypoint" knobs, docs/design.md,
"Known pitfall") default to the paper's behaviour.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCALE_NORMALIZATIONS = ("max", "none")
DYNAMICS = ("vrnn", "rnn")
REPRESENTATIONS = ("keypoints", "cnn")
HEATMAP_AMPLITUDES = ("scale", "one")
SPARSITY_TARGETS = ("scale", "heatmap_mean")
SEPARATION_STEPS = ("observed", "all")
MOTION_PRIORS = ("per_keypoint", "coverage")
RECONSTRUCTOR_CHANNELS = ("per_conv", "per_level")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and loss hyperparameters of :class:`~keypoint_wm.model.StructVRNN`.

    Image part (paper S1.1.1):

    Attributes:
        image_size: Input images are ``image_size x image_size`` RGB. Must be
            ``heatmap_width * 2**n``.
        num_keypoints: K, the number of keypoints (heatmaps). Basketball 12, Human3.6M 48,
            DMCS 64.
        num_encoder_filters: Filters of the first (full-resolution) conv layer; doubled at
            every halving of the resolution.
        layers_per_scale: Extra stride-1 3x3 conv layers per resolution scale in the
            detector, appearance net and reconstructor (1 for Basketball and DMCS, 2 for
            Human3.6M; the authors' code default is 2).
        reconstructor_channels: How the reconstructor's 3x3 convs halve the channel count
            on the way up: ``"per_level"`` halves once per doubling of the resolution, every
            conv of that level keeping the halved count (the authors' code: 128 -> 64 -> 32
            channels for 64x64 images whatever ``layers_per_scale``; the default and the
            paper presets); ``"per_conv"`` halves at every conv (our first version, kept by
            the CPU presets: with ``layers_per_scale=2`` it ends with 8 channels at 64x64
            instead of 32). Both agree for ``layers_per_scale <= 1``.
        heatmap_width: Side of the keypoint heatmaps in pixels (16).
        keypoint_width: Width of the Gaussian blobs drawn for the reconstructor, in the
            authors' unit: the standard deviation on the [-1, 1] coordinate grid is
            ``keypoint_width / heatmap_width`` (so 1.5 gives s = 0.094, about 0.7 heatmap
            pixels of a 16-pixel map, whose pixel pitch is 2/15). Table S1 labels it "pix".
        scale_normalization: ``"max"`` divides every keypoint's scale (mean of its raw
            heatmap) by the maximum over the K keypoints of that frame (authors' code);
            ``"none"`` keeps the plain mean (paper eq. S3).
        heatmap_amplitude: How a keypoint's scale enters the Gaussian maps the
            reconstructor sees: ``"scale"`` multiplies the blob by the scale clamped to
            [0, 1] (paper eq. S4); ``"one"`` draws every blob at amplitude 1 (a fix for
            keypoints going dark, docs/design.md, "Known pitfall").
        detector_coord_channels: Give the keypoint detector x/y coordinate channels (the
            authors' code). Without them the detector is translation-equivariant, so a
            keypoint can only pick its object by appearance, never by position: one
            keypoint per object identity across sequences (CPU presets, see presets.py).
        heatmap_bias_init: Initial bias of the detector's final 1x1 conv (before softplus);
            0.0 is the Keras default. A negative value (e.g. -3: softplus 0.05 instead of
            0.69) makes the initial maps sparse, so their centres of mass react to the conv
            features; in a short single-seed probe (moving dots) it kept most keypoints
            bright where 0.0 lets one keypoint take scale 1 and the rest go dark.

    Losses of the image part (paper section 4.1):

    Attributes:
        image_loss_scale: Weight of the image L2 loss (1.0 in the paper).
        separation_loss_scale: lambda_sep, weight of the temporal separation loss.
        separation_loss_width: sigma_sep, in keypoint units ([-1, 1] frame).
        separation_loss_steps: ``"observed"``: the separation loss sees only the first
            ``num_observed_steps`` frames (authors' code); ``"all"``: every frame.
        overlap_loss_scale: weight of the heatmap-overlap loss (not in the paper; 0 in the
            paper presets): the mean over frames and keypoint pairs of the inner product of
            two keypoints' spatially normalised heatmaps. It pushes a keypoint that shares
            an object with another one onto its next-best match, so that within a small
            budget every object gets its own keypoint (docs/design.md, "Known pitfall").
        concentration_loss_scale: weight of the heatmap-concentration loss (not in the
            paper; 0 in its presets): the spatial variance of each keypoint's normalised
            heatmap around its centre, so that a keypoint responds to one object per frame
            rather than sitting between several (docs/design.md, "Known pitfall").
        motion_prior: form of the motion-prior curriculum term (weighted by the trainer,
            ``train.motion_prior_scale``; off in the paper presets): ``"per_keypoint"``
            pulls every keypoint's heatmap onto the moving regions (a cross-entropy per
            keypoint: each one seeks the strongest motion); ``"coverage"`` asks the
            keypoints TOGETHER to cover all the motion (KL from the motion map to the mean
            of the K normalised heatmaps): an uncovered moving object, however small,
            pulls the diffuse (unused) keypoints, while a keypoint already peaked on an
            object barely feels it.
        sparsity_loss_scale: lambda_sparse, weight of the sparsity L1 loss.
        sparsity_target: ``"heatmap_mean"``: L1 on the mean mu_k of each raw
            (un-normalised) heatmap (paper eq. S3) with the authors' reduction: summed over
            the frames of the window, averaged over keypoints and batch, divided by the
            batch size (``losses.heatmap_sparsity_loss``; the default and the paper
            presets); ``"scale"``: L1 on the max-normalised keypoint scales averaged over
            batch, time and K (the CPU presets').
        weight_decay: Keras-style L2 factor on conv kernels: the loss term is
            ``weight_decay * sum(kernel**2)`` (biases and the final heatmap layer
            excluded, as in the authors' code).

    Dynamics (paper section 3.2, S1.1.2):

    Attributes:
        latent_size: Size of the latent code z.
        prior_net_size: Hidden units of the prior MLP.
        posterior_net_size: Hidden units of the posterior (encoder) MLP.
        decoder_net_size: Hidden units of the keypoint decoder MLP.
        rnn_units: GRU units.
        num_bom_samples: Samples for the best-of-many objective (used when ``use_bom``).
        kl_beta: beta, the final KL weight; the trainer anneals it (LossSchedule.kl_scale).
        action_size: Size of the action vector fed to the GRU; 0 means no actions. For
            multi-task data, the zero-padded size. Training sets it from the data when
            ``action_conditioned``.
        action_conditioned: Whether training conditions the model on the data's actions
            (the DMCS presets): training then sets ``action_size`` to the data's
            (zero-padded) action size, and refuses data without actions. False leaves
            ``action_size`` as it is (0 unless set). A run saved before this setting was
            recorded derives it from its ``action_size`` (:meth:`RunConfig.from_saved
            <keypoint_wm.config.RunConfig.from_saved>`).
        dynamics: ``"vrnn"`` (Struct-VRNN, stochastic) or ``"rnn"`` (Struct-RNN baseline:
            deterministic GRU, no latent, no KL; the keypoints are decoded from h).
        use_bom: If False, a single sample per step (Struct-VRNN without best-of-many).
        representation: ``"keypoints"`` (Struct-*) or ``"cnn"`` (CNN-VRNN baseline: an
            unstructured feature vector of size ``num_keypoints * 3`` from a CNN encoder,
            so the dynamics model has the same size, decoded back to pixels by the same
            reconstructor through a learned linear map to K feature maps).
        future_loss_trains_prior: If False (authors' code), the prior's mean and std are
            gradient-stopped in predicted steps, so the prior net learns only from the KL.
        num_observed_steps: T, observed (posterior) steps of a training sequence.
        num_predicted_steps: Delta T, predicted (prior) steps of a training sequence.
    """

    # Image part.
    image_size: int = 64
    num_keypoints: int = 12
    num_encoder_filters: int = 32
    layers_per_scale: int = 1
    reconstructor_channels: str = "per_level"
    heatmap_width: int = 16
    keypoint_width: float = 1.5
    scale_normalization: str = "max"
    heatmap_amplitude: str = "scale"
    heatmap_bias_init: float = 0.0
    detector_coord_channels: bool = True
    # Image losses.
    image_loss_scale: float = 1.0
    separation_loss_scale: float = 0.1
    separation_loss_width: float = 0.02
    separation_loss_steps: str = "observed"
    overlap_loss_scale: float = 0.0
    concentration_loss_scale: float = 0.0
    motion_prior: str = "per_keypoint"
    sparsity_loss_scale: float = 0.1
    sparsity_target: str = "heatmap_mean"
    weight_decay: float = 1e-4
    # Dynamics.
    latent_size: int = 16
    prior_net_size: int = 16
    posterior_net_size: int = 128
    decoder_net_size: int = 128
    rnn_units: int = 512
    num_bom_samples: int = 50
    kl_beta: float = 0.01
    action_size: int = 0
    action_conditioned: bool = False
    dynamics: str = "vrnn"
    use_bom: bool = True
    representation: str = "keypoints"
    future_loss_trains_prior: bool = False
    num_observed_steps: int = 8
    num_predicted_steps: int = 8

    def __post_init__(self) -> None:
        _check_choice("scale_normalization", self.scale_normalization, SCALE_NORMALIZATIONS)
        _check_choice("heatmap_amplitude", self.heatmap_amplitude, HEATMAP_AMPLITUDES)
        _check_choice("sparsity_target", self.sparsity_target, SPARSITY_TARGETS)
        _check_choice("separation_loss_steps", self.separation_loss_steps, SEPARATION_STEPS)
        _check_choice("motion_prior", self.motion_prior, MOTION_PRIORS)
        _check_choice("reconstructor_channels", self.reconstructor_channels, RECONSTRUCTOR_CHANNELS)
        _check_choice("dynamics", self.dynamics, DYNAMICS)
        _check_choice("representation", self.representation, REPRESENTATIONS)
        positive = (
            "image_size",
            "num_keypoints",
            "num_encoder_filters",
            "heatmap_width",
            "latent_size",
            "prior_net_size",
            "posterior_net_size",
            "decoder_net_size",
            "rnn_units",
            "num_bom_samples",
            "num_observed_steps",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("layers_per_scale", "action_size", "num_predicted_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"ModelConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.keypoint_width <= 0 or self.separation_loss_width <= 0:
            raise ValueError("keypoint_width and separation_loss_width must be > 0")
        problem = self.image_size_problem(self.image_size)
        if problem:
            raise ValueError(problem)

    def image_size_problem(self, image_size: int) -> str | None:
        """Why frames of ``image_size`` pixels do not fit this network (the encoder halves
        them down to ``heatmap_width``), or None when they do.

        >>> ModelConfig(heatmap_width=16).image_size_problem(48)
        'image_size / heatmap_width must be a power of two >= 1, got 48 / 16'
        """
        ratio = image_size / self.heatmap_width
        if ratio < 1 or not math.log2(ratio).is_integer():
            return (
                f"image_size / heatmap_width must be a power of two >= 1, got "
                f"{image_size} / {self.heatmap_width}"
            )
        return None

    @property
    def num_halvings(self) -> int:
        """How often the encoder halves the resolution: log2(image_size / heatmap_width)."""
        return round(math.log2(self.image_size // self.heatmap_width))

    @property
    def feature_size(self) -> int:
        """Size of the per-frame vector the dynamics model sees: ``num_keypoints * 3``."""
        return self.num_keypoints * 3

    @property
    def num_samples(self) -> int:
        """Latent samples per step in training: ``num_bom_samples`` with BoM, else 1."""
        return self.num_bom_samples if self.use_bom else 1

    @property
    def num_steps(self) -> int:
        """Frames in a training sequence: observed plus predicted."""
        return self.num_observed_steps + self.num_predicted_steps

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dictionary (same as ``dataclasses.asdict``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Build a config from a mapping, rejecting keys that are not fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown ModelConfig key(s): {', '.join(unknown)}; "
                f"valid keys are: {', '.join(sorted(names))}"
            )
        return cls(**dict(data))

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (unknown names are rejected)."""
        return self.from_dict({**self.to_dict(), **changes})


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"ModelConfig.{name} must be one of {choices}, got {value!r}")
