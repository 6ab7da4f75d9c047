from __future__ import annotations

import numpy as np
import pytest
import torch

from keypoint_wm.conventions import pixel_to_keypoint
from keypoint_wm.model.keypoint_ops import (
    add_coord_channels,
    keypoints_to_maps,
    maps_to_keypoints,
)


def one_pixel_map(row: int, col: int, size: int = 16) -> torch.Tensor:
    maps = torch.zeros(1, 1, size, size)
    maps[0, 0, row, col] = 1.0
    return maps


@pytest.mark.parametrize(
    ("row", "col", "expected"),
    [(0, 0, (-1.0, 1.0)), (15, 15, (1.0, -1.0)), (0, 15, (1.0, 1.0)), (15, 0, (-1.0, -1.0))],
)
def test_bright_pixel_corners(row: int, col: int, expected: tuple[float, float]) -> None:
    kp = maps_to_keypoints(one_pixel_map(row, col))
    assert kp.shape == (1, 1, 3)
    assert kp[0, 0, 0].item() == pytest.approx(expected[0], abs=1e-3)
    assert kp[0, 0, 1].item() == pytest.approx(expected[1], abs=1e-3)


def test_matches_pixel_convention() -> None:
    row, col = 3, 11
    kp = maps_to_keypoints(one_pixel_map(row, col))[0, 0, :2].numpy()
    expected = pixel_to_keypoint(np.array([col, row], dtype=float), 16)
    np.testing.assert_allclose(kp, expected, atol=1e-3)


def test_empty_map_has_scale_zero_and_centre() -> None:
    maps = torch.zeros(2, 3, 16, 16)
    kp = maps_to_keypoints(maps)
    torch.testing.assert_close(kp, torch.zeros(2, 3, 3), atol=1e-6, rtol=0)
    kp_none = maps_to_keypoints(maps, "none")
    assert torch.all(kp_none[..., 2] == 0)


def test_scale_normalisation() -> None:
    maps = torch.zeros(1, 3, 8, 8)
    maps[0, 0] = 2.0
    maps[0, 1] = 1.0
    kp = maps_to_keypoints(maps, "max")
    torch.testing.assert_close(kp[0, :, 2], torch.tensor([1.0, 0.5, 0.0]), atol=1e-5, rtol=0)
    raw = maps_to_keypoints(maps, "none")
    torch.testing.assert_close(raw[0, :, 2], torch.tensor([2.0, 1.0, 0.0]))


def test_keypoints_to_maps_peak_and_amplitude() -> None:
    kp = torch.tensor([[[-1.0, 1.0, 0.5], [1.0, -1.0, 2.0], [0.0, 0.0, -1.0]]])
    maps = keypoints_to_maps(kp, heatmap_width=16, sigma=1.5)
    assert maps.shape == (1, 3, 16, 16)
    assert maps[0, 0].argmax().item() == 0  # top-left
    assert maps[0, 1].argmax().item() == 16 * 16 - 1  # bottom-right
    assert maps[0, 0].max().item() == pytest.approx(0.5)
    assert maps[0, 1].max().item() == pytest.approx(1.0)  # scale clamped to 1
    assert maps[0, 2].abs().max().item() == 0.0  # negative scale clamped to 0
    ones = keypoints_to_maps(kp, heatmap_width=16, sigma=1.5, amplitude="one")
    assert ones[0, 2].max().item() > 0.0
    assert ones[0, 0].max().item() == pytest.approx(1.0)


def test_keypoints_to_maps_width_is_authors_formula() -> None:
    # s = sigma / heatmap_width on the [-1, 1] grid: one grid step (2/15) away from the peak
    # the blob is exp(-(2/15)^2 / (2 s^2)).
    sigma, width = 1.5, 16
    maps = keypoints_to_maps(torch.tensor([[[-1.0, 1.0, 1.0]]]), width, sigma)
    s = sigma / width
    assert maps[0, 0, 0, 1].item() == pytest.approx(np.exp(-((2 / 15) ** 2) / (2 * s**2)), rel=1e-4)


def test_round_trip() -> None:
    kp = torch.tensor([[[-0.5, 0.3, 1.0], [0.6, -0.7, 1.0]]])
    maps = keypoints_to_maps(kp, 32, sigma=3.0)
    back = maps_to_keypoints(maps)
    torch.testing.assert_close(back[..., :2], kp[..., :2], atol=2e-2, rtol=0)


def test_add_coord_channels() -> None:
    x = torch.zeros(2, 3, 4, 5)
    out = add_coord_channels(x)
    assert out.shape == (2, 5, 4, 5)
    torch.testing.assert_close(out[0, 3, 0], torch.linspace(-1, 1, 5))  # x along width
    torch.testing.assert_close(out[0, 4, :, 0], torch.linspace(1, -1, 4))  # y up
    assert add_coord_channels(x.bfloat16()).dtype == torch.bfloat16
