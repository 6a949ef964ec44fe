"""The policy node of the model host: camera frames + a task in, the SC-MLLM's 6-DoF goal out.

Subscribes the colour, aligned depth and camera_info topics (sensor-data QoS, latest frame only) and
``sc_mllm/task``. A task runs an episode without corrections on the host (answer, execute, grade), or,
with ``auto_execute`` false, only answers. Every answer that leaves the host is published here:
``sc_mllm/goal_pose``, ``sc_mllm/prediction``, ``sc_mllm/markers`` and ``sc_mllm/debug_image``. Bad
input, and a frame older than ``max_frame_age_s``, is refused on ``sc_mllm/errors`` and nothing else is
published for it.
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header, String
from visualization_msgs.msg import Marker, MarkerArray

from sc_mllm_msgs.msg import PosePrediction
from sc_mllm_ros import names
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame, new_episode_id, parse_task
from sc_mllm_ros.episode.render import annotate
from sc_mllm_ros.episode.safety import GoalRejected
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import EVENTS_QOS, SENSOR_QOS
from sc_mllm_ros.nodes.runtime import declare

if TYPE_CHECKING:
    from sc_mllm_ros.nodes.model_host import ModelHost


def goal_markers(att: Attempt, header: Header, status: str) -> MarkerArray:
    """Goal frame (x red, y green, z blue), the approach arrow and a status text, in the camera frame."""
    pose = att.pose
    markers = MarkerArray()
    axes = (
        (pose.forward, (1.0, 0.0, 0.0)),
        (pose.rotation[:, 1], (0.0, 1.0, 0.0)),
        (pose.up, (0.0, 0.0, 1.0)),
    )
    for i, (axis, rgb) in enumerate(axes):
        m = Marker(header=header, ns="sc_mllm_goal_frame", id=i, type=Marker.ARROW, action=Marker.ADD)
        m.points = [conv.point(pose.position), conv.point(pose.position + 0.05 * axis)]
        m.scale.x, m.scale.y, m.scale.z = 0.005, 0.01, 0.01
        m.color = ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=1.0)
        markers.markers.append(m)
    approach = Marker(header=header, ns="sc_mllm_approach", id=0, type=Marker.ARROW, action=Marker.ADD)
    approach.points = [conv.point(pose.position - 0.15 * pose.up), conv.point(pose.position)]
    approach.scale.x, approach.scale.y, approach.scale.z = 0.008, 0.016, 0.02
    approach.color = ColorRGBA(r=1.0, g=0.8, b=0.0, a=0.9)
    text = Marker(header=header, ns="sc_mllm_status", id=0, type=Marker.TEXT_VIEW_FACING, action=Marker.ADD)
    text.pose.position = conv.point(pose.position - 0.2 * pose.up)
    text.scale.z = 0.03
    text.color = ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0)
    text.text = status
    markers.markers += [approach, text]
    return markers


class PolicyNode(Node):
    """Answers each task on the latest camera frame; see the module docstring for the topics."""

    def __init__(self, host: ModelHost, **kwargs) -> None:
        super().__init__("sc_mllm_policy", **kwargs)
        self.host = host
        self.topics = {
            "rgb": declare(self, "color_topic", names.COLOR, "colour image (rgb8, bgr8, ...)"),
            "depth": declare(
                self, "depth_topic", names.DEPTH, "depth aligned to the colour image (16UC1 mm or 32FC1 m)"
            ),
            "info": declare(self, "camera_info_topic", names.CAMERA_INFO, "camera_info of the colour image"),
        }
        task = declare(self, "task_topic", names.TASK, "std_msgs/String tasks: 'pull the drawer'")
        self.auto_execute = declare(
            self, "auto_execute", True, "run each task's goal on the arm and grade it"
        )
        self.max_frame_age_s = declare(
            self,
            "max_frame_age_s",
            5.0,
            "refuse a task when the latest colour frame is older than this (s, node clock); 0: never",
            (0.0, 3600.0),
        )
        self._latest: dict[str, object] = {}
        self._latest_lock = threading.Lock()
        for key, msg_type in (("rgb", Image), ("depth", Image), ("info", CameraInfo)):
            keep = functools.partial(self._keep, key)
            sub = self.create_subscription(msg_type, self.topics[key], keep, SENSOR_QOS)
            self.topics[key] = sub.topic_name  # resolved in the node's namespace, for messages
        self.create_subscription(String, task, self._on_task, 10)
        self.goal_pub = self.create_publisher(PoseStamped, names.GOAL_POSE, 10)
        self.prediction_pub = self.create_publisher(PosePrediction, names.PREDICTION, EVENTS_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, names.MARKERS, 10)
        self.debug_pub = self.create_publisher(Image, names.DEBUG_IMAGE, 10)
        self.get_logger().info(f"policy ready: tasks on {task}")

    def _keep(self, key: str, msg) -> None:
        with self._latest_lock:
            self._latest[key] = msg

    def _on_task(self, msg: String) -> None:
        try:
            record = EpisodeRecord(new_episode_id(), msg.data, parse_task(msg.data), self.latest_frame())
        except BadInput as err:
            self.host.error(self, f"task '{msg.data}' refused: {err}")
            return
        if self.auto_execute:
            self.host.start_episode(record, 0, None)
        else:
            self.host.call_model(self._answer, record)

    def latest_frame(self) -> Frame:
        """The latest messages as a validated, fresh frame; :class:`BadInput` says what is wrong."""
        with self._latest_lock:
            latest = dict(self._latest)
        for key, what in (("info", "camera_info"), ("rgb", "colour image"), ("depth", "depth image")):
            if key not in latest:
                raise BadInput(f"no {what} received yet on {self.topics[key]}")
        rgb_msg = latest["rgb"]
        stamp = conv.stamp_seconds(rgb_msg.header.stamp)
        age = self.get_clock().now().nanoseconds * 1e-9 - stamp
        if self.max_frame_age_s > 0 and age > self.max_frame_age_s:
            raise BadInput(
                f"the latest colour frame is {age:.1f} s old (max_frame_age_s {self.max_frame_age_s:g}): "
                "is the camera still publishing?"
            )
        frame = Frame(
            conv.rgb_from_msg(rgb_msg),
            conv.depth_from_msg(latest["depth"]),
            conv.intrinsics_from_msg(latest["info"]),
            stamp,
        )
        return frame.validate()

    def _answer(self, record: EpisodeRecord) -> None:
        try:
            record.attempts.append(self.host.server.predict(record.frame, record.object_name))
        except BadInput as err:
            self.host.error(self, f"task '{record.task}' refused: {err}")
            return
        self.host.episodes.add(record)
        self.release(record, record.last)

    def release(self, rec: EpisodeRecord, att: Attempt) -> tuple[PosePrediction, str]:
        """Check the attempt's goal against the safety envelope, publish it; why it was refused, or ''."""
        try:
            self.host.gate.check(att.pose)
        except GoalRejected as err:
            return self._publish(rec, att, rejected=str(err)), str(err)
        return self._publish(rec, att), ""

    def _publish(self, rec: EpisodeRecord, att: Attempt, rejected: str = "") -> PosePrediction:
        """Publish an attempt's prediction and debug image; its goal and markers unless ``rejected``."""
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=conv.OPTICAL_FRAME)
        pred = conv.prediction_msg(
            att, rec.episode_id, rec.task, header, header.frame_id, self.host.server.model_version
        )
        status = f"{rec.object_name}: {att.family} #{len(rec.attempts)} (adapter v{att.adapter_version})"
        self.prediction_pub.publish(pred)
        if rejected:
            # The answer is published and kept for correction; the goal never leaves the host.
            debug = annotate(rec.frame.rgb, att, rec.frame.intrinsics, f"{status} REJECTED")
            self.debug_pub.publish(conv.image_msg(debug, "rgb8", header))
            self.host.error(
                self,
                f"goal of episode {rec.episode_id} rejected by the safety envelope, not sent: {rejected}",
            )
            return pred
        self.goal_pub.publish(pred.pose)
        self.marker_pub.publish(goal_markers(att, header, status))
        debug = annotate(rec.frame.rgb, att, rec.frame.intrinsics, status)
        self.debug_pub.publish(conv.image_msg(debug, "rgb8", header))
        self.get_logger().info(f"episode {rec.episode_id}: {att.text!r} in {att.latency_s * 1e3:.0f} ms")
        return pred
