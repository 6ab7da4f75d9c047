"""The paper's reward-prediction head (section 5.4 / S2.2) and its files.

Input: a sequence of the world model's RNN hidden states ``[B, T, H]``; output: one reward
per step ``[B, T]``. Architecture (S2.2): Dense(128) -> GRU(128) -> GRU(128) -> Dense(1),
ReLU between the layers. Rewards are predicted in units of the training targets'
standard deviation around their mean (both stored with the head), so the head's raw output
is well scaled for any task.

Alignment (docs/design.md, "Action conditioning"): ``hidden[:, t]`` is h_{t-1}, the state
that conditions frame t (it has seen every frame before t and the action that produced frame
t); the head maps it to ``reward[t]``, the reward received with frame t. The same holds
along imagined futures and online in the Gymnasium wrapper.

A head is saved as a directory with ``head.safetensors`` (weights) and ``head.json`` (its
:class:`RewardHeadConfig` plus metadata); loading never unpickles code.

>>> head = RewardHead(RewardHeadConfig(input_size=512))
>>> rewards, state = head(torch.zeros(4, 20, 512))   # rewards [4, 20], state [2, 4, 128]
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

__all__ = [
    "HEAD_CONFIG",
    "HEAD_WEIGHTS",
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
        input_size: H, the world model's ``rnn_units``.
        units: width of the dense layer and of each GRU layer (paper: 128).
        gru_layers: number of stacked GRU layers (paper: 2).
        task: the task (``"domain-task"``) the head was trained for, if any.
        reward_mean, reward_std: mean and standard deviation of the training rewards; the
            head outputs ``reward_mean + reward_std * raw``.
        metadata: free-form JSON-serialisable facts (run, checkpoint step, data, metrics).
    """

    input_size: int
    units: int = 128
    gru_layers: int = 2
    task: str = ""
    reward_mean: float = 0.0
    reward_std: float = 1.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("input_size", "units", "gru_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RewardHeadConfig.{name} must be a positive int, got {value!r}")
        if not self.reward_std > 0:
            raise ValueError(f"RewardHeadConfig.reward_std must be > 0, got {self.reward_std}")


class RewardHead(nn.Module):
    """Dense(units) -> ReLU -> [GRU(units) -> ReLU] x gru_layers -> Dense(1)."""

    def __init__(self, config: RewardHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.dense = nn.Linear(config.input_size, config.units)
        self.grus = nn.ModuleList(
            nn.GRU(config.units, config.units, batch_first=True) for _ in range(config.gru_layers)
        )
        self.out = nn.Linear(config.units, 1)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> Tensor:
        """Zero GRU states ``[gru_layers, B, units]``."""
        return torch.zeros(self.config.gru_layers, batch_size, self.config.units, device=device)

    def forward_normalized(
        self, hidden: Tensor, state: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``hidden [B, T, H]`` -> (standardised rewards ``[B, T]``, state ``[L, B, U]``)."""
        if hidden.dim() != 3 or hidden.shape[-1] != self.config.input_size:
            raise ValueError(
                f"hidden states must be [B, T, {self.config.input_size}], got {list(hidden.shape)}"
            )
        if state is None:
            state = self.initial_state(hidden.shape[0], hidden.device)
        x = F.relu(self.dense(hidden.float()))
        states = []
        for i, gru in enumerate(self.grus):
            x, s = gru(x, state[i : i + 1].contiguous())
            x = F.relu(x)
            states.append(s)
        return self.out(x).squeeze(-1), torch.cat(states, dim=0)

    def forward(self, hidden: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Predict rewards.

        Args:
            hidden: ``[B, T, H]`` world-model hidden states (``hidden[:, t]`` = h_{t-1}).
            state: ``[gru_layers, B, units]`` the head's GRU state (default zeros).

        Returns:
            ``(rewards [B, T], state [gru_layers, B, units])`` in the task's reward units.
        """
        raw, state = self.forward_normalized(hidden, state)
        return self.config.reward_mean + self.config.reward_std * raw, state

    def step(self, hidden: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """One online step: ``hidden [B, H]`` -> ``(rewards [B], state)``."""
        rewards, state = self(hidden[:, None], state)
        return rewards[:, 0], state


def save_reward_head(head: RewardHead, directory: str | Path) -> Path:
    """Write ``head.safetensors`` and ``head.json`` into ``directory`` (atomically each)."""
    from safetensors.torch import save_file

    from keypoint_wm.data.episodes import atomic_write_bytes

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{HEAD_WEIGHTS}.tmp"
    save_file({k: v.detach().contiguous().cpu() for k, v in head.state_dict().items()}, str(tmp))
    tmp.replace(directory / HEAD_WEIGHTS)
    payload = json.dumps(dataclasses.asdict(head.config), indent=2, sort_keys=True) + "\n"
    atomic_write_bytes(directory / HEAD_CONFIG, payload.encode())
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
