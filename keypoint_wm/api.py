"""The public Python API: load a trained run and use it without the CLI.

``keypoint_wm.load("runs/basketball")`` loads what ``keypoint-wm train`` wrote. Here a run of
untrained weights, written the way training writes one, stands in for it:

>>> import tempfile
>>> from pathlib import Path
>>> import numpy as np
>>> import keypoint_wm
>>> from keypoint_wm.checkpoint import save_checkpoint, write_config
>>> from keypoint_wm.config import RunConfig, TrainConfig
>>> from keypoint_wm.model import ModelConfig, StructVRNN
>>> config = RunConfig("custom", ModelConfig(image_size=16, heatmap_width=8, num_keypoints=2,
...                    num_encoder_filters=4, rnn_units=8, num_observed_steps=3,
...                    num_predicted_steps=3), TrainConfig())
>>> run = Path(tempfile.mkdtemp())
>>> write_config(run, config.to_dict())
>>> _ = save_checkpoint(run, 0, StructVRNN(config.model).state_dict(), {}, {})
>>> model = keypoint_wm.load(run, device="cpu")
>>> frames = np.zeros((2, 6, 16, 16, 3), np.uint8)       # uint8 [B, T, H, W, 3]
>>> model.observe(frames).keypoints.shape               # [B, T, K, 3]
torch.Size([2, 6, 2, 3])
>>> futures = model.imagine(frames[:, :3], num_future=3, num_samples=5)
>>> futures.keypoints.shape                             # [B, N, T0 + F, K, 3]
torch.Size([2, 5, 6, 2, 3])
>>> model.decode(futures.keypoints[:, 0], frames[:, 0]).shape  # uint8 [B, T0 + F, H, W, 3]
(2, 6, 16, 16, 3)

Keypoints are in the keypoint frame: x, y in [-1, 1] with y up, scale in [0, 1]. Actions
follow the episode alignment: ``actions[:, t]`` is the action that led to frame t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from keypoint_wm.bundled import is_exported, read_exported_weights, resolve_run
from keypoint_wm.checkpoint import (
    WEIGHTS,
    CheckpointError,
    load_checkpoint,
    load_latest_checkpoint,
    load_weights,
    read_run_config,
)
from keypoint_wm.config import RunConfig
from keypoint_wm.conventions import ArrayLike, frames_to_tensor, images_to_uint8
from keypoint_wm.model.device import resolve_device
from keypoint_wm.model.outputs import ObserveOutput
from keypoint_wm.model.precision import resolve_precision
from keypoint_wm.model.struct_vrnn import StructVRNN


@dataclass
class Observation:
    """What the model makes of observed frames (CPU float32 tensors).

    Attributes:
        keypoints: ``[B, T, K, 3]`` detected keypoints.
        decoded_keypoints: ``[B, T, K, 3]`` the dynamics' posterior reconstruction of them.
        hidden: ``[B, T, rnn_units]`` GRU state *before* each frame (h_{t-1}).
        latent: ``[B, T, latent_size]`` posterior samples z_t (None for Struct-RNN).
        posterior_mean, posterior_std: ``[B, T, latent_size]`` or None.
    """

    keypoints: torch.Tensor
    decoded_keypoints: torch.Tensor
    hidden: torch.Tensor
    latent: torch.Tensor | None
    posterior_mean: torch.Tensor | None
    posterior_std: torch.Tensor | None


@dataclass
class Imagination:
    """Sampled futures: ``keypoints`` ``[B, N, T0 + F, K, 3]`` (observed then predicted),
    ``hidden`` ``[B, N, T0 + F, rnn_units]``, ``images`` uint8 ``[B, N, T0 + F, H, W, 3]``
    when decoded, and the detected keypoints of the observed frames ``[B, T0, K, 3]``."""

    keypoints: torch.Tensor
    hidden: torch.Tensor
    observed_keypoints: torch.Tensor
    images: np.ndarray | None


def _cpu(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().cpu()


def _cpu_or_none(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else _cpu(x)


class WorldModel:
    """A trained Struct-VRNN (or baseline) with a numpy/torch-friendly interface."""

    def __init__(self, model: StructVRNN, config: RunConfig, step: int, run_dir: Path | None):
        self.model = model.eval()
        self.config = config
        self.step = step
        self.run_dir = run_dir

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def num_keypoints(self) -> int:
        return self.config.model.num_keypoints

    @property
    def action_size(self) -> int:
        return self.config.model.action_size

    def _actions(self, actions: ArrayLike | None, batch: int, steps: int) -> torch.Tensor | None:
        if not self.action_size:
            return None
        if actions is None:
            raise ValueError(
                f"this model is action-conditioned: pass actions [B, {steps}, {self.action_size}]"
            )
        tensor = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        if tensor.shape[:2] != (batch, steps) or tensor.shape[-1] > self.action_size:
            raise ValueError(
                f"actions must be [B={batch}, T={steps}, A<={self.action_size}], got {list(tensor.shape)}"
            )
        if tensor.shape[-1] < self.action_size:  # zero-pad like the multi-task training data
            tensor = torch.nn.functional.pad(tensor, (0, self.action_size - tensor.shape[-1]))
        return tensor

    @torch.no_grad()
    def observe(
        self, frames: ArrayLike, actions: ArrayLike | None = None, feed_observed: bool = False
    ) -> Observation:
        """Detect keypoints in every frame and run the posterior dynamics over them.

        Args:
            frames: uint8 ``[B, T, H, W, 3]``.
            actions: ``[B, T, A]`` (action-conditioned models only).
            feed_observed: feed the detected keypoints to the GRU instead of the decoded
                posterior sample (the authors' inference behaviour, the default).
        """
        images = frames_to_tensor(frames, self.device)
        out = self.model.observe(
            images, self._actions(actions, *images.shape[:2]), feed_observed=feed_observed
        )
        return self._observation(out)

    @torch.no_grad()
    def detect(self, frames: ArrayLike) -> torch.Tensor:
        """The keypoints of every frame, each detected alone: uint8 ``[B, T, H, W, 3]`` ->
        float32 ``[B, T, K, 3]`` on the CPU (x, y in [-1, 1], y up; scale in [0, 1]; a
        CNN-VRNN run's features in [-1, 1]), the ``keypoints`` :meth:`observe` reports."""
        return _cpu(self.model.detect(frames_to_tensor(frames, self.device))[0])

    @torch.no_grad()
    def observe_detected(
        self, keypoints: ArrayLike, actions: ArrayLike | None = None, feed_observed: bool = False
    ) -> Observation:
        """:meth:`observe` from keypoints :meth:`detect` found (``[B, T, K, 3]``): frames
        that several windows share are detected once and sliced into each."""
        tensor = torch.as_tensor(keypoints, dtype=torch.float32, device=self.device)
        if tensor.dim() != 4 or tuple(tensor.shape[2:]) != (self.num_keypoints, 3):
            raise ValueError(
                f"keypoints must be [B, T, K={self.num_keypoints}, 3], got {list(tensor.shape)}"
            )
        out = self.model.observe_detected(
            tensor, self._actions(actions, *tensor.shape[:2]), feed_observed=feed_observed
        )
        return self._observation(out)

    @staticmethod
    def _observation(out: ObserveOutput) -> Observation:
        return Observation(
            keypoints=_cpu(out.keypoints),
            decoded_keypoints=_cpu(out.decoded_keypoints),
            hidden=_cpu(out.hidden),
            latent=_cpu_or_none(out.latent),
            posterior_mean=_cpu_or_none(out.posterior_mean),
            posterior_std=_cpu_or_none(out.posterior_std),
        )

    @torch.no_grad()
    def filter(self, frames: ArrayLike, actions: ArrayLike | None = None) -> Observation:
        """The latent state an agent sees, frame by frame: the deterministic online filter.

        What the latent wrappers compute step by step (docs/design.md, "Action
        conditioning"), over whole sequences: for each frame t the detected keypoints and
        h_{t-1}; z_t is the posterior MEAN (no sampling), the GRU is fed the decoded
        posterior, and ``h_t = GRU([x_t, z_t, action[t+1]], h_{t-1})``. The same
        :meth:`~keypoint_wm.model.KeypointDynamics.posterior_step` and
        :meth:`~keypoint_wm.model.KeypointDynamics.advance` the wrappers call.

        Args:
            frames: uint8 ``[B, T, H, W, 3]``.
            actions: ``[B, T, A]`` (action-conditioned models only).

        Returns:
            :class:`Observation` with ``keypoints`` ``[B, T, K, 3]``, ``hidden`` ``[B, T, H]``
            (h_{t-1}), ``decoded_keypoints``, and ``latent`` = ``posterior_mean`` (None for
            Struct-RNN); ``posterior_std`` is None.
        """
        images = frames_to_tensor(frames, self.device)
        batch, steps = images.shape[:2]
        action = self._actions(actions, batch, steps)
        keypoints, _ = self.model.detect(images)
        dynamics = self.model.dynamics
        hidden = dynamics.initial_state(batch, self.device)
        hiddens, decoded, latents = [], [], []
        for t in range(steps):
            hiddens.append(hidden)
            step = dynamics.posterior_step(
                hidden, keypoints[:, t].flatten(1), sample=False, with_prior=False
            )
            decoded.append(step.decoded)
            if step.latent is not None:
                latents.append(step.latent)
            if t + 1 < steps:
                hidden = dynamics.advance(
                    hidden, step.feed, step.latent, None if action is None else action[:, t + 1]
                )
        latent = _cpu(torch.stack(latents, 1)) if latents else None
        return Observation(
            keypoints=_cpu(keypoints),
            decoded_keypoints=_cpu(torch.stack(decoded, 1).view(keypoints.shape)),
            hidden=_cpu(torch.stack(hiddens, 1)),
            latent=latent,
            posterior_mean=latent,
            posterior_std=None,
        )

    @torch.no_grad()
    def imagine(
        self,
        frames: ArrayLike,
        num_future: int,
        num_samples: int = 1,
        actions: ArrayLike | None = None,
        decode_images: bool = False,
        keypoint_edit: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Imagination:
        """Observe ``frames`` and sample ``num_samples`` futures of ``num_future`` frames.

        Args:
            frames: uint8 ``[B, T0, H, W, 3]`` observed frames.
            actions: ``[B, T0 + num_future, A]``: the actions that led to each observed frame
                and those that will produce each future frame (action-conditioned models).
            keypoint_edit: optional ``[B, T0, K, 3] -> [B, T0, K, 3]`` applied to the
                detected keypoints before the dynamics see them (counterfactuals).
        """
        images = frames_to_tensor(frames, self.device)
        batch, observed = images.shape[:2]
        out = self.model.rollout(
            images,
            self._actions(actions, batch, observed + num_future),
            num_future=num_future,
            num_samples=num_samples,
            keypoint_edit=keypoint_edit,
            decode_images=decode_images,
        )
        return Imagination(
            keypoints=out.decoded_keypoints.float().cpu(),
            hidden=out.hidden.float().cpu(),
            observed_keypoints=out.observed_keypoints.float().cpu(),
            images=None if out.images is None else images_to_uint8(out.images),
        )

    @torch.no_grad()
    def decode(
        self, keypoints: ArrayLike, first_frame: ArrayLike, first_keypoints: ArrayLike | None = None
    ) -> np.ndarray:
        """Render keypoints ``[B, T, K, 3]`` as images, given frame 1 (uint8 ``[B, H, W, 3]``).

        ``first_keypoints`` defaults to the keypoints detected in ``first_frame``.
        Returns uint8 ``[B, T, H, W, 3]``.
        """
        first = frames_to_tensor(torch.as_tensor(first_frame)[:, None], self.device)
        if first_keypoints is None:
            first_keypoints = self.model.detect(first)[0][:, 0]
        kp = torch.as_tensor(keypoints, dtype=torch.float32, device=self.device)
        first_kp = torch.as_tensor(first_keypoints, dtype=torch.float32, device=self.device)
        return images_to_uint8(self.model.reconstruct(first[:, 0], first_kp, kp))

    def shift_and_rollout(
        self,
        frames: ArrayLike,
        keypoint_index: int | list[int],
        offset: tuple[float, float],
        num_future: int,
        num_samples: int = 1,
        actions: ArrayLike | None = None,
        ramp: bool = True,
    ) -> Imagination:
        """Paper section 5.3: move observed keypoints by ``offset`` (x, y in keypoint units),
        linearly ramped over the observed frames when ``ramp``, then roll out the future."""
        indices = [keypoint_index] if isinstance(keypoint_index, int) else list(keypoint_index)
        delta = torch.tensor(offset, dtype=torch.float32)

        def edit(keypoints: torch.Tensor) -> torch.Tensor:
            steps = keypoints.shape[1]
            weight = torch.linspace(0.0, 1.0, steps) if ramp else torch.ones(steps)
            shift = (weight[:, None] * delta[None]).to(keypoints)
            edited = keypoints.clone()
            edited[:, :, indices, :2] = (edited[:, :, indices, :2] + shift[None, :, None]).clamp(
                -1, 1
            )
            return edited

        return self.imagine(
            frames, num_future, num_samples, actions, decode_images=True, keypoint_edit=edit
        )


def load(
    run_dir: str | Path = "default",
    device: str | torch.device | None = None,
    step: int | None = None,
    precision: str = "fp32",
) -> WorldModel:
    """Load a trained run directory (its newest checkpoint, or ``step``), or an exported or
    shipped model.

    Args:
        run_dir: a directory written by ``keypoint-wm train``, an exported model's folder
            (``keypoint-wm export``), or the name of a model shipped in the package
            (``"default"``, the default: :mod:`keypoint_wm.bundled`).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; default the first CUDA device when
            there is one, else the CPU (docs/design.md, "Devices").
        step: a specific checkpoint step (default: the newest).
        precision: ``"fp32"``, ``"channels_last"``, ``"bf16"`` or ``"auto"`` (as in training).

    Loading never executes pickled code (weights are safetensors).
    """
    run_dir = resolve_run(run_dir)
    config = read_run_config(run_dir)
    target = resolve_device(device, flag="device")
    if is_exported(run_dir):
        weights, saved_step = read_exported_weights(run_dir)
        source = run_dir / WEIGHTS
        if step is not None and step != saved_step:
            raise CheckpointError(f"{run_dir}: an exported model of step {saved_step}, not {step}")
    else:
        if step is None:  # the newest checkpoint that loads; damaged newer ones are named
            checkpoint = load_latest_checkpoint(run_dir, with_training_state=False)
        else:
            path = run_dir / "checkpoints" / f"step_{step:08d}"
            found = path.exists()
            checkpoint = load_checkpoint(path, with_training_state=False) if found else None
        if checkpoint is None:
            raise CheckpointError(
                f"{run_dir}: no checkpoint{'' if step is None else f' for step {step}'}"
            )
        weights, saved_step, source = checkpoint.model_state, checkpoint.step, checkpoint.path
    model = StructVRNN(config.model)
    load_weights(model, weights, run_dir, source)
    model.to(target)
    model.set_precision(resolve_precision(precision, target))
    return WorldModel(model, config, saved_step, run_dir)
