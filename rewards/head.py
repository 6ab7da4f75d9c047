"""The paper's reward-prediction head (section 5.4 / S2.2) and its files.

Input (:data:`INPUTS`, the config's ``inputs``; :mod:`keypoint_wm.reward_inputs`):
``"hidden"`` (the paper's, the default) reads a sequence of the world model's RNN hidden
states ``[B, T, H]``; the two others read them together with the model's own per-frame
representation of each frame ``[B, T, K, 3]``, concatenated after the hidden state (``H + 3K``
values per step): ``"hidden+keypoints"`` a Struct-VRNN run's keypoints (x, y clamped to
[-1, 1], scale to [0, 1]), ``"hidden+features"`` a CNN-VRNN run's encoder features (its
``K * 3`` features reshaped as the model hands them out, all clamped to [-1, 1]). A head that
reads a per-frame input fits runs of that representation only (:meth:`RewardHead.check_model`).
Output: one reward per step ``[B, T]``.
Architecture (S2.2): Dense(128) -> GRU(128) -> GRU(128) -> Dense(1), ReLU between the
layers. Rewards are predicted in units of the training targets' standard deviation around
their mean (both stored with the head), so the head's raw output is well scaled for any task.

Alignment (docs/design.md, "Action conditioning"): ``hidden[:, t]`` is h_{t-1}, the state
that conditions frame t (it has seen every frame before t and the action that produced frame
t), and ``keypoints[:, t]`` are frame t's own keypoints (detected in an observed frame,
decoded from the prior in an imagined one; for CNN-VRNN, its encoder features, or those
decoded by the dynamics); the head maps them to ``reward[t]``, the reward
received with frame t. The same holds along imagined futures, online in the Gymnasium
wrappers and in ``DreamEnv``.

A head is saved as a directory with ``head.safetensors`` (weights) and ``head.json`` (its
:class:`RewardHeadConfig` plus metadata); loading never unpickles code.

>>> head = RewardHead(RewardHeadConfig(input_size=512))
>>> rewards, state = head(torch.zeros(4, 20, 512))   # rewards [4, 20], state [2, 4, 128]
>>> both = RewardHead(RewardHeadConfig(input_size=512, inputs="hidden+keypoints", num_keypoints=9))
>>> both(torch.zeros(4, 20, 512), keypoints=torch.zeros(4, 20, 9, 3))[0].shape
torch.Size([4, 20])
>>> cnn = RewardHead(RewardHeadConfig(input_size=512, inputs="hidden+features", num_keypoints=9))
>>> cnn(torch.zeros(4, 20, 512), keypoints=torch.zeros(4, 20, 9, 3))[0].shape   # features
torch.Size([4, 20])
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from keypoint_wm.errors import DataError
from keypoint_wm.reward_inputs import FRAME_REPRESENTATION, INPUTS, inputs_mismatch

__all__ = [
    "HEAD_CONFIG",
    "HEAD_WEIGHTS",
    "INPUTS",
    "RewardHead",
    "RewardHeadConfig",
    "find_reward_head",
    "load_reward_head",
    "save_reward_head",
]

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "head.json"


@dataclass(frozen=True)
class RewardHeadConfig:
    """Size of a reward head and the reward statistics it predicts in.

    Attributes:
        input_size: H, the world model's ``rnn_units`` (the hidden state's size).
        units: width of the dense layer and of each GRU layer (paper: 128).
        gru_layers: number of stacked GRU layers (paper: 2).
        task: the task (``"domain-task"``) the head was trained for, if any.
        reward_mean, reward_std: mean and standard deviation of the training rewards; the
            head outputs ``reward_mean + reward_std * raw``.
        metadata: free-form JSON-serialisable facts (run, checkpoint step, data, metrics).
        inputs: one of :data:`INPUTS`. A ``head.json`` written before the option existed
            lacks the key and loads as ``"hidden"`` (what every head read then).
        num_keypoints: K, the world model's ``num_keypoints``: the per-frame input is
            ``[K, 3]``, K keypoints (``"hidden+keypoints"``) or ``K * 3`` CNN features
            (``"hidden+features"``); 0 for ``"hidden"``.
    """

    input_size: int
    units: int = 128
    gru_layers: int = 2
    task: str = ""
    reward_mean: float = 0.0
    reward_std: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: str = "hidden"
    num_keypoints: int = 0

    def __post_init__(self) -> None:
        for name in ("input_size", "units", "gru_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RewardHeadConfig.{name} must be a positive int, got {value!r}")
        if not self.reward_std > 0:
            raise ValueError(f"RewardHeadConfig.reward_std must be > 0, got {self.reward_std}")
        if self.inputs not in INPUTS:
            raise ValueError(
                f"RewardHeadConfig.inputs must be one of {', '.join(INPUTS)}, got {self.inputs!r}"
            )
        if self.reads_frame != (self.num_keypoints > 0):
            raise ValueError(
                "RewardHeadConfig.num_keypoints must be > 0 exactly when inputs is "
                f"{' or '.join(map(repr, FRAME_REPRESENTATION))} "
                f"(inputs={self.inputs!r}, num_keypoints={self.num_keypoints})"
            )

    @property
    def reads_frame(self) -> bool:
        """Whether the head reads frame t's per-frame representation besides h_{t-1}
        (keypoints or CNN features: the ``keypoints`` argument of :class:`RewardHead`)."""
        return self.inputs in FRAME_REPRESENTATION

    @property
    def reads_keypoints(self) -> bool:
        """The old name of :attr:`reads_frame` (True for ``"hidden+features"`` too: the head
        takes the ``keypoints`` argument)."""
        return self.reads_frame

    @property
    def representation(self) -> str | None:
        """The model ``representation`` whose per-frame output the head reads (None for
        ``"hidden"``, which reads any run)."""
        return FRAME_REPRESENTATION.get(self.inputs)

    @property
    def feature_size(self) -> int:
        """Values the head reads per step: ``H`` or ``H + 3K``."""
        return self.input_size + 3 * self.num_keypoints


class RewardHead(nn.Module):
    """Dense(units) -> ReLU -> [GRU(units) -> ReLU] x gru_layers -> Dense(1)."""

    def __init__(self, config: RewardHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.dense = nn.Linear(config.feature_size, config.units)
        self.grus = nn.ModuleList(
            nn.GRU(config.units, config.units, batch_first=True) for _ in range(config.gru_layers)
        )
        self.out = nn.Linear(config.units, 1)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        """Zero GRU states ``[gru_layers, B, units]``."""
        return torch.zeros(self.config.gru_layers, batch_size, self.config.units, device=device)

    def inputs_of(self, hidden: Tensor, keypoints: Tensor | None = None) -> Tensor:
        """What the head reads at each step: float ``[B, T, feature_size]``.

        Args:
            hidden: ``[B, T, H]`` (``hidden[:, t]`` = h_{t-1}).
            keypoints: ``[B, T, K, 3]`` frame t's per-frame representation; required when the
                head reads it (:attr:`RewardHeadConfig.reads_frame`), ignored otherwise.
                Keypoints (``"hidden+keypoints"``): x and y are clamped to [-1, 1] and the
                scale to [0, 1] (detected keypoints already are; decoded ones of imagined
                frames are bounded like the latent wrappers' observations). CNN features
                (``"hidden+features"``): every channel is clamped to [-1, 1], their range.
        """
        config = self.config
        if hidden.dim() != 3 or hidden.shape[-1] != config.input_size:
            raise ValueError(
                f"hidden states must be [B, T, {config.input_size}], got {list(hidden.shape)}"
            )
        if not config.reads_frame:
            return hidden.float()
        k = config.num_keypoints
        if keypoints is None or tuple(keypoints.shape) != (*hidden.shape[:2], k, 3):
            got = None if keypoints is None else list(keypoints.shape)
            what = "keypoints" if config.representation == "keypoints" else "CNN features"
            raise ValueError(
                f"this head reads hidden states and frame t's {what} (inputs={config.inputs!r}): "
                f"pass keypoints [B, T, {k}, 3] matching hidden {list(hidden.shape)}, got {got}"
            )
        keypoints = keypoints.float().to(hidden.device)
        if config.representation == "keypoints":
            position = keypoints[..., :2].clamp(-1.0, 1.0)
            scale = keypoints[..., 2:].clamp(0.0, 1.0)
            frame = torch.cat([position, scale], dim=-1)
        else:
            frame = keypoints.clamp(-1.0, 1.0)
        return torch.cat([hidden.float(), frame.flatten(2)], dim=-1)

    def forward_normalized(
        self, hidden: Tensor, state: Tensor | None = None, keypoints: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``hidden [B, T, H]`` (and ``keypoints [B, T, K, 3]``, see :meth:`inputs_of`) ->
        (standardised rewards ``[B, T]``, state ``[L, B, U]``)."""
        x = self.inputs_of(hidden, keypoints)
        if state is None:
            state = self.initial_state(hidden.shape[0], hidden.device)
        x = F.relu(self.dense(x))
        states = []
        for i, gru in enumerate(self.grus):
            x, s = gru(x, state[i : i + 1].contiguous())
            x = F.relu(x)
            states.append(s)
        return self.out(x).squeeze(-1), torch.cat(states, dim=0)

    def forward(
        self, hidden: Tensor, state: Tensor | None = None, keypoints: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Predict rewards.

        Args:
            hidden: ``[B, T, H]`` world-model hidden states (``hidden[:, t]`` = h_{t-1}).
            state: ``[gru_layers, B, units]`` the head's GRU state (default zeros).
            keypoints: ``[B, T, K, 3]`` frame t's keypoints (``inputs="hidden+keypoints"``)
                or CNN features (``"hidden+features"``); ignored by a ``"hidden"`` head.

        Returns:
            ``(rewards [B, T], state [gru_layers, B, units])`` in the task's reward units.
        """
        raw, state = self.forward_normalized(hidden, state, keypoints)
        return self.config.reward_mean + self.config.reward_std * raw, state

    def step(
        self, hidden: Tensor, state: Tensor | None = None, keypoints: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """One online step: ``hidden [B, H]`` (h_{t-1}) and ``keypoints [B, K, 3]`` (frame t's
        keypoints or features) -> ``(rewards [B], state)``."""
        rewards, state = self(
            hidden[:, None], state, None if keypoints is None else keypoints[:, None]
        )
        return rewards[:, 0], state

    def check_model(
        self, rnn_units: int, num_keypoints: int, representation: str | None = None
    ) -> None:
        """Raise ValueError, saying why, unless the head reads a model of this size (and,
        given, of this ``representation``: a ``"hidden+keypoints"`` head reads Struct-VRNN
        runs only, a ``"hidden+features"`` head CNN-VRNN runs only)."""
        config = self.config
        if config.input_size != rnn_units:
            raise ValueError(
                f"the reward head reads hidden states of size {config.input_size} but the "
                f"model's rnn_units is {rnn_units}"
            )
        why = None if representation is None else inputs_mismatch(config.inputs, representation)
        if why is not None:
            raise ValueError(f"the reward head reads {config.inputs}, but {why}")
        if config.reads_frame and config.num_keypoints != num_keypoints:
            what = "keypoints" if config.representation == "keypoints" else "x 3 CNN features"
            raise ValueError(
                f"the reward head reads {config.num_keypoints} {what} but the model has "
                f"num_keypoints={num_keypoints}"
            )


def save_reward_head(head: RewardHead, directory: str | Path) -> Path:
    """Write ``head.safetensors`` and ``head.json`` into ``directory`` (atomically each)."""
    from keypoint_wm.checkpoint import write_tensors
    from keypoint_wm.data.episodes import atomic_write_json

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{HEAD_WEIGHTS}.tmp"
    write_tensors(tmp, {k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()})
    tmp.replace(directory / HEAD_WEIGHTS)
    atomic_write_json(directory / HEAD_CONFIG, dataclasses.asdict(head.config), sort_keys=True)
    return directory


def find_reward_head(path: str | Path, task: str | None = None) -> Path:
    """The head directory for ``task`` under ``path``.

    ``path`` is a head directory (holding ``head.json``) or a directory of heads, one
    sub-directory per task (what ``keypoint-wm rewards train`` writes, ``RUN/rewards``);
    then ``task`` picks one (optional when there is only one).

    Raises:
        DataError: no matching head; the message lists the tasks found.
    """
    path = Path(path)
    if (path / HEAD_CONFIG).exists():
        return path
    if not path.is_dir():
        raise DataError(
            f"reward head {path} does not exist; train heads with "
            "`keypoint-wm rewards train --run RUN --data DIR`"
        )
    heads = sorted(p.name for p in path.iterdir() if (p / HEAD_CONFIG).exists())
    if task is not None and task in heads:
        return path / task
    if task is None and len(heads) == 1:
        return path / heads[0]
    what = f"for task {task!r} " if task else ""
    raise DataError(
        f"no reward head {what}in {path} (heads found: {', '.join(heads) or 'none'}); "
        "train them with `keypoint-wm rewards train --run RUN --data DIR`"
    )


def load_reward_head(
    path: str | Path, task: str | None = None, device: str | torch.device = "cpu"
) -> RewardHead:
    """Load a head written by :func:`save_reward_head` (see :func:`find_reward_head`)."""
    from safetensors.torch import load_file

    directory = find_reward_head(path, task)
    fields = json.loads((directory / HEAD_CONFIG).read_text())
    head = RewardHead(RewardHeadConfig(**fields))
    head.load_state_dict(load_file(str(directory / HEAD_WEIGHTS)))
    return head.to(device).eval()
