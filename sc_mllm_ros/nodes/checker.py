"""The checker node: grades each executed attempt from its end state; publishes ``/sc_mllm/failure_report``.

It reads ``/sc_mllm/execution_outcome`` (end-state image + end-effector pose), asks the model the
failure-detection prompt on a worker thread, records the verdict on the episode and publishes it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from rclpy.node import Node
from std_msgs.msg import Header, String

from sc_mllm_msgs.msg import AdapterVersion, ExecutionOutcome, FailureReport
from sc_mllm_ros.episode.agent import ModelServer
from sc_mllm_ros.episode.record import BadInput
from sc_mllm_ros.episode.store import EpisodeStore
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS
from sc_mllm_ros.nodes.runtime import console_main, data_dir, shared_model


class CheckerNode(Node):
    def __init__(
        self, server: ModelServer | None = None, episodes: EpisodeStore | None = None, **kwargs
    ) -> None:
        super().__init__("sc_mllm_checker", **kwargs)
        root = data_dir(self)
        self.server = shared_model(self, server)
        self.episodes = episodes if episodes is not None else EpisodeStore(root / "episodes.sqlite")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_checker")
        self.pending: list[Future] = []
        self.report_pub = self.create_publisher(FailureReport, "/sc_mllm/failure_report", EVENTS_QOS)
        self.error_pub = self.create_publisher(String, "/sc_mllm/errors", EVENTS_QOS)
        self.create_subscription(ExecutionOutcome, "/sc_mllm/execution_outcome", self._on_outcome, EVENTS_QOS)
        self.create_subscription(AdapterVersion, "/sc_mllm/adapter_version", self._on_adapter, LATCHED_QOS)

    def _on_outcome(self, msg: ExecutionOutcome) -> None:
        self.pending.append(self._pool.submit(self.grade, msg))

    def grade(self, msg: ExecutionOutcome) -> FailureReport | None:
        rec = self.episodes.get(msg.episode_id) if msg.episode_id else None
        if rec is None:
            self._error(f"outcome of unknown episode '{msg.episode_id}' not graded")
            return None
        try:
            end_rgb = conv.rgb_from_msg(msg.end_image)
            intr = conv.intrinsics_from_msg(msg.camera_info)
            grade = self.server.grade(end_rgb, rec.object_name, conv.pose_from_msg(msg.final_ee_pose), intr)
        except BadInput as err:
            self._error(f"outcome of episode '{msg.episode_id}' not graded: {err}")
            return None
        att = rec.last
        att.executed, att.success, att.cause, att.report_text = True, grade.success, grade.cause, grade.text
        att.ee_contact, att.ee_up, att.ee_forward = grade.ee_contact, grade.ee_up, grade.ee_forward
        self.episodes.set_attempts(rec.episode_id, rec.attempts)
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=msg.header.frame_id)
        report = conv.report_msg(
            rec.episode_id, grade.success, grade.cause, grade.text, self.server.adapter_version, header
        )
        self.report_pub.publish(report)
        self.get_logger().info(f"episode {rec.episode_id} attempt {len(rec.attempts)}: {grade.text!r}")
        return report

    def _error(self, text: str) -> None:
        self.get_logger().error(text)
        self.error_pub.publish(String(data=f"{self.get_name()}: {text}"))

    def _on_adapter(self, msg: AdapterVersion) -> None:
        if msg.version > self.server.adapter_version:
            self._pool.submit(self.server.swap_adapter, msg.path, msg.version)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def main(args: list[str] | None = None) -> None:
    console_main(CheckerNode)
