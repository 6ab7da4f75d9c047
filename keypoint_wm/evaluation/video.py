"""Video prediction quality: the paper's Figures 3 and S10 (``keypoint-wm evaluate video``).

For every test window (the model's observed + predicted steps, non-overlapping windows of
the test split), the model observes the first T0 frames and samples N futures (N = 100 as in
the paper); every sample is decoded to frames. Per predicted step, PSNR and SSIM
(:mod:`keypoint_wm.evaluation.metrics`) compare each sample with the true frame. The
*closest* sample of a window is the one with the best metric averaged over the predicted
steps, the *furthest* the one with the worst, chosen separately for each metric as in the
paper. Curves are means over test windows with 95% confidence intervals (Student's t).
Baseline: the last observed frame copied into every predicted step.

FVD and VGG cosine similarity need network weights that are never downloaded: pass a
TorchScript file. ``vgg_weights``: a module mapping float images ``[N, 3, H, W]`` in [0, 1]
to features ``[N, ...]`` (cosine similarity of the flattened features, per frame, closest
and furthest like PSNR). ``fvd_weights``: a module mapping float videos ``[N, 3, T, H, W]``
in [-1, 1] to features ``[N, D]`` (e.g. an I3D wrapped with its own resizing); FVD is the
Fréchet distance between the features of the true windows and of every sampled window
(the observed true frames followed by the predicted ones). Without them the result says so.

:func:`evaluate_video` returns a :class:`VideoResult`; its ``to_json()`` is the JSON object of
``keypoint-wm evaluate video`` (per run, see :mod:`keypoint_wm.evaluation.seeds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.api import WorldModel
from keypoint_wm.errors import DataError, RunError, UsageError
from keypoint_wm.evaluation.datasets import split_index
from keypoint_wm.evaluation.metrics import finite_or_none, frechet_distance, mean_ci, psnr, ssim
from keypoint_wm.evaluation.seeds import OverSeeds, as_seeds, plus_minus
from keypoint_wm.evaluation.windows import iter_windows
from keypoint_wm.viz import write_figure

WEIGHTS_MESSAGE = (
    "{name} needs network weights, which are never downloaded: pass {flag} PATH "
    "(a TorchScript file; see `keypoint-wm evaluate video --help`). Skipped."
)


@dataclass(frozen=True)
class VideoEvalConfig:
    """Settings of :func:`evaluate_video`."""

    samples: int = 100
    test_fraction: float = 0.2
    max_windows: int = 100
    psnr_cap_db: float = 100.0
    decode_chunk: int = 512  # images decoded per call
    vgg_weights: str | None = None
    fvd_weights: str | None = None


def load_feature_net(path: str | Path, flag: str, device: torch.device) -> torch.jit.ScriptModule:
    """Load a user-supplied TorchScript feature network (never downloads anything)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{flag} {path}: no such file")
    try:
        return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError) as error:
        raise DataError(
            f"{flag} {path}: not a TorchScript module (save one with torch.jit.save): {error}"
        ) from error


def _decode_samples(
    model: WorldModel,
    keypoints: torch.Tensor,
    first: np.ndarray,
    first_kp: torch.Tensor,
    chunk: int,
) -> np.ndarray:
    """``keypoints`` ``[B, N, F, K, 3]`` -> uint8 ``[B, N, F, H, W, 3]``, decoded in chunks."""
    batch, samples, steps = keypoints.shape[:3]
    flat = keypoints.flatten(0, 1)  # [B*N, F, K, 3], batch-major
    firsts = np.repeat(first, samples, axis=0)
    first_kps = first_kp.repeat_interleave(samples, dim=0)
    per_call = max(1, chunk // steps)
    parts = [
        model.decode(flat[i : i + per_call], firsts[i : i + per_call], first_kps[i : i + per_call])
        for i in range(0, flat.shape[0], per_call)
    ]
    images = np.concatenate(parts)
    return images.reshape(batch, samples, *images.shape[1:])


@torch.no_grad()
def _features(
    net: torch.jit.ScriptModule, x: np.ndarray, device: torch.device, video: bool
) -> np.ndarray:
    """uint8 images ``[n, H, W, 3]`` (or videos ``[n, T, H, W, 3]``) -> features ``[n, D]``."""
    tensor = torch.as_tensor(x, device=device).float() / 255.0
    if video:
        tensor = tensor.permute(0, 4, 1, 2, 3) * 2.0 - 1.0  # [n, 3, T, H, W] in [-1, 1]
    else:
        tensor = tensor.permute(0, 3, 1, 2)  # [n, 3, H, W] in [0, 1]
    return net(tensor).float().flatten(1).cpu().numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(axis=-1) / np.maximum(norm, 1e-12)


@dataclass(frozen=True)
class Curve:
    """One metric per predicted step, over test windows.

    Units: PSNR in dB (capped at ``psnr_cap_db``), SSIM and VGG cosine similarity in
    [-1, 1]; higher is better for all three.
    """

    mean: list[float | None]
    """Per predicted step, the mean over test windows."""
    ci95: list[float | None]
    """Half-width of its 95% interval over test windows (Student's t; None for one window)."""
    average: float
    """The mean over windows and predicted steps."""

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": self.ci95, "average": self.average}


WHICH = ("closest", "furthest", "copy_last_frame")
"""The curves of a metric: closest and furthest of N samples, and the copy-last baseline."""


def _curves(per_sample: np.ndarray, baseline: np.ndarray) -> dict[str, Curve]:
    """``per_sample`` ``[W, N, F]`` (higher is better), ``baseline`` ``[W, F]`` -> curves."""
    score = per_sample.mean(axis=2)  # [W, N]
    rows = np.arange(len(per_sample))
    closest = per_sample[rows, score.argmax(axis=1)]
    furthest = per_sample[rows, score.argmin(axis=1)]
    out = {}
    for name, values in zip(WHICH, (closest, furthest, baseline), strict=True):
        mean, half = mean_ci(values, axis=0)
        out[name] = Curve(
            mean=_as_list(finite_or_none(mean)),
            ci95=_as_list(finite_or_none(half)),
            average=float(values.mean()),
        )
    return out


def _as_list(values: list | float | None) -> list[float | None]:
    return values if isinstance(values, list) else [values]


@dataclass(frozen=True)
class VideoResult:
    """What :func:`evaluate_video` measured.

    ``metrics`` holds ``{metric: {"closest" | "furthest" | "copy_last_frame": Curve}}`` for
    ``psnr``, ``ssim`` and (with ``--vgg-weights``) ``vgg_similarity``; ``to_json()`` also
    puts each curve's average at the top level as ``<metric>_<which>``. ``fvd`` (lower is
    better) is None without ``--fvd-weights``; ``skipped`` says why for each metric left out.
    """

    samples: int
    observed_steps: int
    predicted_steps: int
    test_windows: int
    split: str
    """How the test split was drawn (``"metadata"`` or ``"hash"``)."""
    psnr_cap_db: float
    metrics: dict[str, dict[str, Curve]]
    fvd: float | None
    skipped: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "samples": self.samples,
            "observed_steps": self.observed_steps,
            "predicted_steps": self.predicted_steps,
            "test_windows": self.test_windows,
            "split": self.split,
            "psnr_cap_db": self.psnr_cap_db,
            "metrics": {
                name: {which: curve.to_json() for which, curve in curves.items()}
                for name, curves in self.metrics.items()
            },
            "skipped": dict(self.skipped),
        }
        for name, curves in self.metrics.items():
            for which in WHICH:
                result[f"{name}_{which}"] = curves[which].average
        result["fvd"] = self.fvd
        return result


def evaluate_video(
    model: WorldModel,
    data_dir: str | Path,
    config: VideoEvalConfig | None = None,
    progress: bool = True,
) -> VideoResult:
    """Run the video evaluation (see the module docstring)."""
    config = config or VideoEvalConfig()
    cfg = model.config.model
    observed, window = cfg.num_observed_steps, cfg.num_steps
    future = window - observed
    if future < 1:
        raise RunError("the model predicts no steps (num_predicted_steps = 0)")
    _, test, how = split_index(data_dir, config.test_fraction, min_frames=window)
    vgg = fvd = None
    if config.vgg_weights:
        vgg = load_feature_net(config.vgg_weights, "--vgg-weights", model.device)
    if config.fvd_weights:
        fvd = load_feature_net(config.fvd_weights, "--fvd-weights", model.device)
    batch_size = max(1, min(16, 400 // config.samples))
    metrics: dict[str, list] = {"psnr": [], "ssim": [], "vgg_similarity": []}
    baselines: dict[str, list] = {"psnr": [], "ssim": [], "vgg_similarity": []}
    fvd_real, fvd_fake = [], []
    batches = iter_windows(
        test,
        window,
        batch_size=batch_size,
        max_windows=config.max_windows,
        action_size=cfg.action_size,
    )
    for batch in tqdm(batches, desc="video", unit="batch", disable=not progress):
        actions = batch.actions if cfg.action_size else None
        futures = model.imagine(batch.frames[:, :observed], future, config.samples, actions)
        predicted = _decode_samples(
            model,
            futures.keypoints[:, :, observed:],
            batch.frames[:, 0],
            futures.observed_keypoints[:, 0],
            config.decode_chunk,
        )  # [B, N, F, H, W, 3]
        truth = batch.frames[:, observed:]  # [B, F, H, W, 3]
        last = np.repeat(batch.frames[:, observed - 1 : observed], future, axis=1)
        metrics["psnr"].append(
            psnr(predicted, truth[:, None].repeat(config.samples, 1), config.psnr_cap_db)
        )
        metrics["ssim"].append(ssim(predicted, truth[:, None].repeat(config.samples, 1)))
        baselines["psnr"].append(psnr(last, truth, config.psnr_cap_db))
        baselines["ssim"].append(ssim(last, truth))
        if vgg is not None:
            height, width = truth.shape[2:4]
            f_pred = _features(vgg, predicted.reshape(-1, height, width, 3), model.device, False)
            f_true = _features(vgg, truth.reshape(-1, height, width, 3), model.device, False)
            f_last = _features(vgg, last.reshape(-1, height, width, 3), model.device, False)
            b, n = predicted.shape[:2]
            true_rep = np.repeat(f_true.reshape(b, 1, future, -1), n, axis=1)
            metrics["vgg_similarity"].append(_cosine(f_pred.reshape(b, n, future, -1), true_rep))
            baselines["vgg_similarity"].append(
                _cosine(f_last.reshape(b, future, -1), f_true.reshape(b, future, -1))
            )
        if fvd is not None:
            observed_frames = np.repeat(batch.frames[:, None, :observed], config.samples, axis=1)
            fake = np.concatenate([observed_frames, predicted], axis=2)
            fvd_real.append(_features(fvd, batch.frames, model.device, True))
            fvd_fake.append(_features(fvd, fake.reshape(-1, *fake.shape[2:]), model.device, True))
    if not metrics["psnr"]:
        raise DataError(f"{data_dir}: no test window of {window} frames")
    curves = {
        name: _curves(np.concatenate(metrics[name]), np.concatenate(baselines[name]))
        for name in ("psnr", "ssim", "vgg_similarity")
        if metrics[name]
    }
    skipped = {}
    if vgg is None:
        skipped["vgg_similarity"] = WEIGHTS_MESSAGE.format(
            name="VGG similarity", flag="--vgg-weights"
        )
    if fvd is None:
        skipped["fvd"] = WEIGHTS_MESSAGE.format(name="FVD", flag="--fvd-weights")
    return VideoResult(
        samples=config.samples,
        observed_steps=observed,
        predicted_steps=future,
        test_windows=int(sum(len(m) for m in metrics["psnr"])),
        split=how,
        psnr_cap_db=config.psnr_cap_db,
        metrics=curves,
        fvd=None
        if fvd is None
        else frechet_distance(np.concatenate(fvd_real), np.concatenate(fvd_fake)),
        skipped=skipped,
    )


def format_video(result: VideoResult | OverSeeds[VideoResult]) -> str:
    """The printed table: closest, furthest and copy-last averages per metric; over several
    runs (seeds) each is the mean ± the half-width of its 95% interval over them."""
    summary = as_seeds(result)
    mean = summary.mean
    several = summary.count > 1
    width = 19 if several else 10
    over = f"; mean ± 95% CI over {summary.count} seeds" if several else ""
    lines = [
        f"video: {mean['observed_steps']} observed + {mean['predicted_steps']} predicted "
        f"steps, {mean['test_windows']} test windows ({mean['split']} split), closest and "
        f"furthest of {mean['samples']} samples; averages over predicted steps{over}",
        f"{'metric':<16} {'closest':>{width}} {'furthest':>{width}} {'copy last':>{width}}",
    ]
    for name in mean["metrics"]:
        cells = [plus_minus(*summary.at(f"{name}_{which}"), ".4f") for which in WHICH]
        lines.append(f"{name:<16} " + " ".join(f"{c:>{width}}" for c in cells))
    if mean.get("fvd") is not None:
        lines.append(f"{'fvd':<16} {plus_minus(*summary.at('fvd'), '.2f'):>{width}}")
    lines.extend(f"note: {message}" for message in mean["skipped"].values())
    return "\n".join(lines)


def plot_video(result: VideoResult | OverSeeds[VideoResult], path: str | Path) -> Path:
    """One panel per metric: closest / furthest / copy-last per predicted step with 95% CI
    bands (over test windows; over seeds when there are several runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = as_seeds(result)
    mean = summary.mean
    names = list(mean["metrics"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.4), squeeze=False)
    steps = np.arange(1, mean["predicted_steps"] + 1) + mean["observed_steps"]
    styles = {"closest": "o-", "furthest": "s-", "copy_last_frame": "--"}
    for ax, name in zip(axes[0], names, strict=True):
        for which, style in styles.items():
            curve, seed_half = summary.at("metrics", name, which)
            values = np.array(curve["mean"], dtype=float)
            band = curve["ci95"] if seed_half is None else seed_half["mean"]
            half = np.array([np.nan if v is None else v for v in band], dtype=float)
            label = which.replace("_", " ") + (
                f" of {mean['samples']}" if which != "copy_last_frame" else ""
            )
            ax.plot(steps, values, style, label=label)
            ax.fill_between(steps, values - half, values + half, alpha=0.2)
        ax.set_title(name.upper() if name != "vgg_similarity" else "VGG cosine similarity")
        ax.set_xlabel("time step")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return write_figure(fig, path, dpi=110)
