"""The executor node (``executor_node``): a real or Gazebo Franka through moveit_py behind the arm action.

It serves ``/sc_mllm/execute_pose`` and ``/sc_mllm/pause`` (:class:`~sc_mllm_ros.nodes.arm.ArmNode`) over
:class:`~sc_mllm_ros.nodes.backends.MoveItArm`. Frames come from tf2 (a listener): the robot's links from
``robot_state_publisher`` and the camera from the hand-eye calibration, a static transform the launch
publishes. The end image of each outcome is the first camera frame stamped after the primitive ended, so
the checker grades what the arm really did.
"""

from __future__ import annotations

import threading

from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image

from sc_mllm_ros import names
from sc_mllm_ros.episode.record import BadInput
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.arm import ArmNode, Outcome
from sc_mllm_ros.nodes.backends import MoveItArm
from sc_mllm_ros.nodes.qos import SENSOR_QOS
from sc_mllm_ros.nodes.runtime import console_main, declare


class ExecutorNode(ArmNode):
    arm: MoveItArm

    def __init__(self, **kwargs) -> None:
        from tf2_ros import TransformListener

        super().__init__("sc_mllm_executor", **kwargs)
        self._tf_listener = TransformListener(self.tf_buffer, self)
        self.end_image_timeout_s = declare(
            self,
            "end_image_timeout_s",
            2.0,
            "longest wait for a camera frame after a primitive (s)",
            (0.0, 60.0),
        )
        self._frame = threading.Condition()
        self._rgb: Image | None = None
        self._info: CameraInfo | None = None
        color = declare(self, "color_topic", names.COLOR, "camera colour topic (end images)")
        info = declare(self, "camera_info_topic", names.CAMERA_INFO, "its camera_info")
        self.create_subscription(Image, color, self._on_rgb, SENSOR_QOS, callback_group=self.group)
        self.create_subscription(CameraInfo, info, self._on_info, SENSOR_QOS, callback_group=self.group)
        self.arm = MoveItArm(
            group=declare(self, "planning_group", "fr3_arm", "MoveIt planning group"),
            ee_link=declare(self, "ee_link", "fr3_hand_tcp", "link placed at the goal"),
            base_frame=self.base_frame,
        )
        self.serve()
        self.get_logger().info(f"MoveIt executor ready (base {self.base_frame}), envelope {self.envelope}")

    def _on_rgb(self, msg: Image) -> None:
        with self._frame:
            self._rgb = msg
            self._frame.notify_all()

    def _on_info(self, msg: CameraInfo) -> None:
        with self._frame:
            self._info = msg

    def end_image(self, outcome: Outcome, ended: Time) -> Outcome:
        """The outcome with the first camera frame stamped after the primitive ``ended``."""

        def fresh() -> bool:
            return (
                self._rgb is not None
                and self._info is not None
                and Time.from_msg(self._rgb.header.stamp) >= ended
            )

        with self._frame:
            if not self._frame.wait_for(fresh, timeout=self.end_image_timeout_s):
                return Outcome(
                    outcome.status,
                    f"{outcome.message}; no camera frame within {self.end_image_timeout_s:.1f} s after it",
                    outcome.ee_pose,
                )
            rgb, info = self._rgb, self._info
        try:
            return Outcome(
                outcome.status,
                outcome.message,
                outcome.ee_pose,
                conv.rgb_from_msg(rgb),
                conv.intrinsics_from_msg(info),
            )
        except BadInput as err:
            return Outcome(outcome.status, f"{outcome.message}; bad end image: {err}", outcome.ee_pose)


def main(args: list[str] | None = None) -> None:
    console_main(ExecutorNode)
