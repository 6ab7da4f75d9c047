"""Weight-free image metrics and summary statistics: PSNR, SSIM, means with 95% CIs, and the
Fréchet distance (for FVD with user-supplied network weights).

Images are uint8 ``[..., H, W, 3]`` (scaled by 1/255) or float ``[..., H, W, 3]`` in [0, 1];
both arguments of a metric must have the same shape. Metrics are computed per image (over
height, width and channels) and returned with the leading shape ``[...]``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip
"""Student's t 97.5% quantiles for 1 ... 30 degrees of freedom (beyond: 1.96)."""
_SSIM_CHUNK_IMAGES = 256


def _as_tensor(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(images))


def _unit(tensor: torch.Tensor) -> torch.Tensor:
    """A chunk of images as float64 in [0, 1] (converted chunk by chunk to bound memory)."""
    if tensor.dtype == torch.uint8:
        return tensor.double() / 255.0
    return tensor.double()


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape or a.dim() < 3 or a.shape[-1] != 3:
        raise ValueError(
            f"images must have equal shapes [..., H, W, 3], got {list(a.shape)} and {list(b.shape)}"
        )


def psnr(a: np.ndarray, b: np.ndarray, max_db: float | None = None) -> np.ndarray:
    """Peak signal-to-noise ratio in dB, ``10 log10(1 / MSE)`` with values in [0, 1].

    Args:
        a, b: images ``[..., H, W, 3]`` (uint8 or float in [0, 1]).
        max_db: cap (identical images give ``inf`` without one).

    Returns:
        float64 ``[...]``.
    """
    x, y = _as_tensor(a), _as_tensor(b)
    _check_pair(x, y)
    lead = x.shape[:-3]
    x, y = x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])
    chunk = 4 * _SSIM_CHUNK_IMAGES
    mse = torch.cat(
        [
            ((_unit(x[i : i + chunk]) - _unit(y[i : i + chunk])) ** 2).mean(dim=(1, 2, 3))
            for i in range(0, len(x), chunk)
        ]
    )
    squared_error = mse.numpy().reshape(lead)
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(1.0 / squared_error)
    return value if max_db is None else np.minimum(value, max_db)


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-(coords**2) / (2 * sigma**2))
    return window / window.sum()


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Structural similarity (Wang et al. 2004) per image, as ``tf.image.ssim`` computes it.

    An 11 x 11 Gaussian window (sigma 1.5; smaller for images under 11 pixels), valid
    convolution, ``K1 = 0.01``, ``K2 = 0.03``, data range 1, per channel; the mean of the SSIM
    map over positions and channels. Identical images give 1.

    Returns:
        float64 ``[...]`` in [-1, 1].
    """
    x, y = _as_tensor(a), _as_tensor(b)
    _check_pair(x, y)
    lead = x.shape[:-3]
    height, width = x.shape[-3:-1]
    size = min(window, height, width)
    g = _gaussian_window(size, sigma)
    x = x.reshape(-1, height, width, 3).permute(0, 3, 1, 2).reshape(-1, 1, height, width)
    y = y.reshape(-1, height, width, 3).permute(0, 3, 1, 2).reshape(-1, 1, height, width)

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = torch.nn.functional.conv2d(t, g.view(1, 1, -1, 1))
        return torch.nn.functional.conv2d(t, g.view(1, 1, 1, -1))

    c1, c2 = 0.01**2, 0.03**2

    def per_image(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mu_x, mu_y = blur(x), blur(y)
        var_x = blur(x * x) - mu_x**2
        var_y = blur(y * y) - mu_y**2
        cov = blur(x * y) - mu_x * mu_y
        luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
        contrast = (2 * cov + c2) / (var_x + var_y + c2)
        return (luminance * contrast).view(-1, 3, *luminance.shape[-2:]).mean(dim=(1, 2, 3))

    chunk = 3 * _SSIM_CHUNK_IMAGES  # bounded memory: a few hundred images at a time
    values = [
        per_image(_unit(x[i : i + chunk]), _unit(y[i : i + chunk])) for i in range(0, len(x), chunk)
    ]
    return torch.cat(values).numpy().reshape(lead)


def mean_ci(values: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and half-width of its 95% confidence interval along ``axis`` (Student's t).

    The half-width is ``t_{0.975, n-1} * std / sqrt(n)``; NaN with fewer than 2 values.
    Infinite values (e.g. PSNR of identical frames) should be capped before.
    """
    values = np.asarray(values, np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    t = T_975[n - 2] if n - 1 <= len(T_975) else 1.96
    half = t * values.std(axis=axis, ddof=1) / math.sqrt(n)
    return mean, half


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``[n, D]``
    (the FVD / FID formula): ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))``."""
    a = np.asarray(features_a, np.float64)
    b = np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"features must be [n >= 2, D] each, got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    cov_a, cov_b = np.atleast_2d(cov_a), np.atleast_2d(cov_b)
    # tr((S_a S_b)^(1/2)) = sum of sqrt of the eigenvalues of S_a^(1/2) S_b S_a^(1/2).
    eigval, eigvec = np.linalg.eigh(cov_a)
    root_a = (eigvec * np.sqrt(np.clip(eigval, 0, None))) @ eigvec.T
    middle = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
    value = ((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(value, 0.0))


def finite_or_none(values: np.ndarray | float) -> list | float | None:
    """JSON-friendly: arrays to lists, NaN to ``None``."""
    array = np.asarray(values, np.float64)
    if array.ndim == 0:
        return None if not np.isfinite(array) else float(array)
    return [None if not np.isfinite(v) else float(v) for v in array.ravel()]
