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
rewards of the imagined frames answer "what if I took these actions?". The head reads, for
frame t, h_{t-1} and (``inputs="hidden+keypoints"``) frame t's keypoints or
(``"hidden+features"``, CNN-VRNN runs) its CNN features: those detected (encoded) in an
observed frame, as in training, and those decoded from the prior in an imagined one, as in
:class:`~keypoint_wm.envs.DreamEnv`.
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
        head_keypoints: ``[B, N, T0 + F, K, 3]`` the keypoints a ``"hidden+keypoints"`` head
            read, or the features a ``"hidden+features"`` head read (detected in the
            observed frames, then ``keypoints``), else None.
        num_observed: T0.
    """

    rewards: torch.Tensor
    keypoints: torch.Tensor
    hidden: torch.Tensor
    num_observed: int
    head_keypoints: torch.Tensor | None = None


def _tensor(value: ArrayLike) -> torch.Tensor:
    return value if torch.is_tensor(value) else torch.as_tensor(np.asarray(value))


@torch.no_grad()
def predict_rewards(
    head: RewardHead, hidden: ArrayLike, keypoints: ArrayLike | None = None
) -> torch.Tensor:
    """Rewards ``[..., T]`` for hidden-state sequences ``[..., T, H]`` (any leading dims) and,
    for a head that reads them, the frames' keypoints or features ``[..., T, K, 3]``."""
    tensor = _tensor(hidden)
    device = next(head.parameters()).device
    flat = tensor.reshape(-1, *tensor.shape[-2:]).float().to(device)
    points = None
    if keypoints is not None and head.config.reads_frame:
        points = _tensor(keypoints).reshape(-1, *_tensor(keypoints).shape[-3:]).to(device)
    return head(flat, keypoints=points)[0].reshape(tensor.shape[:-1]).cpu()


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
    head.check_model(
        model.config.model.rnn_units, model.num_keypoints, model.config.model.representation
    )
    futures = model.imagine(frames, num_future, num_samples, actions)
    observed = int(np.asarray(frames).shape[1])
    head_keypoints = None
    if head.config.reads_frame:
        detected = futures.observed_keypoints[:, None].expand(-1, num_samples, -1, -1, -1)
        head_keypoints = torch.cat([detected, futures.keypoints[:, :, observed:]], dim=2)
    return ImaginedRewards(
        rewards=predict_rewards(head, futures.hidden, head_keypoints),
        keypoints=futures.keypoints,
        hidden=futures.hidden,
        num_observed=observed,
        head_keypoints=head_keypoints,
    )
