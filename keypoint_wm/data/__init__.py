"""Datasets: the episode file format, dataset inspection, sequence loaders, built-in data."""

from keypoint_wm.data.episodes import (
    Episode,
    EpisodeFormatError,
    iter_episode_files,
    load_episode,
    save_episode,
)

__all__ = ["Episode", "EpisodeFormatError", "iter_episode_files", "load_episode", "save_episode"]
