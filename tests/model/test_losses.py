from __future__ import annotations

import pytest
import torch

from keypoint_wm.model import losses


def trajectories(paths: list[torch.Tensor]) -> torch.Tensor:
    """Stack K ``[T, 2]`` paths into ``[1, T, K, 3]`` keypoints with scale 1."""
    xy = torch.stack(paths, dim=1)
    return torch.cat([xy, torch.ones(*xy.shape[:-1], 1)], dim=-1).unsqueeze(0)


def test_separation_parallel_higher_than_independent() -> None:
    t = torch.linspace(0, 1, 8)
    path = torch.stack([t * 0.5, torch.sin(3 * t) * 0.4], dim=-1)
    parallel = trajectories([path, path + torch.tensor([0.5, -0.2])])
    other = torch.stack([-t * 0.5, torch.cos(5 * t) * 0.4], dim=-1)
    independent = trajectories([path, other])
    sigma = 0.02
    loss_parallel = losses.temporal_separation_loss(parallel, sigma)
    loss_independent = losses.temporal_separation_loss(independent, sigma)
    assert loss_parallel.item() == pytest.approx(1.0)  # identical up to an offset: maximal
    assert loss_independent.item() < 1e-3
    assert loss_parallel > loss_independent


def test_separation_identical_is_maximal_and_normalised() -> None:
    gen = torch.Generator().manual_seed(1)
    path = torch.rand(8, 2, generator=gen)
    same = trajectories([path, path, path])
    assert losses.temporal_separation_loss(same, 0.1).item() == pytest.approx(1.0)
    rand = torch.rand(4, 8, 5, 3, generator=gen)
    value = losses.temporal_separation_loss(rand, 0.1).item()
    assert 0.0 <= value < 1.0
    assert losses.temporal_separation_loss(rand[:, :, :1], 0.1).item() == 0.0


def test_sparsity() -> None:
    scales = torch.tensor([[[0.0, 1.0, -0.5, 0.5]]])
    assert losses.sparsity_loss(scales).item() == pytest.approx(0.5)


def test_kl_zero_when_equal_and_positive_otherwise() -> None:
    mean = torch.randn(4, 6)
    std = torch.rand(4, 6) + 0.1
    kl = losses.kl_normal(mean, std, mean, std)
    assert kl.shape == (4,)
    torch.testing.assert_close(kl, torch.zeros(4), atol=1e-6, rtol=0)
    assert torch.all(losses.kl_normal(mean + 1.0, std, mean, std) > 0)
    # closed form in 1-D: KL(N(1, 1) || N(0, 2))
    value = losses.kl_normal(
        torch.ones(1, 1), torch.ones(1, 1), torch.zeros(1, 1), 2 * torch.ones(1, 1)
    )
    expected = torch.log(torch.tensor(2.0)) + (1 + 1) / (2 * 4) - 0.5
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


def test_image_loss_is_half_sum_over_pixels_mean_over_batch_and_time() -> None:
    images = torch.zeros(2, 3, 3, 4, 4)
    recon = torch.full_like(images, 0.5)
    expected = 0.5 * (0.25 * 3 * 4 * 4)  # per frame
    assert losses.image_loss(images, recon).item() == pytest.approx(expected)


def test_keypoint_loss_split_sums_to_whole() -> None:
    target = torch.randn(2, 6, 12)
    decoded = torch.randn(2, 6, 12)
    whole = 0.5 * (target - decoded).pow(2).sum() / (2 * 6)
    obs = losses.keypoint_loss(target, decoded, slice(0, 3), 6)
    fut = losses.keypoint_loss(target, decoded, slice(3, 6), 6)
    assert (obs + fut).item() == pytest.approx(whole.item(), rel=1e-5)


def test_weight_decay() -> None:
    kernels = [torch.ones(2, 2), 2 * torch.ones(3)]
    assert losses.weight_decay_loss(kernels).item() == pytest.approx(4 + 12)
    assert losses.weight_decay_loss([]).item() == 0.0


def _peaked_maps(positions: list[tuple[int, int]], size: int = 8) -> torch.Tensor:
    maps = torch.zeros(1, len(positions), size, size)
    for k, (row, col) in enumerate(positions):
        maps[0, k, row, col] = 50.0
    return maps


def test_overlap_counts_the_keypoints_sharing_a_peak() -> None:
    shared = losses.heatmap_overlap_loss(_peaked_maps([(2, 2), (2, 2), (2, 2)]))
    pair = losses.heatmap_overlap_loss(_peaked_maps([(2, 2), (2, 2), (7, 1)]))
    distinct = losses.heatmap_overlap_loss(_peaked_maps([(0, 0), (3, 5), (7, 1)]))
    assert shared.item() == pytest.approx(2.0, abs=1e-3)  # each shares with two others
    assert pair.item() == pytest.approx(2.0 / 3.0, abs=1e-3)
    assert distinct.item() == pytest.approx(0.0, abs=1e-4)
    assert losses.heatmap_overlap_loss(_peaked_maps([(1, 1)])).item() == 0.0


def test_overlap_gradient_moves_a_shared_keypoint_to_its_next_best_object() -> None:
    # Keypoint 1 shares keypoint 0's object (pixel A) and responds more weakly at pixel B;
    # maps are softplus(logits) as in the detector, and the gradient is on the logits.
    logits = torch.full((1, 2, 8, 8), -8.0)
    logits[0, :, 2, 2] = 4.0
    logits[0, 1, 6, 5] = 0.0
    logits.requires_grad_(True)
    losses.heatmap_overlap_loss(torch.nn.functional.softplus(logits)).backward()
    grad = logits.grad[0, 1]
    assert grad[2, 2] > 0  # descent lowers the shared peak
    assert grad[6, 5] < 0  # and raises the second-best object...
    assert grad[6, 5] < 100 * grad[0, 7]  # ...far more than an empty background pixel


def test_motion_map_marks_the_moving_object() -> None:
    images = torch.zeros(1, 5, 3, 16, 16)
    for t in range(5):
        images[0, t, :, 2, 2 + 2 * t] = 1.0  # a dot moving right along row 2
    images[0, :, :, 12, 12] = 1.0  # a static dot
    motion = losses.motion_map(images, 8)
    assert motion.sum(dim=(-2, -1)).allclose(torch.ones(1, 5))
    assert motion[0, 0, 1, 1] > 0.9  # the moving dot's cell, frame 0
    assert motion[0, 0, 6, 6] < 1e-3  # the static dot is background


def test_motion_prior_prefers_keypoints_on_moving_regions() -> None:
    motion = torch.zeros(1, 1, 4, 4)
    motion[0, 0, 1, 1] = 1.0
    on = _peaked_maps([(1, 1)], size=4).unsqueeze(0)
    off = _peaked_maps([(3, 3)], size=4).unsqueeze(0)
    assert losses.motion_prior_loss(on, motion) < 0.01
    assert losses.motion_prior_loss(off, motion) > 5.0


def test_motion_coverage_pulls_the_unused_keypoint_onto_the_uncovered_object() -> None:
    # Two moving objects (cells A and B); keypoint 0 is peaked on A, keypoint 1 is a dark,
    # diffuse map (an unused keypoint). Maps are softplus(logits), gradient on the logits.
    motion = torch.full((1, 1, 8, 8), 1e-6)
    motion[0, 0, 2, 2] = motion[0, 0, 6, 5] = 0.5
    motion = motion / motion.sum()
    logits = torch.full((1, 1, 2, 8, 8), -8.0)
    logits[0, 0, 0, 2, 2] = 6.0
    logits.requires_grad_(True)
    loss = losses.motion_coverage_loss(torch.nn.functional.softplus(logits), motion)
    loss.backward()
    grad = logits.grad[0, 0]
    assert grad[1, 6, 5] < 0  # descent raises the unused keypoint's map on object B...
    assert grad[1, 6, 5] < 10 * grad[1, 2, 2]  # ...much more than on the covered object A
    assert grad[1, 6, 5].abs() > 100 * grad[0, 6, 5].abs()  # the peaked keypoint stays put


def test_motion_coverage_is_zero_when_every_moving_object_has_a_keypoint() -> None:
    motion = torch.zeros(1, 1, 4, 4)
    motion[0, 0, 1, 1] = motion[0, 0, 3, 2] = 0.5
    both = _peaked_maps([(1, 1), (3, 2)], size=4).view(1, 1, 2, 4, 4)
    one = _peaked_maps([(1, 1), (1, 1)], size=4).view(1, 1, 2, 4, 4)
    assert losses.motion_coverage_loss(both, motion) < 0.01
    assert losses.motion_coverage_loss(one, motion) > 3.0


def test_concentration_is_zero_for_a_peak_and_high_for_a_flat_map() -> None:
    peak = losses.heatmap_concentration_loss(_peaked_maps([(3, 4)]))
    flat = losses.heatmap_concentration_loss(torch.ones(1, 1, 16, 16))
    assert peak.item() < 1e-3
    assert flat.item() == pytest.approx(2 * (17 / 45), rel=1e-3)  # var of linspace(-1, 1, 16)


def test_concentration_makes_a_two_object_map_pick_the_stronger_object() -> None:
    # One keypoint responding to two objects (a keypoint between them); the stronger one
    # must win: descent lowers the weaker mode's logit more than the stronger one's.
    logits = torch.full((1, 1, 8, 8), -8.0)
    logits[0, 0, 1, 1] = 3.0
    logits[0, 0, 6, 6] = 2.5
    logits.requires_grad_(True)
    losses.heatmap_concentration_loss(torch.nn.functional.softplus(logits)).backward()
    grad = logits.grad[0, 0]
    assert grad[6, 6] > 0  # the weaker mode goes down
    assert grad[6, 6] > grad[1, 1]  # faster than the stronger one
