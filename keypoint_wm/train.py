"""``keypoint-wm train``: the training loop, top to bottom.

One process trains on CPU or one GPU; under ``torchrun`` every process trains a replica on
its own interleaved stream of windows (DistributedDataParallel; gloo on CPU, NCCL on GPU).
The data order, the model's sampling randomness and every schedule are functions of the
step, so a run killed at any moment resumes from its last checkpoint exactly.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from keypoint_wm.checkpoint import (
    checkpoint_dirs,
    latest_checkpoint,
    read_run_config,
    resume_checkpoint,
    resume_differences,
    save_checkpoint,
    write_config,
)
from keypoint_wm.choices import DATA_PLACEMENTS, GRAPH_MODES
from keypoint_wm.claims import claim
from keypoint_wm.config import RunConfig
from keypoint_wm.conventions import frames_to_tensor
from keypoint_wm.data.device_windows import DeviceWindows, fits_on_device
from keypoint_wm.data.episodes import (
    episode_metadata,
    manifest_action_repeat,
    positive_int_or_none,
)
from keypoint_wm.data.sequences import EpisodeIndex, WindowDataset, dataset_fingerprint, make_loader
from keypoint_wm.errors import DataError, RunError, Stopped, UsageError, storage_cause
from keypoint_wm.evaluation.probe import ProbeData, ProbeLog, run_probe
from keypoint_wm.host_memory import keep_freed_memory
from keypoint_wm.model.device import resolve_device
from keypoint_wm.model.precision import resolve_precision
from keypoint_wm.model.struct_vrnn import LossSchedule, StructVRNN
from keypoint_wm.stop_signals import StopRequest, stop_requests
from keypoint_wm.summaries import RunLogger
from keypoint_wm.train_step import NonFiniteLossError, StepRunner, train_step

__all__ = [
    "DATA_PLACEMENTS",
    "GRAPH_MODES",
    "ConfigMismatchError",
    "NonFiniteLossError",
    "schedule_at",
    "train",
    "train_step",
]


class ConfigMismatchError(RunError):
    """``--resume`` with a config that differs in more than ``train.steps``, or ``--out``
    holding another run (exit code 1)."""


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


def prepare_run_config(config: RunConfig, data_dir: Path, index: EpisodeIndex) -> RunConfig:
    """Fill in what comes from the data: image size, action size (``model.action_conditioned``),
    dataset identity, and the action repeat it was collected with (``data.action_repeat``, None
    if it does not say: the latent wrappers step their envs with it)."""
    height, width, _ = index.image_shape
    if height != width:
        raise DataError(f"{data_dir}: images are {height}x{width}; the model needs square images")
    changes: dict[str, Any] = {"model.image_size": height}
    problem = config.model.image_size_problem(height)
    if problem:
        raise DataError(
            f"--data {data_dir}: its frames are {height}x{height}, which this model cannot "
            f"take ({problem}): collect the data at another --size, or choose another "
            f"model.heatmap_width with --set"
        )
    if config.model.action_conditioned:
        if index.action_size == 0:
            raise DataError(
                f"{data_dir}: the model is action-conditioned (model.action_conditioned) but "
                "the data has no actions"
            )
        changes["model.action_size"] = index.action_size
    changes["data.root"] = str(Path(data_dir).resolve())
    changes["data.fingerprint"] = dataset_fingerprint(index)
    changes["data.tasks"] = index.tasks
    changes["data.action_repeat"] = _data_action_repeat(data_dir, index)
    crop = _data_render_crop(index)
    if crop is not False:
        changes["data.crop"] = crop
    return config.with_overrides(changes)


def _data_render_crop(index: EpisodeIndex) -> Any:
    """``False`` when no episode's frames came from ``env.render()`` (``collect --env``);
    else their ``--crop`` (None: none; the latent wrappers then crop and area-resize an
    env's rendered frames the same way, :mod:`keypoint_wm.data.frames`)."""
    first = {r.task: r.path for r in reversed(index.records)}
    crops = [
        metadata.get("crop")
        for metadata in (episode_metadata(path) for path in first.values())
        if metadata.get("dataset") == "gymnasium"
    ]
    return crops[0] if crops else False


def _data_action_repeat(data_dir: Path, index: EpisodeIndex) -> int | None:
    """The episodes' ``action_repeat`` metadata (one file per task; None if the tasks
    differ), else the manifest's ``spec.action_repeat``; None when neither says."""
    first = {r.task: r.path for r in reversed(index.records)}
    values = [episode_metadata(path).get("action_repeat") for path in first.values()]
    if all(value is None for value in values):
        return manifest_action_repeat(data_dir)
    value = values[0] if all(v == values[0] for v in values) else None
    return positive_int_or_none(value)


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
    progress: bool = True,
    data_placement: str = "auto",
    cuda_graph: str = "auto",
    progress_label: str = "train",
    progress_position: int = 0,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the final step and the last logged losses.

    ``data_placement`` (:data:`DATA_PLACEMENTS`) and ``cuda_graph`` (:data:`GRAPH_MODES`)
    change how fast a step runs, never what it computes: the data order is the same either
    way, and a run may resume with other choices. On a CPU, training keeps freed memory in
    the process from then on (:func:`keypoint_wm.host_memory.keep_freed_memory`; docs/design.md,
    "Host memory on a CPU").

    One process writes a run (docs/design.md, "Run directories and checkpoints"): another
    ``train`` on the same ``run_dir`` is refused while this one runs. SIGINT or SIGTERM
    stops it at the end of the current step with a checkpoint of that step
    (:class:`~keypoint_wm.errors.Stopped`; ``--resume`` continues exactly there).

    Raises:
        RunError: another process is writing ``run_dir``.
        Stopped: SIGINT or SIGTERM arrived (single-process runs; the checkpoint is saved).
    """
    run_dir = Path(run_dir)
    with _one_writer(run_dir):
        return _train(
            config, data_dir, run_dir, resume, device_name, progress,
            data_placement, cuda_graph, progress_label, progress_position,
        )  # fmt: skip


@contextmanager
def _one_writer(run_dir: Path) -> Iterator[None]:
    """Hold the run's writer claim (``.<name>.writer`` beside it) on the main process."""
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks follow rank 0
        yield
        return
    with claim(run_dir.parent / f".{run_dir.name}.writer") as holder:
        if holder is not None:
            raise RunError(
                f"--out {run_dir}: another process is training this run ({holder}); wait for "
                "it to end or choose another --out"
            )
        yield


def _train(
    config: RunConfig,
    data_dir: Path,
    run_dir: Path,
    resume: bool,
    device_name: str | None,
    progress: bool,
    data_placement: str,
    cuda_graph: str,
    progress_label: str,
    progress_position: int,
) -> dict[str, Any]:
    if data_placement not in DATA_PLACEMENTS:
        raise UsageError(f"data placement must be one of {DATA_PLACEMENTS}, got {data_placement!r}")
    if cuda_graph not in GRAPH_MODES:
        raise UsageError(f"--cuda-graph must be one of {GRAPH_MODES}, got {cuda_graph!r}")
    device = resolve_device(device_name)
    if device.type == "cpu":
        keep_freed_memory()  # a step reuses the last step's pages (keypoint_wm/host_memory.py)
    dist_info = setup_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)

    # --- Data and config --------------------------------------------------------------
    window = config.model.num_steps
    index = EpisodeIndex(data_dir, "train", config.train.test_fraction, min_frames=window,
                         validation_fraction=config.train.validation_fraction)  # fmt: skip
    if (skipped := index.describe_skipped()) is not None and dist_info.is_main:
        warnings.warn(skipped, stacklevel=2)
    config = prepare_run_config(config, data_dir, index)
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
    trained: torch.nn.Module = model
    if dist_info.world_size > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    use_graph = cuda_graph == "on" or (
        cuda_graph == "auto" and device.type == "cuda" and dist_info.world_size == 1
    )
    if use_graph and (device.type != "cuda" or dist_info.world_size > 1):
        raise UsageError("--cuda-graph on needs one CUDA device (not torchrun)")
    runner = StepRunner(model, config.train.learning_rate, config.train.grad_clip_norm,
                        use_graph=use_graph, trained=trained)  # fmt: skip
    if checkpoint is not None:
        model.load_state_dict(checkpoint.model_state)
        runner.load_optimizer_state(checkpoint.training_state["optimizer"])
        restore_rng_state(checkpoint.training_state, dist_info.rank, device,
                          config.seed + dist_info.rank + start_step)  # fmt: skip
    on_device = data_placement == "device" or (
        data_placement == "auto" and fits_on_device(dataset, device)
    )
    windows = None
    batches = None
    if on_device:
        windows = DeviceWindows(dataset, device, progress=progress and dist_info.is_main)
    else:
        loader = make_loader(
            dataset,
            config.train.batch_size,
            first_batch=start_step,
            workers=config.train.data_workers,
            rank=dist_info.rank,
            world_size=dist_info.world_size,
            pin_memory=device.type == "cuda",
        )
        batches = iter(loader)
    logger = RunLogger(run_dir, config, enabled=dist_info.is_main)
    probe = None
    if config.train.probe_every and dist_info.is_main:
        probe = ProbeData.from_dataset(
            data_dir, config.train.test_fraction, config.train.validation_fraction
        )
    train_seconds = checkpoint.info.get("train_seconds", 0.0) if checkpoint is not None else 0.0

    # --- Loop -------------------------------------------------------------------------
    total = config.train.steps
    batch_size = config.train.batch_size
    use_actions = config.model.action_size > 0
    bar = tqdm(
        total=total, initial=start_step, unit="step", desc=progress_label,
        position=progress_position, disable=not (progress and dist_info.is_main),
        dynamic_ncols=True,
    )  # fmt: skip
    last_terms: dict[str, float] = {}
    step = start_step
    window_start, window_steps = time.perf_counter(), 0
    clock = time.perf_counter()
    stops = stop_requests() if dist_info.world_size == 1 else nullcontext(StopRequest())
    try:
        with stops as stop:
            while step < total:
                if windows is not None:
                    batch = windows.batch(step * batch_size, batch_size, dist_info.rank,
                                          dist_info.world_size, out=runner.static_inputs())  # fmt: skip
                else:
                    assert batches is not None
                    batch = next(batches)
                lr = config.train.learning_rate_at(step)
                schedule = schedule_at(config, step)
                runner.step(batch["image"], batch["action"] if use_actions else None,
                            batch.get("reference"), schedule, lr)  # fmt: skip
                step += 1
                window_steps += 1
                bar.update(1)

                if step % config.train.log_every == 0 or step == total:
                    runner.raise_if_nonfinite(step)
                    elapsed = time.perf_counter() - window_start
                    last_terms = runner.read_terms()
                    grad_norm = last_terms.pop("grad_norm")
                    rate = window_steps / elapsed if elapsed > 0 else 0.0
                    logger.scalars(step, last_terms, lr=lr, steps_per_second=rate,
                                   schedule=schedule, grad_norm=grad_norm)  # fmt: skip
                    bar.set_postfix(loss=f"{last_terms['total']:.4g}", refresh=False)
                    window_start, window_steps = time.perf_counter(), 0
                if step % config.train.image_every == 0 or step == total:
                    images, actions, _ = to_model_inputs(batch, device, use_actions)
                    logger.media(step, model, images, actions, batch)
                if probe is not None and (step % config.train.probe_every == 0 or step == total):
                    train_seconds += time.perf_counter() - clock
                    r2 = run_probe(model, probe)
                    logger.probe(step, r2)
                    ProbeLog(run_dir).append(step, train_seconds, r2)
                    clock = time.perf_counter()
                stopping = stop.signum is not None  # a stop saves the step it ends
                if step % config.train.checkpoint_every == 0 or step == total or stopping:
                    runner.raise_if_nonfinite(step)
                    train_seconds += time.perf_counter() - clock
                    clock = time.perf_counter()
                    _save(run_dir, step, model, runner, dist_info, dataset, train_seconds)
                if stop.signum is not None and step < total:
                    raise Stopped(
                        f"stopped by {stop.name} at step {step} of {total}, its checkpoint "
                        f"saved; continue it with the same command and --resume (--out "
                        f"{run_dir})",
                        stop.signum,
                    )
    finally:
        bar.close()
        logger.close()
    return {
        "step": step,
        "losses": last_terms,
        "run_dir": str(run_dir),
        "precision": precision,
        "data_on_device": on_device,
        "cuda_graph": runner.use_graph,
    }


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


def _save(run_dir, step, model, runner: StepRunner, dist_info: Distributed, dataset,
          train_seconds) -> None:  # fmt: skip
    rng = torch.get_rng_state()
    if dist_info.world_size > 1:
        import torch.distributed as dist

        gathered = [torch.empty_like(rng) for _ in range(dist_info.world_size)]
        dist.all_gather(gathered, rng)
    else:
        gathered = [rng]
    if dist_info.is_main:
        state: dict[str, Any] = {"optimizer": runner.optimizer_state(), "rng": gathered}
        if runner.device.type == "cuda" and dist_info.world_size == 1:
            state["cuda_rng"] = torch.cuda.get_rng_state(runner.device)
        info = {
            "world_size": dist_info.world_size,
            "data_seed": dataset.seed,
            "train_seconds": round(train_seconds, 1),
        }
        try:
            save_checkpoint(run_dir, step, model.state_dict(), state, info)
        except OSError as error:
            cause = storage_cause(error)
            if cause is None:
                raise
            raise RunError(_unsaved(run_dir, step, cause)) from None


def _unsaved(run_dir: Path, step: int, cause: str) -> str:
    """One line for a checkpoint that could not be written: the cause and what is intact."""
    saved = checkpoint_dirs(run_dir)
    kept = (
        f"its checkpoint of step {int(saved[-1].name.removeprefix('step_'))} is intact"
        if saved
        else "no checkpoint of it was saved yet"
    )
    return (
        f"{run_dir}: cannot save the checkpoint of step {step} ({cause}); {kept}: once there "
        f"is room, continue with the same command and --resume"
    )


def restore_rng_state(
    training_state: dict[str, Any], rank: int, device: torch.device, fallback_seed: int
) -> None:
    """The random generators as a checkpoint saved them (CPU per rank; CUDA when saved from
    one CUDA device), so that the resumed run draws what the uninterrupted run would."""
    rng_states = training_state["rng"]
    if rank < len(rng_states):
        torch.set_rng_state(rng_states[rank])
    else:  # resumed on more processes than it was saved from
        torch.manual_seed(fallback_seed)
    if device.type == "cuda" and "cuda_rng" in training_state:
        torch.cuda.set_rng_state(training_state["cuda_rng"].cpu(), device)


def _check_resume(run_dir: Path, config: RunConfig):
    """The step and checkpoint to resume from; refuses a changed config (except steps, and
    a moved data directory with the same fingerprint) and a run already past its steps."""
    differing = resume_differences(read_run_config(run_dir).to_dict(), config.to_dict())
    if differing:
        raise ConfigMismatchError(
            f"--resume: the config differs from {run_dir / 'config.json'} in: "
            f"{', '.join(differing)}; only --steps may change when resuming"
        )
    checkpoint = resume_checkpoint(run_dir, config.train.steps)
    if checkpoint is None:
        return 0, None
    return checkpoint.step, checkpoint
