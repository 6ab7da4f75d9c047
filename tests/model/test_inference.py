"""InferenceDetector: the latent wrappers' detector gives what StructVRNN.detect gives."""

from __future__ import annotations

import doctest
import warnings

import pytest
import torch

import keypoint_wm.model.inference
from keypoint_wm.model import InferenceDetector, ModelConfig, StructVRNN

CONFIG = dict(num_keypoints=5, image_size=32, heatmap_width=8, num_encoder_filters=4)


def _model(precision: str, **extra) -> StructVRNN:
    torch.manual_seed(0)
    model = StructVRNN(ModelConfig(**CONFIG, **extra)).eval()
    with warnings.catch_warnings():  # bf16 on a CPU without native bf16 warns (slow, exact)
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.set_precision(precision)


@pytest.mark.parametrize("precision", ["fp32", "channels_last", "bf16"])
@pytest.mark.parametrize("representation", ["keypoints", "cnn"])
def test_equals_the_models_detect(precision, representation):
    model = _model(precision, representation=representation)
    images = torch.rand(3, 3, 32, 32) - 0.5
    with torch.no_grad():
        expected = model.detect(images[:, None])[0][:, 0]
    got = InferenceDetector(model)(images)
    assert got.dtype == torch.float32 and got.shape == (3, 5, 3)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_bf16_snapshot_holds_bf16_kernels_and_leaves_the_model_alone():
    model = _model("bf16")
    detector = InferenceDetector(model)
    convs = [m for m in detector.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.dtype == torch.bfloat16 for c in convs)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not any(p.requires_grad for p in detector.parameters())


def test_wrong_image_shape_is_explained():
    with pytest.raises(ValueError, match=r"images must be \[N, 3, 32, 32\]"):
        InferenceDetector(_model("fp32"))(torch.zeros(1, 1, 3, 32, 32))


def test_module_example_runs():
    result = doctest.testmod(keypoint_wm.model.inference, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0
