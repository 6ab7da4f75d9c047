"""Part of scripts/gpu_check.sh: give a Basketball dataset a reward to predict.

The built-in Basketball simulator writes zero rewards. For a reward-head check on a machine
without dm_control, this rewrites each episode's ``reward[t]`` as the ball's x position in
the keypoint frame (a quantity the keypoints can see), atomically, file by file.

    python3 scripts/gpu_reward_data.py DATA
"""

from __future__ import annotations

import sys
from dataclasses import replace

from keypoint_wm.data.episodes import iter_episode_files, load_episode, save_episode

if __name__ == "__main__":
    for path in iter_episode_files(sys.argv[1]):
        episode = load_episode(path)
        assert episode.true_object_pos is not None, path
        reward = episode.true_object_pos[:, 0, 0].astype("float32")
        reward[0] = 0.0  # reward[0] = 0 by the episode alignment
        save_episode(path, replace(episode, reward=reward))
