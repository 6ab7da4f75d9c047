"""Rewards along imagined futures: the world model's prior dynamics plus a reward head.

With a trained run, ``head = load_reward_head("runs/dmcs/rewards", task="cheetah-run")``;
here an untrained model and head show the shapes:

>>> import numpy as np
>>> from keypoint_wm.api import WorldModel
>>> from keypoint_wm.config import RunConfig, TrainConfig
>>> from keypoint_wm.model import ModelConfig, StructVRNN
>>> from keypoint_wm.rewards.head import RewardHead, RewardHeadConfig
>>> config = RunConfig("custom", ModelConfig(image_size=16, heatmap_width=8, num_keypoints=2,
...                    num_encoder_filters=4, rnn_units=8, action_size=1), TrainConfig())
>>> model = WorldModel(StructVRNN(config.model), config, step=0, run_dir=None)
>>> head = RewardHead(RewardHeadConfig(input_size=config.model.rnn_units))
>>> frames = np.zeros((2, 4, 16, 16, 3), np.uint8)       # observed frames [B, T0, H, W, 3]
>>> actions = np.zeros((2, 10, 1), np.float32)            # [B, T0 + F, A]
>>> out = imagine_rewards(model, head, frames, actions, num_future=6, num_samples=5)
>>> out.rewards.shape                                     # [B, N, T0 + F]: observed, imagined
torch.Size([2, 5, 10])

``actions`` follows the episode alignment (``actions[:, t]`` produces frame t), so the
rewards of the imagined frames answer "what if I took these actions?".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from keypoint_wm.api import WorldModel
from keypoint_wm.conventions import ArrayLike
from keypoint_wm.rewards.head import RewardHead

__all__ = ["ImaginedRewards", "imagine_rewards", "predict_rewards"]


@dataclass
class ImaginedRewards:
    """Predicted rewards of sampled futures.

    Attributes:
        rewards: ``[B, N, T0 + F]`` the head's reward for every frame (observed, then
            imagined).
        keypoints: ``[B, N, T0 + F, K, 3]`` the decoded keypoints.
        hidden: ``[B, N, T0 + F, H]`` the hidden states the head read.
        num_observed: T0.
    """

    rewards: torch.Tensor
    keypoints: torch.Tensor
    hidden: torch.Tensor
    num_observed: int


@torch.no_grad()
def predict_rewards(head: RewardHead, hidden: ArrayLike) -> torch.Tensor:
    """Rewards ``[..., T]`` for hidden-state sequences ``[..., T, H]`` (any leading dims)."""
    tensor = torch.as_tensor(np.asarray(hidden) if not torch.is_tensor(hidden) else hidden)
    device = next(head.parameters()).device
    flat = tensor.reshape(-1, *tensor.shape[-2:]).float().to(device)
    return head(flat)[0].reshape(tensor.shape[:-1]).cpu()


def imagine_rewards(
    model: WorldModel,
    head: RewardHead,
    frames: ArrayLike,
    actions: ArrayLike | None,
    num_future: int,
    num_samples: int = 1,
) -> ImaginedRewards:
    """Observe ``frames`` (uint8 ``[B, T0, H, W, 3]``), imagine ``num_future`` frames under
    ``actions`` (``[B, T0 + num_future, A]``) and predict every frame's reward."""
    if head.config.input_size != model.config.model.rnn_units:
        raise ValueError(
            f"the head reads hidden states of size {head.config.input_size}, the model has "
            f"rnn_units={model.config.model.rnn_units}"
        )
    futures = model.imagine(frames, num_future, num_samples, actions)
    return ImaginedRewards(
        rewards=predict_rewards(head, futures.hidden),
        keypoints=futures.keypoints,
        hidden=futures.hidden,
        num_observed=int(np.asarray(frames).shape[1]),
    )
