"""The two places where the paper presets follow the authors' code: the sparsity loss on raw
heatmap means and the reconstructor's channels (halved once per resolution level)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from keypoint_wm.model import losses
from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.image_nets import Reconstructor
from keypoint_wm.model.struct_vrnn import LossSchedule, StructVRNN

# mu_btk, the spatial means of the raw maps: B = 2, T = 3, K = 2.
MEANS = [
    [[1.0, 3.0], [2.0, 0.0], [1.0, 1.0]],
    [[0.5, 0.5], [4.0, 2.0], [3.0, 1.0]],
]


def test_heatmap_sparsity_is_the_authors_reduction_by_hand() -> None:
    heatmaps = torch.tensor(MEANS)[..., None, None].expand(2, 3, 2, 2, 2).clone()
    heatmaps[0, 0, 1] = torch.tensor([[12.0, 0.0], [0.0, 0.0]])  # uneven, mean still 3
    # Per frame, the mean of |mu| over batch and keypoints: (1 + 3 + 0.5 + 0.5) / 4 = 1.25,
    # (2 + 0 + 4 + 2) / 4 = 2, (1 + 1 + 3 + 1) / 4 = 1.5; summed over the 3 frames, 4.75;
    # divided by the batch size 2: 2.375 (the plain mean over everything would be 19/12).
    assert losses.heatmap_sparsity_loss(heatmaps).item() == pytest.approx(2.375)


def test_model_puts_the_authors_sparsity_on_its_raw_heatmaps(
    tiny_config: Callable, moving_dots: Callable
) -> None:
    model = StructVRNN(tiny_config(sparsity_target="heatmap_mean"))
    out = model(moving_dots(2, 6), None, LossSchedule(0.1, 0.5, 0.5))
    assert out.heatmaps is not None
    means = out.heatmaps.mean(dim=(-2, -1))  # [B, T, K], > 0 (softplus)
    expected = means.mean(dim=(0, 2)).sum() / 2
    torch.testing.assert_close(out.terms["sparsity"], expected)
    on_scales = StructVRNN(tiny_config(sparsity_target="scale"))
    out = on_scales(moving_dots(2, 6), None, LossSchedule(0.1, 0.5, 0.5))
    torch.testing.assert_close(out.terms["sparsity"], out.keypoints[..., 2].mean())


def _conv_channels(reconstructor: Reconstructor) -> list[tuple[int, int]]:
    """(in, out) of the reconstructor's 3x3 convs, bottom (16x16) to top (64x64)."""
    return [
        (conv.in_channels, conv.out_channels)
        for level in reconstructor.scales
        for conv in level  # type: ignore[union-attr]
        if isinstance(conv, nn.Conv2d)
    ]


# 64x64 images, 16x16 maps, 32 filters: the decoder starts from 32 * 64 / 16 = 128 channels.
@pytest.mark.parametrize(
    ("layers", "option", "expected"),
    [
        (1, "per_conv", [(128, 64), (64, 32)]),
        (1, "per_level", [(128, 64), (64, 32)]),
        (2, "per_conv", [(128, 64), (64, 32), (32, 16), (16, 8)]),
        (2, "per_level", [(128, 64), (64, 64), (64, 32), (32, 32)]),
    ],
)
def test_reconstructor_channels(layers: int, option: str, expected: list) -> None:
    config = ModelConfig(layers_per_scale=layers, reconstructor_channels=option)
    reconstructor = Reconstructor(config, appearance_channels=128)
    assert _conv_channels(reconstructor) == expected
    assert reconstructor.to_image.in_channels == expected[-1][1]
    maps = torch.zeros(1, config.num_keypoints, 16, 16)
    out = reconstructor(maps, torch.zeros(1, 128, 16, 16), maps, torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 3, 64, 64)


def test_human36m_preset_decodes_with_32_channels_at_full_resolution() -> None:
    from keypoint_wm.presets import get_preset

    model = StructVRNN(get_preset("human36m").build().model)
    assert _conv_channels(model.reconstructor)[-1] == (32, 32)


def test_a_run_that_does_not_record_its_channels_is_refused_in_one_line(tmp_path) -> None:
    """``ModelConfig()`` is the authors' network (``per_level``); a run whose config.json
    lacks ``reconstructor_channels`` is not loaded into today's default, which may not be
    the network it trained: ``load`` names what to add, in one line."""
    import keypoint_wm
    from keypoint_wm.checkpoint import CheckpointError, save_checkpoint, write_config
    from keypoint_wm.presets import get_preset

    assert ModelConfig().reconstructor_channels == "per_level"
    assert ModelConfig().sparsity_target == "heatmap_mean"
    config = (
        get_preset("human36m-cpu")
        .build()
        .with_overrides(
            {"model.layers_per_scale": 2, "model.num_keypoints": 4, "model.rnn_units": 16}
        )
    )
    saved = config.to_dict()
    model = StructVRNN(config.model)
    write_config(tmp_path, saved)
    save_checkpoint(tmp_path, 1, model.state_dict(), {"optimizer": {}, "rng": []}, {})
    loaded = keypoint_wm.load(tmp_path, device="cpu")  # recorded: per_conv, as trained
    assert loaded.config.model.reconstructor_channels == "per_conv"
    del saved["model"]["reconstructor_channels"]
    del saved["train"]["validation_fraction"]
    write_config(tmp_path, saved)
    with pytest.raises(CheckpointError) as error:
        keypoint_wm.load(tmp_path, device="cpu")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "config.json") in message
    assert "model.reconstructor_channels, train.validation_fraction" in message
