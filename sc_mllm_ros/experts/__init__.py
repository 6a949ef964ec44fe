"""Experts that see only RGB-D: a position expert (affordance U-Net) and a rotation expert (plane fit).

Plain Python, numpy, scipy and torch: no ROS and no simulator import, so the same hints come from a recorded
episode of any cell.  ``Experts.from_pretrained().hints(rgb, depth, intrinsics, task)`` is the entry point.
"""

from sc_mllm_ros.experts.hints import ANSWER_SIZE, as_intrinsics, Experts, Hints
from sc_mllm_ros.experts.position import (
    DEFAULT_EXPERTS,
    PositionExpert,
    PositionHint,
    PositionNet,
    PositionNetConfig,
    select_points,
)
from sc_mllm_ros.experts.rotation import (
    ExpertError,
    NoDepthError,
    PlaneFit,
    RotationExpert,
    RotationExpertConfig,
)

__all__ = [
    "ANSWER_SIZE",
    "DEFAULT_EXPERTS",
    "ExpertError",
    "Experts",
    "Hints",
    "NoDepthError",
    "PlaneFit",
    "PositionExpert",
    "PositionHint",
    "PositionNet",
    "PositionNetConfig",
    "RotationExpert",
    "RotationExpertConfig",
    "as_intrinsics",
    "select_points",
]
