"""The checker node of the model host: grades each executed attempt from its end state.

A direct call of the model (the failure-detection prompt) on the end image and end-effector pose the arm
returned, made by the loop on its worker thread; the verdict goes back to the loop and out on
``sc_mllm/failure_report`` (episode id and attempt index) for observers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rclpy.node import Node
from std_msgs.msg import Header

from sc_mllm_msgs.msg import FailureReport
from sc_mllm_ros import names
from sc_mllm_ros.episode.loop import ArmOutcome
from sc_mllm_ros.episode.record import Attempt, EpisodeRecord
from sc_mllm_ros.episode.serving import Grade
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import EVENTS_QOS

if TYPE_CHECKING:
    from sc_mllm_ros.nodes.model_host import ModelHost


class CheckerNode(Node):
    def __init__(self, host: ModelHost, **kwargs) -> None:
        super().__init__("sc_mllm_checker", **kwargs)
        self.host = host
        self.report_pub = self.create_publisher(FailureReport, names.FAILURE_REPORT, EVENTS_QOS)

    def grade(self, record: EpisodeRecord, attempt: Attempt, outcome: ArmOutcome) -> Grade:
        server = self.host.server
        grade = server.grade(
            outcome.end_rgb, record.object_name, outcome.ee_pose, outcome.intrinsics, record.frame.rgb
        )
        index = next(i for i, a in enumerate(record.attempts) if a is attempt)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=conv.OPTICAL_FRAME)
        self.report_pub.publish(
            conv.report_msg(
                record.episode_id,
                index,
                grade.success,
                grade.cause,
                grade.text,
                server.adapter_version,
                header,
                grade.confidence,
            )
        )
        self.get_logger().info(
            f"episode {record.episode_id} attempt {index}: {grade.text!r} (P(success) {grade.confidence:.2f})"
        )
        return grade
