"""The Struct-VRNN world model: keypoint detector, reconstructor, VRNN dynamics, losses.

Public API::

    from keypoint_wm.model import ModelConfig, StructVRNN, LossSchedule

    model = StructVRNN(ModelConfig(num_keypoints=12))
    out = model(images, actions, LossSchedule.start())   # images [B, T, 3, 64, 64]
    out.loss.backward()

Imports only torch, numpy and the standard library.
"""

from keypoint_wm.choices import PRECISIONS
from keypoint_wm.model.config import ModelConfig
from keypoint_wm.model.dynamics import Belief, DynamicsOutput, KeypointDynamics, StepOutput
from keypoint_wm.model.inference import InferenceDetector
from keypoint_wm.model.keypoint_ops import add_coord_channels, keypoints_to_maps, maps_to_keypoints
from keypoint_wm.model.outputs import (
    TERM_NAMES,
    LossSchedule,
    ModelOutput,
    ObserveOutput,
    RolloutOutput,
)
from keypoint_wm.model.precision import bf16_is_fast, preferred_precision
from keypoint_wm.model.struct_vrnn import StructVRNN

__all__ = [
    "PRECISIONS",
    "TERM_NAMES",
    "Belief",
    "DynamicsOutput",
    "InferenceDetector",
    "KeypointDynamics",
    "LossSchedule",
    "ModelConfig",
    "ModelOutput",
    "ObserveOutput",
    "RolloutOutput",
    "StepOutput",
    "StructVRNN",
    "add_coord_channels",
    "bf16_is_fast",
    "keypoints_to_maps",
    "maps_to_keypoints",
    "preferred_precision",
]
