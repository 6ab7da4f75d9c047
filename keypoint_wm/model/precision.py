"""Precision modes of the image networks and which one is fast on a device.

On a CPU without native bf16 convolutions (AVX2 only: no AVX-512 BF16 / AMX), bf16 autocast
makes PyTorch fall back to a reference convolution kernel that is many times slower than
float32 (measured on the 2-core development machine: a 3x3 conv, batch 64, 32 channels,
64x64: float32 0.42 s, float32 channels_last 0.32 s, bf16 channels_last 1.9 s, bf16 NCHW
37 s). :func:`preferred_precision` picks the mode to use.
"""

from __future__ import annotations

import torch


def bf16_is_fast(device: torch.device | str = "cpu") -> bool:
    """Whether bf16 convolutions are native on ``device``.

    CUDA: ``torch.cuda.is_bf16_supported()``. CPU: oneDNN's bf16 support (AVX-512 BF16 or
    AMX); on an AVX2-only CPU PyTorch runs bf16 convolutions in a slow reference kernel
    (measured here: a 3x3 conv 6x slower than float32 in channels_last, 90x in NCHW).
    """
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def preferred_precision(device: torch.device | str = "cpu") -> str:
    """The fastest mode of :data:`PRECISIONS` for ``device``.

    ``"bf16"`` where bf16 convolutions are native, else ``"channels_last"`` on CPU and
    ``"fp32"`` elsewhere.
    """
    device = torch.device(device)
    if bf16_is_fast(device):
        return "bf16"
    return "channels_last" if device.type == "cpu" else "fp32"


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> the fastest numerically safe mode for the device
    (:func:`preferred_precision`: bf16 autocast only where bf16
    convolutions are native; channels_last fp32 on AVX2-only CPUs)."""
    return preferred_precision(device) if precision == "auto" else precision
