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
  (``reconstructor_channels="per_level"``, the authors' code and the default) or at every
  conv (``"per_conv"``, the CPU presets'), then a 1x1 conv
  to 3 channels with no activation, added to frame 1.
* :class:`FeatureEncoder` / :class:`FeatureToMaps`: the CNN-VRNN baseline's encoder to a
  flat vector and its linear map back to K feature maps for the same reconstructor.

Initialisation: conv kernels He-uniform (Keras ``he_uniform``: U(+-sqrt(6 / fan_in))),
biases zero; the detector's final 1x1 conv uses Keras' default Glorot-uniform and has no
weight decay, as in the authors' code. Padding is PyTorch's symmetric ``padding=1`` (Keras
``'same'`` pads a stride-2 conv only at the bottom/right: a half-pixel shift the coordinate
channels let the network absorb).

Every module accepts channels_last inputs and runs under bf16 autocast; the detector returns
float32 heatmaps (softplus computed in float32). With ``channels_last`` set (the fast
precision modes, :meth:`StructVRNN.set_image_precision`) the activations are applied in place:
a conv's backward needs its input, not its output, so the output's memory can take the
activation (fewer fresh allocations per step; docs/design.md, "Host memory on a CPU").
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
        self.channels_last = False

    def forward(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_SLOPE, inplace=self.channels_last)
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
        maps: ``[B * T, K, w, w]`` maps of the frames to reconstruct, sequence-major (the
            T frames of sequence 0 first).
        first_features: ``[B, C, w, w]`` appearance features of each sequence's frame 1.
        first_maps: ``[B, K, w, w]`` maps of frame 1's keypoints.
        first_frame: ``[B, 3, S, S]`` frame 1, in [-0.5, 0.5].

    Returns ``[B * T, 3, S, S]`` float32: ``first_frame + decoder(...)`` (unbounded).

    With channels_last inputs (the fast precision modes) the input 1x1 conv is computed by
    parts: its kernel splits along the input channels, so the frame-1 parts (appearance,
    frame-1 maps, bias) are computed once per sequence instead of once per frame, and the
    coordinate channels' part once per batch (docs/design.md, "The reconstructor's input
    conv"). The same sum as the conv over the concatenation, in another order; float32
    mode keeps the plain concatenation.
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
        batch = first_features.shape[0]
        if batch == 0 or maps.shape[0] % batch:
            raise ValueError(
                f"maps hold {maps.shape[0]} frames, not a multiple of the {batch} sequences "
                "of first_features"
            )
        steps = maps.shape[0] // batch
        dtype = first_features.dtype
        if self.channels_last:
            x = self._input_by_parts(maps.to(dtype), first_features, first_maps.to(dtype))
        else:
            x = torch.cat(
                [maps.to(dtype), per_frame(first_features, steps), per_frame(first_maps, steps)],
                dim=1,
            )
            x = self.adjust_input(add_coord_channels(x))
        x = F.leaky_relu(x, LEAKY_SLOPE, inplace=self.channels_last)
        for convs in self.scales:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            for conv in cast(nn.ModuleList, convs):
                x = F.leaky_relu(conv(x), LEAKY_SLOPE, inplace=self.channels_last)
        delta = self.to_image(x).float()
        out = delta.view(batch, steps, *delta.shape[1:]) + first_frame.float().unsqueeze(1)
        return out.flatten(0, 1)

    def _input_by_parts(self, maps: Tensor, first_features: Tensor, first_maps: Tensor) -> Tensor:
        """``adjust_input`` of ``concat[maps, appearance, first maps, coords]`` as a sum of
        per-frame, per-sequence and per-batch parts; ``[B * T, C, w, w]`` channels_last, in
        the autocast dtype (the per-sequence parts are summed in float32)."""
        batch, k, c = first_features.shape[0], maps.shape[1], first_features.shape[1]
        height, width = maps.shape[-2:]
        kernel = self.adjust_input.weight.flatten(1)  # [C_out, K + C + K + 2]
        frame = F.linear(_nhwc(maps), kernel[:, :k])  # [B * T, h, w, C_out]
        with torch.autocast(device_type=maps.device.type, enabled=False):
            coords = add_coord_channels(maps.new_zeros(1, 0, height, width, dtype=torch.float32))
            sequence = F.linear(  # [B, h, w, C_out]
                _nhwc(first_features).float(), kernel[:, k : k + c], self.adjust_input.bias
            )
            sequence = sequence + F.linear(_nhwc(first_maps).float(), kernel[:, k + c : 2 * k + c])
            sequence = sequence + F.linear(_nhwc(coords), kernel[:, 2 * k + c :])
        out = (frame.unflatten(0, (batch, -1)) + sequence.unsqueeze(1)).to(frame.dtype)
        return out.flatten(0, 1).permute(0, 3, 1, 2)  # NCHW view of NHWC memory


def per_frame(x: Tensor, steps: int) -> Tensor:
    """``[B, ...]`` to ``[B * steps, ...]``: each sequence's row repeated for its frames."""
    return x.unsqueeze(1).expand(x.shape[0], steps, *x.shape[1:]).flatten(0, 1)


def _nhwc(x: Tensor) -> Tensor:
    """``[N, C, H, W]`` as ``[N, H, W, C]`` (a view of a channels_last tensor)."""
    return x.permute(0, 2, 3, 1)


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
