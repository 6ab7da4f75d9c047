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

__all__ = ["WorldModel", "__version__", "load"]


def __getattr__(name: str):
    # Lazy: `import keypoint_wm` does not import torch until the model API is used.
    if name in ("load", "WorldModel"):
        from keypoint_wm import api

        return getattr(api, name)
    raise AttributeError(f"module 'keypoint_wm' has no attribute {name!r}")
