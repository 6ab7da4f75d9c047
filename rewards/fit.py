"""Fitting one reward head on its windows (paper S2.2), and scoring it.

Adam, learning rate 1e-3 "successively reduced" to 1e-4 -- here an exponential decay over
the run. Each head is trained on standardised rewards (mean and standard deviation of its
training windows, stored with the head) with the mean squared error.

Early stopping (not in the paper, which had up to 10,000 windows per task): whole episodes
holding ``validation_fraction`` of the head's training windows are set aside, and the head
keeps the weights of the evaluation step where their normalised MSE was lowest. With the
few hundred windows a CPU-sized dataset gives, the last step's head had fitted the noise of
its training windows (measured: held-out normalised MSE 1.9 on cheetah-run, worse than the
null model).

TensorBoard (``OUT/tensorboard/<task>``): ``reward/train_mse``, ``reward/learning_rate`` and,
every ``eval_every`` steps, ``reward/validation_normalized_mse`` and
``reward/test_normalized_mse`` on the held-out 20 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from keypoint_wm.errors import UsageError
from keypoint_wm.reward_inputs import INPUTS
from keypoint_wm.rewards.head import RewardHead, RewardHeadConfig
from keypoint_wm.rewards.head_checkpoints import HeadCheckpoints, HeadProgress
from keypoint_wm.rewards.sequences import SPLITS, RewardSequences, hold_out_episodes

__all__ = [
    "RewardTrainConfig",
    "fit_reward_head",
    "head_pairs",
    "normalized_mse",
    "predict",
    "split_validation",
]


@dataclass(frozen=True)
class RewardTrainConfig:
    """How reward heads are trained (defaults: the paper's S2.2 where it says).

    Attributes:
        window: frames per sequence (paper: 20).
        stride: frames between window starts in an episode.
        max_windows: windows per task at most (paper: 10,000).
        train_fraction: share of the windows the head trains on (paper: 0.8).
        split: how the head's train and test parts are drawn: ``"episodes"`` (whole
            episodes: no test frame was seen in training; the default) or ``"windows"`` (a
            random 80/20 of the windows, one reading of the paper's S2.2; neighbouring
            windows share up to ``window - stride`` frames, so test windows leak).
        steps: optimiser steps per head.
        batch_size: windows per step.
        learning_rate, final_learning_rate: exponential decay from one to the other (paper:
            1e-3 to 1e-4).
        units: dense and GRU width (paper: 128).
        eval_every: log the held-out normalised MSE every this many steps.
        validation_fraction: share of the training windows (whole episodes) used to pick
            the step whose weights the head keeps (early stopping); 0 keeps the last step.
        seed: window split, initialisation, batches and posterior noise.
        inputs: what the head reads (:data:`~keypoint_wm.reward_inputs.INPUTS`):
            ``"hidden"`` (h_{t-1}, the paper's), ``"hidden+keypoints"`` (h_{t-1} and the
            keypoints detected in frame t; Struct-VRNN runs) or ``"hidden+features"``
            (h_{t-1} and the encoder's features of frame t; CNN-VRNN runs).
    """

    window: int = 20
    stride: int = 10
    max_windows: int = 10_000
    train_fraction: float = 0.8
    split: str = "episodes"
    steps: int = 2_000
    batch_size: int = 32
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-4
    units: int = 128
    eval_every: int = 100
    validation_fraction: float = 0.2
    seed: int = 0
    inputs: str = "hidden"

    def __post_init__(self) -> None:
        for name in ("window", "stride", "max_windows", "steps", "batch_size", "units"):
            if getattr(self, name) < 1:
                flag = name.replace("_", "-")
                raise UsageError(f"--{flag} must be a positive integer, got {getattr(self, name)}")
        if not 0 <= self.validation_fraction < 1:
            raise UsageError(
                f"--validation-fraction must be in [0, 1), got {self.validation_fraction}"
            )
        if self.split not in SPLITS:
            raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.inputs not in INPUTS:
            raise UsageError(f"--inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")
        if not 0 < self.final_learning_rate <= self.learning_rate:
            raise ValueError("need 0 < final_learning_rate <= learning_rate")

    def learning_rate_at(self, step: int) -> float:
        ratio = self.final_learning_rate / self.learning_rate
        return self.learning_rate * ratio ** (step / max(1, self.steps - 1))


def normalized_mse(
    predicted: np.ndarray, reward: np.ndarray, null_value: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """MSE relative to a null model predicting ``null_value`` everywhere.

    Args:
        predicted, reward: ``[N, T]``.
        null_value: the mean training reward.

    Returns:
        ``(overall, per_step [T], ci95 [T])``: squared errors divided by the null model's
        MSE over all of ``reward`` (a scalar, so per-step curves share one unit); ``ci95``
        is 1.96 standard errors of the per-step mean over the N windows. All NaN when the
        null model is exact (constant rewards equal to the training mean: nothing to learn).
    """
    squared = (np.asarray(predicted, np.float64) - reward) ** 2
    null = float(np.mean((null_value - np.asarray(reward, np.float64)) ** 2))
    if null <= 0:
        nan = np.full(squared.shape[1], np.nan)
        return float("nan"), nan, nan
    per_step = squared.mean(axis=0) / null
    ci95 = 1.96 * squared.std(axis=0) / np.sqrt(max(1, squared.shape[0])) / null
    return float(squared.mean() / null), per_step, ci95


@torch.no_grad()
def predict(
    head: RewardHead,
    hidden: np.ndarray,
    keypoints: np.ndarray | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Head predictions ``[N, T]`` for hidden states ``[N, T, H]`` (and the frames'
    keypoints or features ``[N, T, K, 3]`` for a head that reads them)."""
    head.eval()
    device = next(head.parameters()).device
    out = []
    for begin in range(0, len(hidden), batch_size):
        chunk = torch.as_tensor(hidden[begin : begin + batch_size], device=device)
        points = None
        if keypoints is not None and head.config.reads_frame:
            points = torch.as_tensor(keypoints[begin : begin + batch_size], device=device)
        out.append(head(chunk, keypoints=points)[0].cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def head_pairs(
    sequences: RewardSequences, inputs: str = "hidden"
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The head's training pairs of ``sequences``: ``(hidden [N, T, H], keypoints
    [N, T, K, 3] or None, reward [N, T])``; step t of a window reads h_{t-1} (and frame t's
    keypoints with ``inputs="hidden+keypoints"``, its CNN features with
    ``"hidden+features"``: both are the windows' ``keypoints``) and learns ``reward[t]``.

    Raises:
        UsageError: the head reads a per-frame input but ``sequences`` has none.
    """
    if inputs == "hidden":
        return sequences.hidden, None, sequences.reward
    if sequences.keypoints is None:
        raise UsageError(
            f"--inputs {inputs}: the windows of {sequences.task!r} hold no keypoints "
            "(collect them with collect_reward_sequences)"
        )
    return sequences.hidden, sequences.keypoints, sequences.reward


def split_validation(
    train: RewardSequences, fraction: float, seed: int
) -> tuple[RewardSequences, RewardSequences | None]:
    """Set aside whole episodes holding about ``fraction`` of the windows: ``(fit, val)``.

    Windows of one episode overlap, so a validation window must not share an episode with
    a fitted one. None when ``fraction`` is 0 or there is only one episode.
    """
    is_val = hold_out_episodes(train.episode, fraction, seed)
    if not is_val.any():
        return train, None
    return train.subset(np.flatnonzero(~is_val)), train.subset(np.flatnonzero(is_val))


def fit_reward_head(
    train: RewardSequences,
    test: RewardSequences | None,
    config: RewardTrainConfig,
    writer: Any = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    checkpoints: HeadCheckpoints | None = None,
) -> RewardHead:
    """Train one head on ``train`` (and log its held-out error on ``test``).

    With ``checkpoints``, the fit resumes from the newest checkpoint of its settings, saves
    one at every evaluation step and, after SIGINT or SIGTERM, saves and raises
    :class:`~keypoint_wm.errors.Stopped` (:mod:`~keypoint_wm.rewards.head_checkpoints`).

    The head's metadata records ``best_step``, the step whose weights it keeps (see the
    module doc on early stopping), ``validation_windows`` and ``validation_normalized_mse``
    (the kept weights' score on them: the figure to choose settings on; None without
    validation windows or with constant rewards).
    """
    # The null model (and the standardisation) use all of the head's training windows.
    mean = float(train.reward.mean())
    std = float(train.reward.std())
    train, validation = split_validation(train, config.validation_fraction, config.seed)
    hidden_np, keypoints_np, reward_np = head_pairs(train, config.inputs)
    head_config = RewardHeadConfig(
        input_size=int(hidden_np.shape[-1]),
        units=config.units,
        task=train.task,
        reward_mean=mean,
        reward_std=std if std > 1e-6 else 1.0,
        inputs=config.inputs,
        num_keypoints=0 if keypoints_np is None else int(keypoints_np.shape[2]),
    )
    torch.manual_seed(config.seed)
    head = RewardHead(head_config).to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=config.learning_rate)
    hidden = torch.as_tensor(hidden_np, device=device)
    keypoints = None if keypoints_np is None else torch.as_tensor(keypoints_np, device=device)
    target = torch.as_tensor((reward_np - mean) / head_config.reward_std, device=device)
    rng = np.random.default_rng(config.seed)
    resumed = None if checkpoints is None else checkpoints.resume(head, optimizer, rng)
    at = resumed or HeadProgress(best_step=config.steps)
    bar = tqdm(
        range(at.step, config.steps),
        desc=f"reward head {train.task}",
        disable=not progress,
        initial=at.step,
        total=config.steps,
    )
    for step in bar:
        lr = config.learning_rate_at(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.as_tensor(rng.integers(0, len(train), config.batch_size), device=device)
        head.train()
        raw, _ = head.forward_normalized(
            hidden[batch], keypoints=None if keypoints is None else keypoints[batch]
        )
        loss = torch.mean((raw - target[batch]) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        at.step = step + 1
        evaluating = at.step == config.steps or at.step % config.eval_every == 0
        if writer is not None:
            writer.add_scalar("reward/train_mse", loss.item() * head_config.reward_std**2, step)
            writer.add_scalar("reward/learning_rate", lr, step)
        if evaluating:
            bar.set_postfix(_evaluate(head, validation, test, mean, at, writer, step))
        if checkpoints is not None:
            checkpoints.boundary(at, head, optimizer, rng, evaluating, config.steps)
    best_state, best_step, best_score = at.best_state, at.best_step, at.best_score
    if best_state is not None:
        head.load_state_dict(best_state)
    head.config = RewardHeadConfig(
        **{
            **asdict(head.config),
            "metadata": {
                **head.config.metadata,
                "best_step": best_step,
                "validation_windows": 0 if validation is None else len(validation),
                "validation_normalized_mse": None if best_state is None else float(best_score),
            },
        }
    )
    return head.eval()


def _evaluate(
    head: RewardHead,
    validation: RewardSequences | None,
    test: RewardSequences | None,
    mean: float,
    at: HeadProgress,
    writer: Any,
    step: int,
) -> dict[str, str]:
    """Score the head on its validation windows (keeping its weights in ``at`` when they are
    the best so far) and on the test windows; log both; returns the progress bar's postfix."""
    postfix = {}
    if validation is not None:
        predicted = predict(head, validation.hidden, validation.keypoints)
        score = normalized_mse(predicted, validation.reward, mean)[0]
        postfix["val_nmse"] = f"{score:.3f}"
        if writer is not None:
            writer.add_scalar("reward/validation_normalized_mse", score, step)
        if score < at.best_score:  # NaN (constant rewards) never wins: the last step stays
            at.best_score, at.best_step = score, step + 1
            at.best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    if test is not None:
        score = normalized_mse(predict(head, test.hidden, test.keypoints), test.reward, mean)[0]
        postfix["test_nmse"] = f"{score:.3f}"
        if writer is not None:
            writer.add_scalar("reward/test_normalized_mse", score, step)
    return postfix
