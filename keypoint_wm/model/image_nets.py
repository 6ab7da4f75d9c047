"""Convolutional image networks: detector, appearance net, reconstructor, CNN baseline.

Architecture as in the authors' code (paper S1.1.1; docs/design.md, "The model"):

* :class:`ImageEncoder`: 3x3 conv with ``F`` filters at full resolution plus
  ``layers_per_scale`` stride-1 3x3 convs; then per halving of the resolution, double the
  filters, one stride-2 3x3 conv and ``layers_per_scale`` stride-1 3x3 convs, down to
  ``heatmap_width``. LeakyReLU(0.2) after every conv (including the last).
  Output channels ``F * image_size / heatmap_width``.
* :class:`KeypointDetector`: coordinate channels + encoder + 1x1 conv to K maps + softplus.
* The appearance net is an :class:`ImageEncoder` on frame 1 (no coordinate channels,
  as in the authors' code).
* :class:`Reconstructor`: ``concat[maps(t), appearance(frame 1), maps(frame 1)]`` +
  coordinate channels, 1x1 conv to the encoder's output width, then per doubling a
  bilinear x2 upsample (align_corners=True, like ``tf.image.resize_bilinear``) and
  ``layers_per_scale`` 3x3 convs, the channel count halved once per level
  (``reconstructor_channels="per_level"``, the authors' code) or at every conv
  (``"per_conv"``, the default for runs saved before the option existed), then a 1x1 conv
  to 3 channels with no activation, added to frame 1.
* :class:`FeatureEncoder` / :class:`FeatureToMaps`: the CNN-VRNN baseline's encoder to a
  flat vector and its linear map back to K feature maps for the same reconstructor.

Initialisation: conv kernels He-uniform (Keras ``he_uniform``: U(+-sqrt(6 / fan_in))),
biases zero; the detector's final 1x1 conv uses Keras' default Glorot-uniform and has no
weight decay, as in the authors' code. Padding is PyTorch's symmetric ``padding=1`` (Keras
``'same'`` pads a stride-2 conv only at the bottom/right: a half-pixel shift the coordinate
channels let the network absorb).

Every module accepts channels_last inputs and runs under bf16 autocast; the detector returns
float32 heatmaps (softplus computed in float32).
"""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.keypoint_ops import add_coord_channels

LEAKY_SLOPE = 0.2


def he_uniform_(weight: Tensor, fan_in: int | None = None) -> Tensor:
    """Keras ``he_uniform``: U(-sqrt(6 / fan_in), sqrt(6 / fan_in)), in place."""
    if fan_in is None:
        fan_in = weight[0].numel()  # in_channels * kh * kw (conv) or in_features (linear)
    limit = math.sqrt(6.0 / fan_in)
    with torch.no_grad():
        return weight.uniform_(-limit, limit)


def conv2d(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    stride: int = 1,
    weight_decay: bool = True,
) -> nn.Conv2d:
    """A 'same'-padded conv with He-uniform kernel and zero bias.

    ``weight_decay`` marks whether the kernel is in :func:`decayed_kernels`.
    """
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
    he_uniform_(conv.weight)
    assert conv.bias is not None  # nn.Conv2d's default bias=True
    nn.init.zeros_(conv.bias)
    conv.weight_decay = weight_decay  # type: ignore[assignment]  # a plain attribute
    return conv


def maybe_channels_last(x: Tensor, channels_last: bool) -> Tensor:
    """``x`` in channels_last memory format if ``channels_last`` (4-D tensors only)."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def decayed_kernels(module: nn.Module) -> list[Tensor]:
    """The conv kernels that carry L2 weight decay (biases never do)."""
    return [
        m.weight
        for m in module.modules()
        if isinstance(m, nn.Conv2d) and getattr(m, "weight_decay", False)
    ]


class ImageEncoder(nn.Module):
    """Conv feature extractor from ``image_size`` down to ``output_width``.

    Input ``[N, in_channels, S, S]``; output ``[N, out_channels, w, w]`` with
    ``w = output_width`` and ``out_channels = num_filters * S / w``, after LeakyReLU.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        num_filters: int,
        output_width: int,
        layers_per_scale: int,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [conv2d(in_channels, num_filters)]
        layers += [conv2d(num_filters, num_filters) for _ in range(layers_per_scale)]
        width, filters = image_size, num_filters
        while width > output_width:
            layers.append(conv2d(filters, filters * 2, stride=2))
            filters *= 2
            width //= 2
            layers += [conv2d(filters, filters) for _ in range(layers_per_scale)]
        self.convs = nn.ModuleList(layers)
        self.out_channels = filters

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        return x


class KeypointDetector(nn.Module):
    """Image to K non-negative heatmaps (paper S1.1.1).

    Input ``[N, 3, S, S]`` images in [-0.5, 0.5]; output ``[N, K, w, w]`` float32
    heatmaps, softplus, so > 0. The final 1x1 conv's bias starts at
    ``config.heatmap_bias_init``.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.coord_channels = config.detector_coord_channels
        self.encoder = ImageEncoder(
            3 + 2 * self.coord_channels,
            config.image_size,
            config.num_encoder_filters,
            config.heatmap_width,
            config.layers_per_scale,
        )
        self.to_heatmaps = nn.Conv2d(self.encoder.out_channels, config.num_keypoints, 1)
        nn.init.xavier_uniform_(self.to_heatmaps.weight)
        assert self.to_heatmaps.bias is not None  # nn.Conv2d's default bias=True
        nn.init.constant_(self.to_heatmaps.bias, config.heatmap_bias_init)
        self.to_heatmaps.weight_decay = False  # type: ignore[assignment]  # a plain attribute
        self.channels_last = False

    def forward(self, images: Tensor) -> Tensor:
        if self.coord_channels:
            images = add_coord_channels(images)
        features = self.encoder(maybe_channels_last(images, self.channels_last))
        return F.softplus(self.to_heatmaps(features).float())


class Reconstructor(nn.Module):
    """Gaussian maps + frame-1 appearance to an image (paper eq. S5).

    Args of :meth:`forward`:
        maps: ``[N, K, w, w]`` maps of the frame to reconstruct.
        first_features: ``[N, C, w, w]`` appearance features of frame 1.
        first_maps: ``[N, K, w, w]`` maps of frame 1's keypoints.
        first_frame: ``[N, 3, S, S]`` frame 1, in [-0.5, 0.5].

    Returns ``[N, 3, S, S]`` float32: ``first_frame + decoder(...)`` (unbounded).
    """

    def __init__(self, config: ModelConfig, appearance_channels: int) -> None:
        super().__init__()
        k = config.num_keypoints
        channels = appearance_channels
        self.adjust_input = conv2d(2 * k + appearance_channels + 2, channels, kernel_size=1)
        self.scales = nn.ModuleList()
        per_level = config.reconstructor_channels == "per_level"
        for _ in range(config.num_halvings):
            convs = nn.ModuleList()
            level_channels = channels // 2
            for _ in range(config.layers_per_scale):
                out = level_channels if per_level else channels // 2
                convs.append(conv2d(channels, out))
                channels = out
            self.scales.append(convs)
        self.to_image = conv2d(channels, 3, kernel_size=1)
        self.channels_last = False

    def forward(
        self, maps: Tensor, first_features: Tensor, first_maps: Tensor, first_frame: Tensor
    ) -> Tensor:
        dtype = first_features.dtype
        x = torch.cat([maps.to(dtype), first_features, first_maps.to(dtype)], dim=1)
        x = maybe_channels_last(add_coord_channels(x), self.channels_last)
        x = F.leaky_relu(self.adjust_input(x), LEAKY_SLOPE)
        for convs in self.scales:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            for conv in cast(nn.ModuleList, convs):
                x = F.leaky_relu(conv(x), LEAKY_SLOPE)
        return first_frame.float() + self.to_image(x).float()


class FeatureEncoder(nn.Module):
    """CNN-VRNN baseline encoder: image to an unstructured vector in [-1, 1].

    Coordinate channels + :class:`ImageEncoder` + 1x1 conv to K channels (LeakyReLU) +
    linear to ``K * 3`` + tanh (bounded like the dynamics decoder's tanh output).
    Input ``[N, 3, S, S]``; output ``[N, K * 3]`` float32.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.encoder = ImageEncoder(
            3 + 2,
            config.image_size,
            config.num_encoder_filters,
            config.heatmap_width,
            config.layers_per_scale,
        )
        k, w = config.num_keypoints, config.heatmap_width
        self.reduce = conv2d(self.encoder.out_channels, k, kernel_size=1)
        self.to_vector = nn.Linear(k * w * w, config.feature_size)
        nn.init.xavier_uniform_(self.to_vector.weight)
        nn.init.zeros_(self.to_vector.bias)
        self.channels_last = False

    def forward(self, images: Tensor) -> Tensor:
        x = maybe_channels_last(add_coord_channels(images), self.channels_last)
        x = F.leaky_relu(self.reduce(self.encoder(x)), LEAKY_SLOPE)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.tanh(self.to_vector(x.float().flatten(1)))


class FeatureToMaps(nn.Module):
    """CNN-VRNN baseline: vector ``[N, K * 3]`` to K feature maps ``[N, K, w, w]`` (linear).

    Plays the role of the Gaussian maps for the :class:`Reconstructor`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        k, w = config.num_keypoints, config.heatmap_width
        self.shape = (k, w, w)
        self.linear = nn.Linear(config.feature_size, k * w * w)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, features: Tensor) -> Tensor:
        with torch.autocast(device_type=features.device.type, enabled=False):
            return self.linear(features.float()).view(-1, *self.shape)
