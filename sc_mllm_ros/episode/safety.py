"""The safety envelope every goal passes before it reaches an arm: a workspace box and orientation limits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sc_mllm_ros import geometry


class GoalRejected(ValueError):
    """A goal outside the envelope; it is never sent to the arm."""


@dataclass(frozen=True)
class SafetyEnvelope:
    """Limits in the robot base frame.

    ``box_min``/``box_max`` bound every position the primitive visits (the contact point and the
    pre-pose and pull end points along the approach axis). The approach axis (gripper z) must lie
    within ``max_approach_angle_deg`` of ``approach_reference``: with the reference pointing down,
    120 deg forbids approaching from underneath.
    """

    box_min: tuple[float, float, float] = (0.2, -0.6, 0.0)
    box_max: tuple[float, float, float] = (0.9, 0.6, 1.0)
    approach_reference: tuple[float, float, float] = (0.0, 0.0, -1.0)
    max_approach_angle_deg: float = 120.0
    # offsets along the approach axis that the pull primitive visits (ManipLLM: pre-pose, contact)
    primitive_offsets: tuple[float, ...] = (-0.15, 0.0)

    def __post_init__(self) -> None:
        if np.any(np.asarray(self.box_min) >= np.asarray(self.box_max)):
            raise ValueError(f"workspace box is empty: min {self.box_min} max {self.box_max}")

    def check(self, pose: geometry.Pose, base_from_frame: np.ndarray) -> geometry.Pose:
        """The goal in the base frame if it is inside the envelope; raise :class:`GoalRejected` otherwise."""
        if not (np.all(np.isfinite(pose.position)) and np.all(np.isfinite(pose.rotation))):
            raise GoalRejected("goal pose has non-finite values")
        rot = pose.rotation
        if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
            raise GoalRejected("goal orientation is not a proper rotation")
        base = pose.transformed(np.asarray(base_from_frame, float), "base")
        lo, hi = np.asarray(self.box_min), np.asarray(self.box_max)
        for offset in sorted(self.primitive_offsets, key=abs):  # the goal itself first
            p = base.position + offset * base.up
            if np.any(p < lo) or np.any(p > hi):
                where = "goal position" if offset == 0.0 else f"waypoint {offset:+.2f} m along the approach"
                raise GoalRejected(
                    f"{where} {np.round(p, 3).tolist()} (base frame) is outside the workspace box "
                    f"{list(self.box_min)}..{list(self.box_max)}"
                )
        angle = geometry.angle_between_deg(base.up, np.asarray(self.approach_reference))
        if angle > self.max_approach_angle_deg:
            raise GoalRejected(
                f"approach direction {np.round(base.up, 3).tolist()} is {angle:.0f} deg from "
                f"{list(self.approach_reference)}, more than the {self.max_approach_angle_deg:.0f} allowed"
            )
        return base
