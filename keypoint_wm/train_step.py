"""One optimisation step of a Struct-VRNN, without host synchronisation, optionally replayed
from a captured CUDA graph.

The step (docs/design.md, "Training speed") is: uint8 frames -> model inputs, forward (every
loss term), backward, gradient clipping, Adam. None of it reads a value back to the host:
losses, the gradient norm and a sticky "a loss was not finite" flag stay on the device and
are read only when the training loop logs, saves or stops (:meth:`StepRunner.read_terms`,
:meth:`StepRunner.raise_if_nonfinite`).

On one CUDA device :class:`StepRunner` captures the whole step once as a CUDA graph and
replays it: one launch instead of thousands of small kernels. The schedule's ramped values
(KL weight, blob width, own-sample probabilities strictly between 0 and 1, motion weight,
learning rate) are then 0-d device tensors filled before each replay, so one graph serves a
whole ramp; a value that switches a branch on or off (a probability reaching 0 or 1, a zero
motion weight) is part of the graph's key, and a new key captures a new graph (a few times
per run). The graphed and eager steps run the same operations in the same order.

>>> import torch
>>> from keypoint_wm.model import ModelConfig, StructVRNN
>>> from keypoint_wm.model.outputs import LossSchedule
>>> config = ModelConfig(image_size=16, num_keypoints=2, num_encoder_filters=4,
...                      heatmap_width=4, num_observed_steps=2, num_predicted_steps=1,
...                      rnn_units=8, latent_size=4, prior_net_size=8, posterior_net_size=8,
...                      decoder_net_size=8, num_bom_samples=2)
>>> _ = torch.manual_seed(0)
>>> runner = StepRunner(StructVRNN(config), learning_rate=1e-3, grad_clip_norm=10.0)
>>> frames = torch.randint(0, 256, (2, 3, 16, 16, 3), dtype=torch.uint8)
>>> runner.step(frames, None, None, LossSchedule.final(1.0), lr=1e-3)
>>> runner.raise_if_nonfinite(step=1)
>>> sorted(runner.read_terms())[:3]
['concentration', 'grad_norm', 'image']
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from keypoint_wm.conventions import frames_to_tensor
from keypoint_wm.errors import RunError
from keypoint_wm.model.outputs import LossSchedule, ModelOutput, is_full, is_off

GRAPH_WARMUP_STEPS = 3
"""Eager steps (real training steps) on a side stream before the first capture: cuBLAS,
cuDNN and the optimizer's state initialise lazily and must not do so inside a capture."""


class NonFiniteLossError(RunError):
    """A loss term became NaN or infinite; the message names it."""


def make_optimizer(
    model: nn.Module, learning_rate: float, device: torch.device, capturable: bool = False
) -> torch.optim.Adam:
    """Adam over ``model``'s parameters: fused on CUDA (one kernel for all parameters), and
    with its learning rate and step count on the device when ``capturable`` (CUDA graphs)."""
    if device.type != "cuda":
        return torch.optim.Adam(model.parameters(), lr=learning_rate)
    if capturable:
        lr = torch.tensor(learning_rate, dtype=torch.float32, device=device)
        return torch.optim.Adam(model.parameters(), lr=lr, fused=True, capturable=True)
    return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate: in place when it is a device tensor (no sync)."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    actions: Tensor | None,
    schedule: LossSchedule,
    lr: float,
    grad_clip_norm: float,
    reference: Tensor | None = None,
) -> tuple[ModelOutput, Tensor]:
    """One eager optimisation step; returns the model output and the pre-clip gradient norm
    (a 0-d tensor). Nothing is read back to the host.

    Args:
        images: ``[B, T, 3, H, W]`` float in [-0.5, 0.5].
        actions: ``[B, T, A]`` or None; reference: ``[B, 3, H, W]`` or None (frame 1).
    """
    set_learning_rate(optimizer, lr)
    return _forward_backward_update(model, optimizer, images, actions, schedule, grad_clip_norm,
                                    reference)  # fmt: skip


def _forward_backward_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    actions: Tensor | None,
    schedule: LossSchedule,
    grad_clip_norm: float,
    reference: Tensor | None,
) -> tuple[ModelOutput, Tensor]:
    output: ModelOutput = model(images, actions, schedule, reference)
    optimizer.zero_grad(set_to_none=True)
    output.loss.backward()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    if grad_clip_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(parameters, grad_clip_norm)
    else:
        grad_norm = images.new_zeros((), dtype=torch.float32)
    optimizer.step()
    return output, grad_norm


def graph_key(schedule: LossSchedule) -> tuple[str, ...]:
    """What a captured graph's operations depend on: for each probability, off / full /
    ramping; whether the motion term is computed."""

    def state(p: float) -> str:
        return "off" if is_off(p) else "full" if is_full(p) else "ramp"

    return (
        state(float(schedule.p_own_sample_observed)),
        state(float(schedule.p_own_sample_predicted)),
        "motion" if not is_off(float(schedule.motion_scale)) else "no-motion",
    )


class StepRunner:
    """Runs training steps for one model: eager, or as a replayed CUDA graph.

    Args:
        model: the model to train (the optimizer is built here, see :func:`make_optimizer`);
            ``trained`` may wrap it (DistributedDataParallel), else it is the model.
        learning_rate: the initial learning rate (each step passes its own).
        grad_clip_norm: global-norm clipping threshold (0: off).
        use_graph: capture and replay a CUDA graph (CUDA only; not with DDP).
    """

    def __init__(
        self,
        model: nn.Module,
        learning_rate: float,
        grad_clip_norm: float,
        use_graph: bool = False,
        trained: nn.Module | None = None,
    ) -> None:
        self.model = model
        self.trained = trained if trained is not None else model
        self.device = next(model.parameters()).device
        if use_graph and self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.use_graph = use_graph
        self.grad_clip_norm = grad_clip_norm
        self.optimizer = make_optimizer(model, learning_rate, self.device, capturable=use_graph)
        self._nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        self._last: tuple[dict[str, Tensor], Tensor] | None = None
        self._last_weights: dict[str, float | Tensor] = {}
        self._eager_steps = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._graph_key: tuple[str, ...] | None = None
        self._static: dict[str, Any] = {}
        self.captures = 0

    # ---------------------------------------------------------------- public
    def step(
        self,
        frames: Tensor,
        actions: Tensor | None,
        reference: Tensor | None,
        schedule: LossSchedule,
        lr: float,
    ) -> None:
        """One step on ``frames`` uint8 ``[B, T, H, W, 3]`` (any device), ``actions``
        ``[B, T, A]`` or None, ``reference`` uint8 ``[B, H, W, 3]`` or None."""
        if not self.use_graph or self._eager_steps < GRAPH_WARMUP_STEPS:
            self._eager_step(frames, actions, reference, schedule, lr)
            return
        key = graph_key(schedule)
        if self._graph is None or key != self._graph_key:
            self._capture(frames, actions, reference, schedule, key)
        self._fill_static(frames, actions, reference, schedule, lr)
        assert self._graph is not None
        self._graph.replay()

    def read_terms(self) -> dict[str, float]:
        """The last step's unweighted loss terms, ``"total"`` and ``"grad_norm"`` (syncs)."""
        if self._last is None:
            return {}
        terms, grad_norm = self._last
        values = {name: float(value.detach()) for name, value in terms.items()}
        values["grad_norm"] = float(grad_norm)
        return values

    def raise_if_nonfinite(self, step: int) -> None:
        """Raise :class:`NonFiniteLossError` if any step so far had a non-finite loss (syncs).

        The check runs when the loop logs or saves, so a run stops within ``log_every``
        steps of the first bad one, and never saves a checkpoint after it."""
        if not bool(self._nonfinite):
            return
        terms = self.read_terms()
        weights = {k: float(v) for k, v in self._last_weights.items()}
        bad = [
            name
            for name, value in terms.items()
            if name not in ("total", "grad_norm")
            and not (math.isfinite(value) and math.isfinite(weights.get(name, 1.0) * value))
        ]
        raise NonFiniteLossError(
            f"non-finite loss by step {step} in term(s) {', '.join(bad) or 'total'}; "
            "stopped without saving, the last good checkpoint is kept"
        )

    # ---------------------------------------------------------------- eager
    def _eager_step(self, frames, actions, reference, schedule, lr) -> None:
        images, actions_d, reference_d = self._inputs(frames, actions, reference)
        set_learning_rate(self.optimizer, lr)
        if self.use_graph:  # warm up on a side stream, as capture requires
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream):
                self._record(images, actions_d, reference_d, schedule)
            torch.cuda.current_stream(self.device).wait_stream(stream)
        else:
            self._record(images, actions_d, reference_d, schedule)
        self._eager_steps += 1

    def _record(self, images, actions, reference, schedule) -> None:
        output, grad_norm = _forward_backward_update(
            self.trained, self.optimizer, images, actions, schedule, self.grad_clip_norm,
            reference,
        )  # fmt: skip
        self._nonfinite.logical_or_(~torch.isfinite(output.loss.detach()))
        self._last = ({k: v.detach() for k, v in output.terms.items()}, grad_norm.detach())
        self._last_weights = output.weights

    def _inputs(self, frames, actions, reference):
        images = frames_to_tensor(frames, self.device)
        actions_d = None if actions is None else actions.to(self.device, non_blocking=True)
        reference_d = None
        if reference is not None:
            reference_d = frames_to_tensor(reference[:, None], self.device)[:, 0]
        return images, actions_d, reference_d

    # ---------------------------------------------------------------- graph
    def _capture(self, frames, actions, reference, schedule, key) -> None:
        """Capture the step for ``key`` (a :class:`RunError` if the capture fails)."""
        self._graph = None
        static: dict[str, Any] = {
            "frames": torch.empty_like(frames, device=self.device),
            "actions": None if actions is None else torch.empty_like(actions, device=self.device),
            "reference": None
            if reference is None
            else torch.empty_like(reference, device=self.device),
        }
        values = {}
        graphed = {}
        for name in ("kl_scale", "p_own_sample_observed", "p_own_sample_predicted",
                     "keypoint_width", "motion_scale"):  # fmt: skip
            value = getattr(schedule, name)
            if value is None or (name.startswith("p_own") and (is_off(value) or is_full(value))):
                graphed[name] = value  # static: part of the key
            elif name == "motion_scale" and is_off(value):
                graphed[name] = 0.0
            else:
                values[name] = torch.tensor(float(value), device=self.device)
                graphed[name] = values[name]
        static["values"] = values
        graph_schedule = replace(schedule, **graphed)
        for name, source in (("frames", frames), ("actions", actions), ("reference", reference)):
            if static[name] is not None:
                static[name].copy_(source, non_blocking=True)
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        try:
            # thread_local: a DataLoader's pin-memory thread may use CUDA during the capture
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                images, actions_d, reference_d = self._inputs(
                    static["frames"], static["actions"], static["reference"]
                )
                self._record(images, actions_d, reference_d, graph_schedule)
        except Exception as error:
            # A failed capture leaves the CUDA generator mid-capture: eager steps after it
            # would fail obscurely, so the run stops here, saying how to continue.
            raise RunError(
                f"CUDA graph capture of the training step failed ({type(error).__name__}: "
                f"{error}); rerun with --cuda-graph off (and --resume to continue the run)"
            ) from error
        self._graph, self._graph_key, self._static = graph, key, static
        self.captures += 1

    def _fill_static(self, frames, actions, reference, schedule, lr) -> None:
        static = self._static
        if frames.data_ptr() != static["frames"].data_ptr():
            static["frames"].copy_(frames, non_blocking=True)
        if actions is not None and actions.data_ptr() != static["actions"].data_ptr():
            static["actions"].copy_(actions, non_blocking=True)
        if reference is not None and reference.data_ptr() != static["reference"].data_ptr():
            static["reference"].copy_(reference, non_blocking=True)
        for name, tensor in static["values"].items():
            value = getattr(schedule, name)
            tensor.fill_(float(value))
        set_learning_rate(self.optimizer, lr)

    def optimizer_state(self) -> dict[str, Any]:
        """The optimizer's state dict with plain-float learning rates, so that a checkpoint
        written here resumes on any device, graphed or not."""
        state = self.optimizer.state_dict()
        for group in state["param_groups"]:
            group["lr"] = float(group["lr"])
        return state

    def load_optimizer_state(self, state: dict[str, Any]) -> None:
        """Load a checkpoint's optimizer state, keeping the device learning rates a captured
        graph reads."""
        lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.optimizer.load_state_dict(state)
        for group, lr in zip(self.optimizer.param_groups, lrs, strict=True):
            if isinstance(lr, Tensor):
                lr.fill_(float(group["lr"]))
                group["lr"] = lr

    def static_inputs(self) -> dict[str, Tensor | None]:
        """The captured graph's input buffers (``frames``, ``actions``, ``reference``), so a
        device-resident data source can write the next batch straight into them; empty
        before the first capture."""
        return {k: v for k, v in self._static.items() if k != "values"}
