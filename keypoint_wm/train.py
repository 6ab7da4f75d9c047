"""``keypoint-wm train``: the training loop, top to bottom.

One process trains on CPU or one GPU; under ``torchrun`` every process trains a replica on
its own interleaved stream of windows (DistributedDataParallel; gloo on CPU, NCCL on GPU).
The data order, the model's sampling randomness and every schedule are functions of the
step, so a run killed at any moment resumes from its last checkpoint exactly.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from keypoint_wm.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    read_config,
    save_checkpoint,
    write_config,
)
from keypoint_wm.config import RunConfig, config_differences
from keypoint_wm.conventions import frames_to_tensor
from keypoint_wm.data.sequences import EpisodeIndex, WindowDataset, dataset_fingerprint, make_loader
from keypoint_wm.evaluation.probe import ProbeData, ProbeLog, run_probe
from keypoint_wm.model.device import resolve_device
from keypoint_wm.model.precision import resolve_precision
from keypoint_wm.model.struct_vrnn import LossSchedule, StructVRNN
from keypoint_wm.summaries import RunLogger


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the message names it."""


class ConfigMismatchError(ValueError):
    """``--resume`` with a config that differs in more than ``train.steps``."""


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Distributed:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def prepare_run_config(
    config: RunConfig, data_dir: Path, index: EpisodeIndex, action_conditioned: bool
) -> RunConfig:
    """Fill in what comes from the data: image size, action size, dataset identity."""
    height, width, _ = index.image_shape
    if height != width:
        raise ValueError(f"{data_dir}: images are {height}x{width}; the model needs square images")
    changes: dict[str, Any] = {"model.image_size": height}
    if action_conditioned:
        if index.action_size == 0:
            raise ValueError(
                f"{data_dir}: the preset is action-conditioned but the data has no actions"
            )
        changes["model.action_size"] = index.action_size
    changes["data.root"] = str(Path(data_dir).resolve())
    changes["data.fingerprint"] = dataset_fingerprint(index)
    changes["data.tasks"] = index.tasks
    return config.with_overrides(changes)


def to_model_inputs(batch: dict[str, torch.Tensor], device: torch.device, use_actions: bool):
    """uint8 [B, T, H, W, 3] -> float [B, T, 3, H, W] in [-0.5, 0.5]; actions or None;
    the reference frames [B, 3, H, W] or None (frame 1)."""
    images = frames_to_tensor(batch["image"], device)
    actions = batch["action"].to(device, non_blocking=True) if use_actions else None
    reference = batch.get("reference")
    if reference is not None:
        reference = frames_to_tensor(reference[:, None], device)[:, 0]
    return images, actions, reference


def train(
    config: RunConfig,
    data_dir: Path,
    run_dir: Path,
    resume: bool = False,
    device_name: str | None = None,
    action_conditioned: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the final step and the last logged losses."""
    device = resolve_device(device_name)
    dist_info = setup_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run_dir = Path(run_dir)

    # --- Data and config --------------------------------------------------------------
    window = config.model.num_steps
    index = EpisodeIndex(data_dir, "train", config.train.test_fraction, min_frames=window)
    config = prepare_run_config(config, data_dir, index, action_conditioned)
    start_step, checkpoint = 0, None
    if resume and (run_dir / "config.json").exists():  # --resume of a new run starts it
        start_step, checkpoint = _check_resume(run_dir, config)
    elif (run_dir / "config.json").exists() and latest_checkpoint(run_dir) is not None:
        raise ConfigMismatchError(
            f"--out {run_dir} already holds a run; pass --resume to continue it or choose "
            "another --out"
        )
    if dist_info.is_main:
        write_config(run_dir, config.to_dict())
    dataset = WindowDataset(
        index,
        window,
        seed=config.seed,
        action_size=config.model.action_size or 0,
        reference=config.train.reference_frame,
    )

    # --- Model and optimiser ----------------------------------------------------------
    torch.manual_seed(config.seed + dist_info.rank)
    precision = resolve_precision(config.train.precision, device)
    model = StructVRNN(config.model).to(device)
    model.set_precision(precision)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.train.learning_rate)
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model_state)
        optimizer.load_state_dict(checkpoint.training_state["optimizer"])
        rng_states = checkpoint.training_state["rng"]
        if dist_info.rank < len(rng_states):
            torch.set_rng_state(rng_states[dist_info.rank])
        else:  # resumed on more processes than it was saved from
            torch.manual_seed(config.seed + dist_info.rank + start_step)
    trained = model
    if dist_info.world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    loader = make_loader(
        dataset,
        config.train.batch_size,
        first_batch=start_step,
        workers=config.train.data_workers,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )
    logger = RunLogger(run_dir, config, enabled=dist_info.is_main)
    probe = None
    if config.train.probe_every and dist_info.is_main:
        probe = ProbeData.from_dataset(data_dir, config.train.test_fraction)
    train_seconds = checkpoint.info.get("train_seconds", 0.0) if checkpoint is not None else 0.0

    # --- Loop -------------------------------------------------------------------------
    total = config.train.steps
    bar = tqdm(
        total=total, initial=start_step, unit="step", desc="train",
        disable=not (progress and dist_info.is_main), dynamic_ncols=True,
    )  # fmt: skip
    last_terms: dict[str, float] = {}
    step = start_step
    batches = iter(loader)
    window_start, window_steps = time.perf_counter(), 0
    clock = time.perf_counter()
    try:
        while step < total:
            batch = next(batches)
            images, actions, reference = to_model_inputs(
                batch, device, config.model.action_size > 0
            )
            lr = config.train.learning_rate_at(step)
            schedule = schedule_at(config, step)
            output, grad_norm = train_step(trained, optimizer, images, actions, schedule, lr,
                                           config.train.grad_clip_norm, step,
                                           reference)  # fmt: skip
            step += 1
            window_steps += 1
            bar.update(1)

            if step % config.train.log_every == 0 or step == total:
                elapsed = time.perf_counter() - window_start
                last_terms = {k: float(v.detach()) for k, v in output.terms.items()}
                rate = window_steps / elapsed if elapsed > 0 else 0.0
                logger.scalars(step, last_terms, lr=lr, steps_per_second=rate,
                               schedule=schedule, grad_norm=float(grad_norm))  # fmt: skip
                bar.set_postfix(loss=f"{last_terms['total']:.4g}", refresh=False)
                window_start, window_steps = time.perf_counter(), 0
            if step % config.train.image_every == 0 or step == total:
                logger.media(step, model, images, actions, batch)
            if probe is not None and (step % config.train.probe_every == 0 or step == total):
                train_seconds += time.perf_counter() - clock
                r2 = run_probe(model, probe)
                logger.probe(step, r2)
                ProbeLog(run_dir).append(step, train_seconds, r2)
                clock = time.perf_counter()
            if step % config.train.checkpoint_every == 0 or step == total:
                train_seconds += time.perf_counter() - clock
                clock = time.perf_counter()
                _save(run_dir, step, model, optimizer, dist_info, dataset, train_seconds)
    finally:
        bar.close()
        logger.close()
    return {"step": step, "losses": last_terms, "run_dir": str(run_dir), "precision": precision}


def schedule_at(config: RunConfig, step: int) -> LossSchedule:
    """KL weight, scheduled-sampling probabilities and blob width at ``step`` (linear ramps)."""
    p_observed, p_predicted = config.train.own_sample_probs_at(step)
    return LossSchedule(
        kl_scale=config.train.kl_scale_at(step, config.model.kl_beta),
        p_own_sample_observed=p_observed,
        p_own_sample_predicted=p_predicted,
        keypoint_width=config.train.keypoint_width_at(step, config.model.keypoint_width),
        motion_scale=config.train.motion_prior_scale_at(step),
    )


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    actions: torch.Tensor | None,
    schedule: LossSchedule,
    lr: float,
    grad_clip_norm: float,
    step: int = 0,
    reference: torch.Tensor | None = None,
):
    """One optimisation step; returns the model output and the gradient norm (pre-clip)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    output = model(images, actions, schedule, reference)
    _check_finite(output, step)
    optimizer.zero_grad(set_to_none=True)
    output.loss.backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if grad_clip_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip_norm)
    else:
        grad_norm = torch.zeros(())
    optimizer.step()
    return output, grad_norm


def _check_finite(output, step: int) -> None:
    """Stop on a NaN/inf loss, naming every term whose (weighted) value is not finite."""
    if torch.isfinite(output.loss):
        return
    bad = [
        name
        for name, value in output.terms.items()
        if name != "total"
        and not (
            math.isfinite(v := float(value.detach()))
            and math.isfinite(output.weights.get(name, 1.0) * v)
        )
    ]
    raise NonFiniteLossError(
        f"non-finite loss at step {step + 1} in term(s) {', '.join(bad) or 'total'}; "
        "stopped without saving, the last good checkpoint is kept"
    )


def _save(run_dir, step, model, optimizer, dist_info: Distributed, dataset, train_seconds) -> None:
    rng = torch.get_rng_state()
    if dist_info.world_size > 1:
        import torch.distributed as dist

        gathered = [torch.empty_like(rng) for _ in range(dist_info.world_size)]
        dist.all_gather(gathered, rng)
    else:
        gathered = [rng]
    if dist_info.is_main:
        save_checkpoint(
            run_dir,
            step,
            model.state_dict(),
            {"optimizer": optimizer.state_dict(), "rng": gathered},
            {
                "world_size": dist_info.world_size,
                "data_seed": dataset.seed,
                "train_seconds": round(train_seconds, 1),
            },
        )


def _check_resume(run_dir: Path, config: RunConfig):
    """The step and checkpoint to resume from; refuses a changed config (except steps)."""
    saved = read_config(run_dir)
    differing = [k for k in config_differences(saved, config.to_dict()) if k != "train.steps"]
    if differing:
        raise ConfigMismatchError(
            f"--resume: the config differs from {run_dir / 'config.json'} in: "
            f"{', '.join(differing)}; only --steps may change when resuming"
        )
    path = latest_checkpoint(run_dir)
    if path is None:
        return 0, None
    checkpoint = load_checkpoint(path)
    return checkpoint.step, checkpoint
