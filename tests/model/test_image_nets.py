"""The image networks' fast (channels_last) paths compute what their plain float32 paths do."""

from __future__ import annotations

import copy

import pytest
import torch

from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.image_nets import Reconstructor


def _inputs(batch: int, steps: int, config: ModelConfig, channels: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    k, w, s = config.num_keypoints, config.heatmap_width, config.image_size
    shapes = [(batch * steps, k, w, w), (batch, channels, w, w), (batch, k, w, w), (batch, 3, s, s)]
    return [torch.rand(shape, generator=generator).requires_grad_() for shape in shapes]


@pytest.mark.parametrize("steps", [1, 3])
def test_reconstructor_input_by_parts_matches_the_concatenated_conv(steps: int) -> None:
    config = ModelConfig(image_size=32, heatmap_width=8, num_keypoints=5, num_encoder_filters=4)
    torch.manual_seed(0)
    plain = Reconstructor(config, appearance_channels=16)
    with torch.no_grad():  # non-zero biases, so that the per-sequence bias is checked too
        for parameter in plain.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    fast = copy.deepcopy(plain)
    fast.channels_last = True
    inputs = _inputs(2, steps, config, 16)
    fast_inputs = [x.detach().contiguous(memory_format=torch.channels_last) for x in inputs]
    fast_inputs = [x.requires_grad_() for x in fast_inputs]

    expected, got = plain(*inputs), fast(*fast_inputs)
    assert got.shape == expected.shape == (2 * steps, 3, 32, 32)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # Frame t of sequence b uses sequence b's frame 1 (sequence-major order).
    assert not torch.allclose(got[0], got[steps])

    expected.square().sum().backward()
    got.square().sum().backward()
    for x, y in zip(inputs, fast_inputs, strict=True):
        torch.testing.assert_close(y.grad, x.grad, atol=1e-4, rtol=1e-4)
    for (name, p), q in zip(plain.named_parameters(), fast.parameters(), strict=True):
        torch.testing.assert_close(q.grad, p.grad, atol=1e-4, rtol=1e-4, msg=name)


def test_reconstructor_refuses_frames_not_a_multiple_of_the_sequences() -> None:
    config = ModelConfig(image_size=32, heatmap_width=8, num_keypoints=5, num_encoder_filters=4)
    reconstructor = Reconstructor(config, appearance_channels=16)
    maps, features, first_maps, first = _inputs(2, 2, config, 16)
    with pytest.raises(ValueError, match="multiple"):
        reconstructor(maps[:3], features, first_maps, first)
