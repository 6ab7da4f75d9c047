"""keypoint-wm: object-structured keypoint world models (Struct-VRNN) for reinforcement learning.

Importing this package is cheap: it loads neither dm_control nor a GL context. The
Gymnasium environments live in :mod:`keypoint_wm.envs`, data collection in
:mod:`keypoint_wm.collect`, reward heads in :mod:`keypoint_wm.rewards`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("keypoint-wm")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
