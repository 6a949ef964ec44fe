"""The safety envelope as node parameters, and the gate every node applies before a goal leaves it.

The executor is the last authority (it checks every goal against the backend's own camera extrinsics).
It also announces those extrinsics, latched, on ``/sc_mllm/camera_extrinsics``, so that the policy and
the correction service refuse an out-of-bounds goal before publishing it on ``/sc_mllm/goal_pose``,
where other consumers (a MoveIt user's own planner) might take it.
"""

from __future__ import annotations

import threading

from geometry_msgs.msg import TransformStamped
import numpy as np
from rclpy.node import Node

from sc_mllm_ros.episode.safety import SafetyEnvelope
from sc_mllm_ros.geometry import Pose, quaternion_from_rotation, rotation_from_quaternion
from sc_mllm_ros.nodes.qos import LATCHED_QOS
from sc_mllm_ros.nodes.runtime import declare

EXTRINSICS_TOPIC = "/sc_mllm/camera_extrinsics"


def declare_envelope(node: Node) -> SafetyEnvelope:
    """The envelope from the node's parameters (defaults: config/sc_mllm.yaml)."""
    return SafetyEnvelope(
        box_min=tuple(declare(node, "workspace_min", [0.15, -0.6, 0.0], "workspace box min (m, base frame)")),
        box_max=tuple(declare(node, "workspace_max", [0.95, 0.6, 1.2], "workspace box max (m, base frame)")),
        approach_reference=tuple(
            declare(node, "approach_reference", [0.0, 0.0, -1.0], "reference of the approach axis (base)")
        ),
        max_approach_angle_deg=declare(
            node,
            "max_approach_angle_deg",
            120.0,
            "max angle of the approach axis to the reference",
            (0.0, 180.0),
        ),
        primitive_offsets=tuple(
            declare(node, "primitive_offsets", [-0.15, 0.0, -0.2], "waypoints along the approach axis (m)")
        ),
    )


def extrinsics_msg(base_from_camera: np.ndarray, base_frame: str, camera_frame: str) -> TransformStamped:
    msg = TransformStamped()
    msg.header.frame_id, msg.child_frame_id = base_frame, camera_frame
    t, q = msg.transform.translation, msg.transform.rotation
    t.x, t.y, t.z = (float(v) for v in base_from_camera[:3, 3])
    q.x, q.y, q.z, q.w = (float(v) for v in quaternion_from_rotation(base_from_camera[:3, :3]))
    return msg


class GoalGate:
    """Checks goals against the envelope once the executor has announced the camera extrinsics."""

    def __init__(self, node: Node) -> None:
        self.envelope = declare_envelope(node)
        self._base_from_camera: np.ndarray | None = None
        self._lock = threading.Lock()
        node.create_subscription(TransformStamped, EXTRINSICS_TOPIC, self._on_extrinsics, LATCHED_QOS)

    def _on_extrinsics(self, msg: TransformStamped) -> None:
        t, q = msg.transform.translation, msg.transform.rotation
        m = np.eye(4)
        m[:3, :3] = rotation_from_quaternion(np.array([q.x, q.y, q.z, q.w]))
        m[:3, 3] = [t.x, t.y, t.z]
        with self._lock:
            self._base_from_camera = m

    def check(self, pose: Pose) -> None:
        """Raise :class:`GoalRejected` for a goal outside the envelope (no-op until extrinsics are known)."""
        with self._lock:
            base_from_camera = self._base_from_camera
        if base_from_camera is not None:
            self.envelope.check(pose, base_from_camera)
