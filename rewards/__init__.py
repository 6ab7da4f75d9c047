"""Reward-prediction heads on the world model's latent state (paper section 5.4 / S2.2).

A trained run keeps one head per task under ``RUN/rewards/<task>``::

    from keypoint_wm.rewards import imagine_rewards, load_reward_head
    head = load_reward_head("runs/dmcs/rewards", task="cheetah-run")

Train and score them from the command line::

    keypoint-wm rewards train --run runs/dmcs --data data/dmcs
    keypoint-wm rewards evaluate --run runs/dmcs --run runs/dmcs-cnn --data data/dmcs --json r.json

Imports only the core (torch, numpy; TensorBoard and matplotlib where used).
"""

from keypoint_wm.rewards.fit import RewardTrainConfig, fit_reward_head, normalized_mse
from keypoint_wm.rewards.head import (
    RewardHead,
    RewardHeadConfig,
    find_reward_head,
    load_reward_head,
    save_reward_head,
)
from keypoint_wm.rewards.predict import ImaginedRewards, imagine_rewards, predict_rewards
from keypoint_wm.rewards.sequences import (
    RewardSequences,
    collect_reward_sequences,
    split_episodes,
    split_sequences,
    split_windows,
)
from keypoint_wm.rewards.train import train_reward_heads

__all__ = [
    "ImaginedRewards",
    "RewardHead",
    "RewardHeadConfig",
    "RewardSequences",
    "RewardTrainConfig",
    "collect_reward_sequences",
    "find_reward_head",
    "fit_reward_head",
    "imagine_rewards",
    "load_reward_head",
    "normalized_mse",
    "predict_rewards",
    "save_reward_head",
    "split_episodes",
    "split_sequences",
    "split_windows",
    "train_reward_heads",
]
