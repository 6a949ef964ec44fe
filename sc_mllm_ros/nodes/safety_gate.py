"""The safety envelope as node parameters, tf2 lookups, and the gate a node applies before a goal leaves it.

The envelope lives in the robot base frame (parameter ``base_frame``); goals are in the camera optical frame.
The transform between them comes from tf2: the simulator node publishes it (a static transform), and on a
real cell the hand-eye calibration is a static transform published by the launch. The arm node is the last
authority and refuses a goal whose frame it cannot look up; the policy and the correction service use
:class:`GoalGate` to keep an out-of-bounds goal off ``/sc_mllm/goal_pose``, where other consumers (a MoveIt
user's own planner) might take it.
"""

from __future__ import annotations

from geometry_msgs.msg import Transform
import numpy as np
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.time import Time

from sc_mllm_ros.episode.safety import GoalRejected, SafetyEnvelope
from sc_mllm_ros.geometry import Pose, quaternion_from_rotation, rotation_from_quaternion
from sc_mllm_ros.nodes.runtime import declare

# franka_description's base link: the MoveIt planning frame of the FR3, and the simulator's base frame too,
# so one envelope and one set of frames serve every cell.
DEFAULT_BASE_FRAME = "fr3_link0"


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


def declare_base_frame(node: Node) -> str:
    return declare(node, "base_frame", DEFAULT_BASE_FRAME, "robot base frame: the envelope's frame (tf2)")


def matrix_from_transform(t: Transform) -> np.ndarray:
    """4x4 parent <- child of a geometry_msgs Transform."""
    m = np.eye(4)
    q = t.rotation
    m[:3, :3] = rotation_from_quaternion(np.array([q.x, q.y, q.z, q.w]))
    m[:3, 3] = [t.translation.x, t.translation.y, t.translation.z]
    return m


def transform_from_matrix(m: np.ndarray) -> Transform:
    t = Transform()
    t.translation.x, t.translation.y, t.translation.z = (float(v) for v in m[:3, 3])
    q = t.rotation
    q.x, q.y, q.z, q.w = (float(v) for v in quaternion_from_rotation(m[:3, :3]))
    return t


def lookup(buffer, target: str, source: str, stamp: Time | None = None, timeout_s: float = 0.0) -> np.ndarray:
    """4x4 ``target`` <- ``source`` from a ``tf2_ros.Buffer``; :class:`GoalRejected` saying why if unknown."""
    from tf2_ros import TransformException

    try:
        msg = buffer.lookup_transform(target, source, stamp or Time(), Duration(seconds=timeout_s))
    except TransformException as err:
        raise GoalRejected(f"no transform {target} <- '{source}' on tf2: {err}") from err
    return matrix_from_transform(msg.transform)


class GoalGate:
    """Checks goals against the envelope once tf2 knows the base <- goal frame transform.

    Until then ``check`` lets goals pass: the arm node checks every goal again and refuses unknown frames.
    """

    def __init__(self, node: Node) -> None:
        from tf2_ros import Buffer, TransformListener

        self.envelope = declare_envelope(node)
        self.base_frame = declare_base_frame(node)
        self.buffer = Buffer()
        self._listener = TransformListener(self.buffer, node)

    def knows(self, frame_id: str) -> bool:
        """Whether tf2 can transform ``frame_id`` to the base frame now."""
        return self.buffer.can_transform(self.base_frame, frame_id, Time())

    def check(self, pose: Pose) -> None:
        """Raise :class:`GoalRejected` for a goal outside the envelope (no-op until the frame is known)."""
        if self.knows(pose.frame_id):
            self.envelope.check(pose, lookup(self.buffer, self.base_frame, pose.frame_id))
