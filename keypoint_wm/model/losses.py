"""Loss terms of the Struct-VRNN model, with the authors' reductions.

Reductions (read from the authors' TensorFlow code, google-research/video_structure, and
kept so that the Table S1 loss weights mean the same thing here):

* image: ``tf.nn.l2_loss(v - v_hat) / (B * T)``, i.e. HALF the sum of squared errors over
  pixels, channels and frames, divided by batch size and number of frames.
* keypoint reconstruction: likewise ``0.5 * sum((x - x_hat)**2) / (B * T)`` over all
  frames; here split into an observed-steps and a predicted-steps part, each divided by the
  same ``B * T`` (T = all frames), so that their sum is the authors' single term.
* KL: KL(posterior || prior) summed over latent dimensions, averaged over batch and
  observed steps.
* separation: per sequence, the K x K matrix of Gaussians of the mean squared distance of
  the centred trajectories; averaged over the batch, summed off the diagonal, divided by
  K (K - 1), so it lies in [0, 1] (1: all trajectories identical up to an offset).
* sparsity on the scales (``sparsity_target="scale"``): mean of ``|scale|`` over batch,
  time and K. On the raw heatmap means (``"heatmap_mean"``, the authors' term): their
  activity regulariser, ``mean over batch and K of |mu_k|``, is attached to the detector's
  heatmap layer, which runs once per frame, so one term per frame is added; Keras divides
  each activity-regularisation term by the batch size. Hence
  ``sum_t mean_{b,k} |mu_btk| / B`` (:func:`heatmap_sparsity_loss`; docs/design.md,
  "The model").
* weight decay: Keras ``l2(w)``: ``w * sum(kernel**2)``; the factor is applied by the
  caller (``ModelConfig.weight_decay``).

All functions return float32 scalars (or the documented shapes).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from keypoint_wm.model.keypoint_ops import EPSILON, x_grid, y_grid


def spatial_distributions(heatmaps: Tensor) -> Tensor:
    """Each map as a distribution over its pixels, after adding the detector's epsilon
    (as :func:`~keypoint_wm.model.keypoint_ops.maps_to_keypoints` does).

    Args:
        heatmaps: ``[..., H, W]`` non-negative maps.

    Returns:
        ``[..., H * W]`` float32, summing to 1 over the last dimension.
    """
    maps = heatmaps.float().flatten(-2) + EPSILON
    return maps / maps.sum(dim=-1, keepdim=True)


def image_loss(images: Tensor, reconstruction: Tensor) -> Tensor:
    """Authors' image L2 loss: ``0.5 * sum((v - v_hat)**2) / (B * T)``.

    Args:
        images: ``[B, T, C, H, W]`` targets (in [-0.5, 0.5]).
        reconstruction: same shape.

    Returns:
        Scalar: half the squared error summed over pixels, channels and frames, divided by
        ``B * T``.
    """
    batch, steps = images.shape[:2]
    diff = images.float() - reconstruction.float()
    return 0.5 * diff.pow(2).sum() / (batch * steps)


def keypoint_loss(target: Tensor, decoded: Tensor, steps: slice, total_steps: int) -> Tensor:
    """Authors' keypoint L2 loss over ``steps``: ``0.5 * sum(err**2) / (B * total_steps)``.

    Args:
        target: ``[B, T, ...]`` detected keypoints (gradient-stopped by the caller).
        decoded: ``[B, T, ...]`` keypoints decoded by the dynamics model.
        steps: The frames this term covers (e.g. the observed ones).
        total_steps: T of the whole sequence (the authors divide by B * T once for all
            frames).

    Returns:
        Scalar (0 when ``steps`` is empty).
    """
    diff = target[:, steps].float() - decoded[:, steps].float()
    return 0.5 * diff.pow(2).sum() / (target.shape[0] * total_steps)


def temporal_separation_loss(keypoints: Tensor, sigma: float) -> Tensor:
    """Temporal separation loss (paper eq. 5), normalised to [0, 1] like the authors' code.

    Each keypoint's (x, y) trajectory is centred on its temporal mean;
    ``d_kk' = mean_t ||c_tk - c_tk'||^2``; the loss matrix ``exp(-d / (2 sigma^2))`` is
    averaged over the batch, summed over the K (K - 1) off-diagonal entries and divided by
    K (K - 1). Trajectories that move in parallel (identical up to an offset) score 1,
    independent ones score near 0.

    Args:
        keypoints: ``[B, T, K, >=2]`` (only x and y are used).
        sigma: sigma_sep in keypoint units.

    Returns:
        Scalar in [0, 1] (0 for K = 1).
    """
    k = keypoints.shape[2]
    if k < 2:
        return keypoints.new_zeros((), dtype=torch.float32)
    xy = keypoints[..., :2].float()
    xy = xy - xy.mean(dim=1, keepdim=True)  # centre each trajectory over time
    diff = xy.unsqueeze(3) - xy.unsqueeze(2)  # [B, T, K, K, 2]
    d = diff.pow(2).sum(dim=-1).mean(dim=1)  # [B, K, K]
    matrix = torch.exp(-d / (2.0 * sigma**2)).mean(dim=0)  # [K, K]
    off_diagonal = matrix.sum() - torch.diagonal(matrix).sum()
    return off_diagonal / (k * (k - 1))


def heatmap_overlap_loss(heatmaps: Tensor) -> Tensor:
    """How much the K heatmaps of a frame cover the same pixels.

    Each map is normalised to a distribution over its pixels (after adding the detector's
    epsilon, as :func:`~keypoint_wm.model.keypoint_ops.maps_to_keypoints` does); the loss is
    the inner product ``sum_p q_k(p) q_k'(p)`` summed over the other keypoints ``k' != k``
    and averaged over keypoints and frames: how many other keypoints share a keypoint's
    pixels (two maps peaked on the same pixel share 1, maps on different pixels 0). Its gradient lowers a map where other maps are concentrated and, through the
    normalisation, raises it most where it is already high elsewhere: a keypoint that shares
    an object with another one moves to its next-best object.

    Args:
        heatmaps: ``[..., K, H, W]`` non-negative maps.

    Returns:
        Scalar in [0, K - 1] (0 for K = 1).
    """
    k = heatmaps.shape[-3]
    if k < 2:
        return heatmaps.new_zeros((), dtype=torch.float32)
    q = spatial_distributions(heatmaps).flatten(0, -3)  # [N, K, P]
    gram = q @ q.transpose(1, 2)  # [N, K, K]
    cross = gram.sum(dim=(1, 2)) - torch.diagonal(gram, dim1=1, dim2=2).sum(dim=1)
    return cross.mean() / k


def heatmap_concentration_loss(heatmaps: Tensor) -> Tensor:
    """Spatial variance of each spatially normalised heatmap around its own centre.

    The detector's keypoint is the centre of mass of its map; a map with several modes
    (one keypoint responding to several objects) puts the keypoint between them, where
    the reconstructor can use it for nothing and the image loss gives it no useful
    gradient. This term, ``sum_p q_k(p) ||g_p - mu_k||^2`` averaged over keypoints and
    frames (``g_p`` the cell's position in the [-1, 1] frame, ``mu_k`` the map's centre),
    lowers the modes far from the centre; the larger mode wins and the map becomes
    unimodal (not in the paper; docs/design.md, "Known pitfall").

    Args:
        heatmaps: ``[..., K, H, W]`` non-negative maps (H = W).

    Returns:
        Scalar >= 0: 0 for maps on a single cell, ``2 (n + 1) / (3 (n - 1))`` for uniform
        ``n x n`` maps (0.76 at n = 16).
    """
    height, width = heatmaps.shape[-2:]
    q = spatial_distributions(heatmaps).unflatten(-1, (height, width))
    xs, ys = x_grid(width, q.device), y_grid(height, q.device)
    qx, qy = q.sum(dim=-2), q.sum(dim=-1)  # marginals over rows / columns
    mean_x = (qx * xs).sum(dim=-1, keepdim=True)
    mean_y = (qy * ys).sum(dim=-1, keepdim=True)
    var = (qx * (xs - mean_x).pow(2)).sum(dim=-1) + (qy * (ys - mean_y).pow(2)).sum(dim=-1)
    return var.mean()


def motion_map(images: Tensor, width: int) -> Tensor:
    """Where each frame differs from its sequence's per-pixel temporal median.

    Args:
        images: ``[B, T, C, H, W]`` frames.
        width: side of the output maps (the heatmap width; ``H`` must be a multiple).

    Returns:
        ``[B, T, width, width]`` float32, each map a distribution over its cells (sum 1):
        the channel-summed absolute difference to the median frame, average-pooled. A frame
        with no difference gives a uniform map.
    """
    images = images.float()
    background = images.median(dim=1, keepdim=True).values
    diff = (images - background).abs().sum(dim=2)  # [B, T, H, W]
    batch, steps, height = diff.shape[:3]
    pooled = torch.nn.functional.avg_pool2d(diff.flatten(0, 1), height // width)
    pooled = pooled.view(batch, steps, -1) + 1e-6
    return (pooled / pooled.sum(dim=-1, keepdim=True)).view(batch, steps, width, width)


def motion_prior_loss(heatmaps: Tensor, motion: Tensor) -> Tensor:
    """Cross-entropy pulling each keypoint's heatmap onto moving image regions.

    ``-log(sum_p q_k(p) m(p) + eps)`` with ``q_k`` the spatially normalised heatmap and ``m``
    the :func:`motion_map`, averaged over keypoints and frames. A bootstrapping curriculum
    (not in the paper): objects are what moves, and a keypoint that sits on a moving object
    receives gradient from the image loss; annealed to 0 by the trainer.

    Args:
        heatmaps: ``[B, T, K, w, w]`` non-negative maps.
        motion: ``[B, T, w, w]`` distributions (:func:`motion_map`).

    Returns:
        Scalar >= 0 (0 only if every keypoint sits where all the motion is).
    """
    q = spatial_distributions(heatmaps)  # [B, T, K, P]
    attention = (q * motion.flatten(-2).unsqueeze(2)).sum(dim=-1)  # [B, T, K]
    return -torch.log(attention + 1e-6).mean()


def motion_coverage_loss(heatmaps: Tensor, motion: Tensor) -> Tensor:
    """KL from the motion map to the keypoints' mixture: is every moving region covered?

    ``KL(m || mean_k q_k)`` with ``q_k`` the spatially normalised heatmaps and ``m`` the
    :func:`motion_map`, averaged over frames. Unlike :func:`motion_prior_loss` (each
    keypoint seeks the strongest motion), this term is mass-covering: a moving region that
    no keypoint covers costs ``-m log(mixture)``, however small the object. The gradient on
    a raw heatmap is divided by that heatmap's total mass, so the diffuse maps of unused
    keypoints move towards uncovered motion while a keypoint peaked on an object stays
    put (not in the paper; a bootstrapping curriculum, docs/design.md,
    "Known pitfall").

    Args:
        heatmaps: ``[B, T, K, w, w]`` non-negative maps.
        motion: ``[B, T, w, w]`` distributions (:func:`motion_map`).

    Returns:
        Scalar >= 0 (0 when the mean normalised heatmap equals the motion map).
    """
    mixture = spatial_distributions(heatmaps).mean(dim=2)  # [B, T, P]
    target = motion.float().flatten(-2)
    kl = (target * (torch.log(target + 1e-12) - torch.log(mixture + 1e-12))).sum(dim=-1)
    return kl.mean()


def sparsity_loss(values: Tensor) -> Tensor:
    """L1 sparsity on the keypoint scales: mean of ``|values|`` over all entries.

    Args:
        values: scales ``[B, T, K]`` (in [0, 1]).

    Returns:
        Scalar >= 0.
    """
    return values.float().abs().mean()


def heatmap_sparsity_loss(heatmaps: Tensor) -> Tensor:
    """The authors' sparsity term on the raw heatmap means mu_k (paper eq. S3).

    Their code attaches ``mean over batch and K of |mu_k|`` as the activity regulariser of
    the detector's heatmap layer, which runs once per frame; Keras adds one such term per
    call and divides each by the batch size (TF 1.14/1.15, which the code's requirements
    resolve to). So the term is ``sum over frames t of mean_{b,k} |mu_btk|``, divided by B:
    ``T / B`` times the mean over batch, frames and keypoints.

    Args:
        heatmaps: ``[B, T, K, H, W]`` raw (un-normalised, non-negative) detector maps of
            every frame of the training window.

    Returns:
        Scalar >= 0.
    """
    batch = heatmaps.shape[0]
    means = heatmaps.float().mean(dim=(-2, -1))  # mu, [B, T, K]
    return means.abs().mean(dim=(0, 2)).sum() / batch


def kl_normal(mean_q: Tensor, std_q: Tensor, mean_p: Tensor, std_p: Tensor) -> Tensor:
    """KL(N(mean_q, std_q) || N(mean_p, std_p)) of diagonal Gaussians, summed over the last dim.

    Args:
        mean_q, std_q: Posterior parameters ``[..., Z]`` (std > 0).
        mean_p, std_p: Prior parameters ``[..., Z]``.

    Returns:
        ``[...]``, >= 0; exactly 0 where the two distributions are equal.
    """
    var_ratio = (std_q / std_p).pow(2)
    mean_term = ((mean_q - mean_p) / std_p).pow(2)
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio)).sum(dim=-1)


def weight_decay_loss(kernels: Iterable[Tensor]) -> Tensor:
    """Sum of squares of the given kernels (multiply by ``ModelConfig.weight_decay``)."""
    total: Tensor | None = None
    for kernel in kernels:
        term = kernel.float().pow(2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return total
