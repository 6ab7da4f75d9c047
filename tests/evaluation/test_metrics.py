"""PSNR, SSIM, confidence intervals and the Fréchet distance against their formulas."""

from __future__ import annotations

import numpy as np
import pytest

from keypoint_wm.evaluation.metrics import frechet_distance, mean_ci, psnr, ssim


def test_psnr_of_identical_images_is_infinite_unless_capped():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    assert np.isinf(psnr(image, image)).all()
    np.testing.assert_allclose(psnr(image, image, max_db=100.0), 100.0)


def test_psnr_of_known_noise_matches_the_formula():
    rng = np.random.default_rng(1)
    clean = rng.uniform(0.2, 0.8, size=(3, 4, 20, 20, 3))
    noisy = clean + rng.choice([-0.1, 0.1], size=clean.shape)  # MSE exactly 0.01
    np.testing.assert_allclose(psnr(clean, noisy), 20.0, atol=1e-9)
    assert psnr(clean, noisy).shape == (3, 4)
    # uint8 input is scaled by 1/255: a difference of 51 levels is 0.2, MSE 0.04, ~13.98 dB.
    a = np.full((1, 8, 8, 3), 100, np.uint8)
    np.testing.assert_allclose(psnr(a, a + 51), 10 * np.log10(1 / 0.04), atol=1e-9)


def test_ssim_is_one_for_identical_images_and_drops_with_noise():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(ssim(image, image), 1.0, atol=1e-12)
    noisy = np.clip(image + rng.normal(0, 40, image.shape), 0, 255).astype(np.uint8)
    very_noisy = np.clip(image + rng.normal(0, 120, image.shape), 0, 255).astype(np.uint8)
    assert (ssim(image, noisy) < 0.99).all()
    assert (ssim(image, very_noisy) < ssim(image, noisy)).all()


def test_ssim_of_a_constant_shift_follows_the_luminance_term():
    """Flat images: SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)."""
    x, y = np.full((1, 16, 16, 3), 0.4), np.full((1, 16, 16, 3), 0.6)
    c1 = 0.01**2
    expected = (2 * 0.4 * 0.6 + c1) / (0.4**2 + 0.6**2 + c1)
    np.testing.assert_allclose(ssim(x, y), expected, rtol=1e-9)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="equal shapes"):
        psnr(np.zeros((2, 8, 8, 3)), np.zeros((2, 8, 9, 3)))


def test_confidence_interval_uses_students_t():
    values = np.array([1.0, 2.0, 3.0, 4.0])
    mean, half = mean_ci(values)
    assert mean == pytest.approx(2.5)
    assert half == pytest.approx(3.182 * np.std(values, ddof=1) / 2)
    assert np.isnan(mean_ci(np.array([1.0]))[1])


def test_frechet_distance_is_zero_for_equal_sets_and_the_mean_shift_for_shifted_ones():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(500, 4))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.0, 0.5])
    assert frechet_distance(a, a + shift) == pytest.approx((shift**2).sum(), rel=1e-6)
