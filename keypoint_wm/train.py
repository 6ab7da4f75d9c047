"""``keypoint-wm train``: the training loop, top to bottom.

One process trains on CPU or one GPU; under ``torchrun`` every process trains a replica on
its own interleaved stream of windows (DistributedDataParallel; gloo on CPU, NCCL on GPU).
The data order, the model's sampling randomness and every schedule are functions of the
step, so a run killed at any moment resumes from its last checkpoint exactly.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from keypoint_wm.checkpoint import checkpoint_dirs, latest_checkpoint, load_weights, write_config
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
from keypoint_wm.train_resume import (
    ConfigMismatchError,
    check_resume,
    restore_rng_state,
    save_training_checkpoint,
)
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
    (:class:`~keypoint_wm.errors.Stopped`; ``--resume`` continues exactly there); one that
    arrives while the run is being set up stops it before its first step, with nothing lost.

    Raises:
        RunError: another process is writing ``run_dir``.
        Stopped: SIGINT or SIGTERM arrived (single-process runs; the checkpoint is saved).
    """
    run_dir = Path(run_dir)
    one_process = int(os.environ.get("WORLD_SIZE", "1")) <= 1  # torchrun: its own signals
    stops = stop_requests() if one_process else nullcontext(StopRequest())
    with stops as stop, _one_writer(run_dir):  # a stop during the set-up is kept for the loop
        new = not run_dir.exists()
        try:
            return _train(
                config, data_dir, run_dir, resume, device_name, progress,
                data_placement, cuda_graph, progress_label, progress_position, stop,
            )  # fmt: skip
        except (MemoryError, RuntimeError) as error:
            if not _out_of_memory(error):
                raise
            if new and not checkpoint_dirs(run_dir) and os.environ.get("RANK", "0") == "0":
                shutil.rmtree(run_dir, ignore_errors=True)  # made by this call, nothing saved
            raise RunError(
                f"the model does not fit in memory ({str(error).splitlines()[0][:160]}); "
                f"choose a smaller model or batch with --set (model.num_keypoints "
                f"{config.model.num_keypoints}, train.batch_size {config.train.batch_size})"
            ) from None


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation that failed (host or device memory)."""
    text = str(error)
    return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate" in text


@contextmanager
def _one_writer(run_dir: Path) -> Iterator[None]:
    """Hold the run's writer claim (``.<name>.writer`` beside it) on the main process."""
    if os.environ.get("RANK", "0") != "0":  # torchrun's other ranks follow rank 0
        yield
        return
    with ExitStack() as held:
        try:
            holder = held.enter_context(claim(run_dir.parent / f".{run_dir.name}.writer"))
        except OSError as error:  # a read-only or full --out: name the folder, not the lock
            cause = storage_cause(error)
            if cause is None:
                raise
            raise RunError(
                f"--out {run_dir}: {cause} (cannot create the run's writer lock)"
            ) from None
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
    stop: StopRequest,
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

    config, dataset, start_step, checkpoint = _data_and_config(
        config, data_dir, run_dir, resume, dist_info
    )
    torch.manual_seed(config.seed + dist_info.rank)
    precision = resolve_precision(config.train.precision, device)
    model, runner = _model_and_optimiser(config, device, dist_info, precision, cuda_graph)
    if checkpoint is not None:
        load_weights(model, checkpoint.model_state, run_dir, checkpoint.path)
        runner.load_optimizer_state(checkpoint.training_state["optimizer"])
        restore_rng_state(checkpoint.training_state, dist_info.rank, device,
                          config.seed + dist_info.rank + start_step)  # fmt: skip
    on_device = data_placement == "device" or (
        data_placement == "auto" and fits_on_device(dataset, device)
    )
    windows, batches = _batch_source(dataset, config, device, dist_info, on_device, start_step,
                                     progress)  # fmt: skip
    logger = RunLogger(run_dir, config, enabled=dist_info.is_main)
    probe = None
    if config.train.probe_every and dist_info.is_main:
        probe = ProbeData.from_dataset(
            data_dir, config.train.test_fraction, config.train.validation_fraction
        )
    train_seconds = checkpoint.info.get("train_seconds", 0.0) if checkpoint is not None else 0.0
    loop = _Loop(run_dir, device, dist_info, model, runner, dataset, windows, batches, logger,
                 probe, stop)  # fmt: skip

    bar = tqdm(
        total=config.train.steps, initial=start_step, unit="step", desc=progress_label,
        position=progress_position, disable=not (progress and dist_info.is_main),
        dynamic_ncols=True,
    )  # fmt: skip
    try:
        step, last_terms = _run_loop(config, loop, bar, start_step, train_seconds)
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


def _data_and_config(
    config: RunConfig, data_dir: Path, run_dir: Path, resume: bool, dist_info: Distributed
) -> tuple[RunConfig, WindowDataset, int, Any]:
    """The run's config filled in from the data (and written), its windows, and the step and
    checkpoint it starts from (0 and None for a new run)."""
    window = config.model.num_steps
    index = EpisodeIndex(data_dir, "train", config.train.test_fraction, min_frames=window,
                         validation_fraction=config.train.validation_fraction)  # fmt: skip
    if (skipped := index.describe_skipped()) is not None and dist_info.is_main:
        warnings.warn(skipped, stacklevel=3)  # the caller of train()
    config = prepare_run_config(config, data_dir, index)
    start_step, checkpoint = 0, None
    if resume and (run_dir / "config.json").exists():  # --resume of a new run starts it
        start_step, checkpoint = check_resume(run_dir, config)
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
    return config, dataset, start_step, checkpoint


def _model_and_optimiser(
    config: RunConfig, device: torch.device, dist_info: Distributed, precision: str, cuda_graph: str
) -> tuple[StructVRNN, StepRunner]:
    """The model on ``device`` (wrapped in DistributedDataParallel under torchrun) and the
    step runner that holds its optimiser and, when used, its CUDA graph."""
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
    return model, runner


def _batch_source(
    dataset: WindowDataset,
    config: RunConfig,
    device: torch.device,
    dist_info: Distributed,
    on_device: bool,
    start_step: int,
    progress: bool,
) -> tuple[DeviceWindows | None, Iterator[dict[str, torch.Tensor]] | None]:
    """Where the batches come from, from ``start_step`` on: every window on the device, or a
    loader's iterator (exactly one of the two is not None)."""
    if on_device:
        return DeviceWindows(dataset, device, progress=progress and dist_info.is_main), None
    loader = make_loader(
        dataset,
        config.train.batch_size,
        first_batch=start_step,
        workers=config.train.data_workers,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
        pin_memory=device.type == "cuda",
    )
    return None, iter(loader)


@dataclass
class _Loop:
    """What the training loop works with, set up before its first step."""

    run_dir: Path
    device: torch.device
    dist_info: Distributed
    model: StructVRNN
    runner: StepRunner
    dataset: WindowDataset
    windows: DeviceWindows | None
    batches: Iterator[dict[str, torch.Tensor]] | None
    logger: RunLogger
    probe: ProbeData | None
    stop: StopRequest


def _run_loop(
    config: RunConfig, loop: _Loop, bar: tqdm, start_step: int, train_seconds: float
) -> tuple[int, dict[str, float]]:
    """Train from ``start_step`` to ``train.steps``, logging, probing and saving checkpoints
    on their schedules; returns the last step and the last logged losses."""
    run_dir, dist_info, model, runner = loop.run_dir, loop.dist_info, loop.model, loop.runner
    windows, batches, logger, probe = loop.windows, loop.batches, loop.logger, loop.probe
    total = config.train.steps
    batch_size = config.train.batch_size
    use_actions = config.model.action_size > 0
    last_terms: dict[str, float] = {}
    step = start_step
    window_start, window_steps = time.perf_counter(), 0
    clock = time.perf_counter()
    stop = loop.stop
    if stop.signum is not None and step < total:  # arrived during the set-up: nothing to save
        saved = f"its checkpoint of step {step} intact" if step else "nothing trained yet"
        raise Stopped(
            f"stopped by {stop.name} at step {step} of {total} before training further "
            f"({saved}); continue it with the same command and --resume (--out {run_dir})",
            stop.signum,
        )
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
            last_terms = _log_losses(step, loop, bar, lr, schedule, window_start, window_steps)
            window_start, window_steps = time.perf_counter(), 0
        if step % config.train.image_every == 0 or step == total:
            images, actions, _ = to_model_inputs(batch, loop.device, use_actions)
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
            save_training_checkpoint(
                run_dir,
                step,
                model,
                runner,
                dist_info.rank,
                dist_info.world_size,
                loop.dataset,
                train_seconds,
            )
        if stop.signum is not None and step < total:
            raise Stopped(
                f"stopped by {stop.name} at step {step} of {total}, its checkpoint "
                f"saved; continue it with the same command and --resume (--out {run_dir})",
                stop.signum,
            )
    return step, last_terms


def _log_losses(
    step: int, loop: _Loop, bar: tqdm, lr, schedule: LossSchedule, start: float, steps: int
) -> dict[str, float]:
    """Log the losses of ``step`` and the steps per second since the last log; returns the
    losses (without the gradient norm, logged apart)."""
    loop.runner.raise_if_nonfinite(step)
    elapsed = time.perf_counter() - start
    terms = loop.runner.read_terms()
    grad_norm = terms.pop("grad_norm")
    rate = steps / elapsed if elapsed > 0 else 0.0
    loop.logger.scalars(step, terms, lr=lr, steps_per_second=rate, schedule=schedule,
                        grad_norm=grad_norm)  # fmt: skip
    bar.set_postfix(loss=f"{terms['total']:.4g}", refresh=False)
    return terms


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
