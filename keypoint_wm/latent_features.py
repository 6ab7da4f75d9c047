"""The features of the latent state an agent (or a probe) reads, by name.

What the latent wrappers observe and ``evaluate state-probe`` reads, both from the model's
online filter (:meth:`keypoint_wm.api.WorldModel.filter`), in this order:

- ``"keypoints"``: the detected keypoints of the current frame t, ``K * 3`` values (x, y in
  [-1, 1], y up; scale in [0, 1]); for CNN-VRNN runs its per-frame encoder features;
- ``"hidden"``: h_{t-1}, the GRU state that conditions frame t, ``rnn_units`` values.

``"both"`` selects the two. A torch-free module: the command line reads the choices while it
builds its parser.

>>> parse_features("both"), parse_features("hidden"), parse_features(["hidden", "keypoints"])
(('keypoints', 'hidden'), ('hidden',), ('keypoints', 'hidden'))
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["FEATURES", "FEATURE_CHOICES", "parse_features"]

FEATURES = ("keypoints", "hidden")
"""The selectable features, in the order they appear in an observation."""

FEATURE_CHOICES = (*FEATURES, "both")
"""The values of ``--features``: one feature, or ``"both"``."""


def parse_features(features: str | Sequence[str]) -> tuple[str, ...]:
    """``"keypoints"``, ``"hidden"``, ``"both"`` or a sequence of the first two -> tuple.

    Raises:
        ValueError: naming ``features`` and the allowed values.
    """
    if isinstance(features, str):
        chosen = list(FEATURES) if features == "both" else [features]
    else:
        chosen = list(features)
    bad = [f for f in chosen if f not in FEATURES]
    if bad or not chosen or len(set(chosen)) != len(chosen):
        raise ValueError(
            f"features must be 'keypoints', 'hidden', 'both' or a list of distinct "
            f"{list(FEATURES)}, got {features!r}"
        )
    return tuple(f for f in FEATURES if f in chosen)
