"""A frozen copy of the keypoint detector for online inference, one small batch at a time.

Under bf16 autocast (:meth:`StructVRNN.set_precision`), every call of the detector casts its
float32 kernels to bf16 again: for training that is the price of float32 master weights,
but an agent's wrapper runs the same frozen weights on one frame per step. Measured on the
2-core AVX-512 BF16 / AMX development CPU, the paper's DMCS detector (K 64, 32 filters) on
one 64x64 frame: 1.50 ms under autocast, 1.26 ms with the kernels cast once. The outputs are
identical: autocast casts the same kernels, biases and inputs to the same dtype.

>>> from keypoint_wm.model import ModelConfig, StructVRNN
>>> model = StructVRNN(ModelConfig(num_keypoints=4, image_size=32)).eval()
>>> detector = InferenceDetector(model)
>>> detector(torch.zeros(2, 3, 32, 32)).shape
torch.Size([2, 4, 3])
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from keypoint_wm.model.image_nets import maybe_channels_last
from keypoint_wm.model.struct_vrnn import StructVRNN, detector_output_to_keypoints

__all__ = ["InferenceDetector"]


class InferenceDetector(nn.Module):
    """A snapshot of ``model``'s detector, in ``model``'s image precision, without gradients.

    ``forward(images)`` equals ``model.detect(images[:, None])[0][:, 0]`` for the weights at
    construction (later training of ``model`` does not reach the snapshot): images
    ``[N, 3, S, S]`` float in [-0.5, 0.5] -> keypoints ``[N, K, 3]`` float32 (x, y in
    [-1, 1], y up; scale in [0, 1]), or, for ``representation="cnn"``, the CNN-VRNN's
    features ``[N, K, 3]`` in [-1, 1].
    """

    def __init__(self, model: StructVRNN) -> None:
        super().__init__()
        self.detector = copy.deepcopy(model.detector).eval().requires_grad_(False)
        self.dtype = model.image_autocast_dtype
        self.channels_last = model.image_channels_last
        if self.dtype is not None:  # the convolutions autocast would cast on every call
            for module in self.detector.modules():
                if isinstance(module, nn.Conv2d):
                    module.to(self.dtype)
        self.config = model.config

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        size = self.config.image_size
        if images.dim() != 4 or tuple(images.shape[1:]) != (3, size, size):
            raise ValueError(f"images must be [N, 3, {size}, {size}], got {tuple(images.shape)}")
        x = maybe_channels_last(images, self.channels_last)
        if self.dtype is not None:
            x = x.to(self.dtype)
        with torch.autocast(device_type=images.device.type, enabled=False):
            return detector_output_to_keypoints(self.detector(x).float(), self.config)
