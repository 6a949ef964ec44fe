"""The policy node: camera frames + a task in, the SC-MLLM's 6-DoF goal out.

Subscribes the colour, aligned depth and camera_info topics (sensor-data QoS, latest frame only) and
``/sc_mllm/task``; answers on a worker thread and publishes ``/sc_mllm/goal_pose``,
``/sc_mllm/prediction``, ``/sc_mllm/markers`` and ``/sc_mllm/debug_image``. Hot-swaps the adapter
announced on ``/sc_mllm/adapter_version``. Bad input is refused on ``/sc_mllm/errors`` and nothing
else is published for it.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
import functools
import threading

from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import ColorRGBA, Header, String
from visualization_msgs.msg import Marker, MarkerArray

from sc_mllm_msgs.action import ExecutePose
from sc_mllm_msgs.msg import AdapterVersion, PosePrediction
from sc_mllm_ros.episode.agent import ModelServer
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame, new_episode_id, parse_task
from sc_mllm_ros.episode.render import annotate
from sc_mllm_ros.episode.safety import GoalRejected
from sc_mllm_ros.episode.store import EpisodeStore
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS, SENSOR_QOS
from sc_mllm_ros.nodes.runtime import console_main, data_dir, declare, shared_model
from sc_mllm_ros.nodes.safety_gate import GoalGate


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

    def __init__(
        self, server: ModelServer | None = None, episodes: EpisodeStore | None = None, **kwargs
    ) -> None:
        super().__init__("sc_mllm_policy", **kwargs)
        self.topics = {
            "rgb": declare(self, "color_topic", "/camera/color/image_raw", "colour image (rgb8, bgr8, ...)"),
            "depth": declare(
                self,
                "depth_topic",
                "/camera/aligned_depth_to_color/image_raw",
                "depth aligned to the colour image (16UC1 mm or 32FC1 m)",
            ),
            "info": declare(
                self, "camera_info_topic", "/camera/color/camera_info", "camera_info of the colour image"
            ),
        }
        task = declare(self, "task_topic", "/sc_mllm/task", "std_msgs/String tasks: 'pull the drawer'")
        root = data_dir(self)
        self.auto_execute = declare(self, "auto_execute", True, "send each goal to the executor action")
        self.execute_action = declare(
            self, "execute_action", "/sc_mllm/execute_pose", "the executor's ExecutePose action"
        )
        self.server = shared_model(self, server)
        self.gate = GoalGate(self)
        self.episodes = episodes if episodes is not None else EpisodeStore(root / "episodes.sqlite")

        self._latest: dict[str, object] = {}
        self._latest_lock = threading.Lock()
        # One worker: answers are computed in order and never on the executor thread.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sc_mllm_policy")
        self.pending: list[Future] = []
        for key, msg_type in (("rgb", Image), ("depth", Image), ("info", CameraInfo)):
            keep = functools.partial(self._keep, key)
            self.create_subscription(msg_type, self.topics[key], keep, SENSOR_QOS)
        self.create_subscription(String, task, self._on_task, 10)
        self.create_subscription(AdapterVersion, "/sc_mllm/adapter_version", self._on_adapter, LATCHED_QOS)
        self.goal_pub = self.create_publisher(PoseStamped, "/sc_mllm/goal_pose", 10)
        self.prediction_pub = self.create_publisher(PosePrediction, "/sc_mllm/prediction", EVENTS_QOS)
        self.marker_pub = self.create_publisher(MarkerArray, "/sc_mllm/markers", 10)
        self.debug_pub = self.create_publisher(Image, "/sc_mllm/debug_image", 10)
        self.error_pub = self.create_publisher(String, "/sc_mllm/errors", EVENTS_QOS)
        self._execute = ActionClient(
            self, ExecutePose, self.execute_action, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.get_logger().info(
            f"policy ready: model {self.server.model_version}, "
            f"adapter v{self.server.adapter_version}, tasks on {task}"
        )

    def _keep(self, key: str, msg) -> None:
        with self._latest_lock:
            self._latest[key] = msg

    def error(self, text: str) -> None:
        self.get_logger().error(text)
        self.error_pub.publish(String(data=f"{self.get_name()}: {text}"))

    def _on_task(self, msg: String) -> None:
        try:
            object_name = parse_task(msg.data)
        except BadInput as err:
            self.error(str(err))
            return
        with self._latest_lock:
            latest = dict(self._latest)
        self.pending.append(self._pool.submit(self._answer, msg.data, object_name, latest))

    def frame_from(self, latest: dict) -> Frame:
        """The latest messages as a validated frame; :class:`BadInput` says what is missing or wrong."""
        for key, what in (("info", "camera_info"), ("rgb", "colour image"), ("depth", "depth image")):
            if key not in latest:
                raise BadInput(f"no {what} received yet on {self.topics[key]}")
        rgb_msg = latest["rgb"]
        frame = Frame(
            conv.rgb_from_msg(rgb_msg),
            conv.depth_from_msg(latest["depth"]),
            conv.intrinsics_from_msg(latest["info"]),
            conv.stamp_seconds(rgb_msg.header.stamp),
        )
        return frame.validate()

    def _answer(self, task: str, object_name: str, latest: dict) -> EpisodeRecord | None:
        try:
            frame = self.frame_from(latest)
            attempt = self.server.predict(frame, object_name)
        except BadInput as err:
            self.error(f"task '{task}' refused: {err}")
            return None
        rec = EpisodeRecord(new_episode_id(), task, object_name, frame, [attempt])
        self.episodes.add(rec)
        self.publish_attempt(rec, attempt, latest["rgb"].header.frame_id or "camera_color_optical_frame")
        return rec

    def publish_attempt(self, rec: EpisodeRecord, att: Attempt, frame_id: str) -> PosePrediction:
        """Publish the goal, prediction, markers and debug image of an attempt; send it to the executor."""
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=frame_id)
        pred = conv.prediction_msg(att, rec.episode_id, rec.task, header, frame_id, self.server.model_version)
        status = f"{rec.object_name}: {att.family} #{len(rec.attempts)} (adapter v{att.adapter_version})"
        try:
            self.gate.check(att.pose)
        except GoalRejected as err:
            # The answer is published and kept for correction; the goal never leaves this node.
            self.prediction_pub.publish(pred)
            debug = annotate(rec.frame.rgb, att, rec.frame.intrinsics, f"{status} REJECTED")
            self.debug_pub.publish(conv.image_msg(debug, "rgb8", header))
            self.error(f"goal of episode {rec.episode_id} rejected by the safety envelope, not sent: {err}")
            return pred
        self.prediction_pub.publish(pred)
        self.goal_pub.publish(pred.pose)
        self.marker_pub.publish(goal_markers(att, header, status))
        debug = annotate(rec.frame.rgb, att, rec.frame.intrinsics, status)
        self.debug_pub.publish(conv.image_msg(debug, "rgb8", header))
        self.get_logger().info(f"episode {rec.episode_id}: {att.text!r} in {att.latency_s * 1e3:.0f} ms")
        if self.auto_execute and att.family == "pose":
            self.send_goal(pred.pose, rec.episode_id, rec.task)
        return pred

    def send_goal(self, target: PoseStamped, episode_id: str, task: str) -> Future | None:
        if not self._execute.server_is_ready():
            self.error(f"executor action {self.execute_action} is not available; {episode_id} not sent")
            return None
        goal = ExecutePose.Goal(
            target=target, primitive=ExecutePose.Goal.PRIMITIVE_PULL, episode_id=episode_id
        )
        return self._execute.send_goal_async(goal)

    def _on_adapter(self, msg: AdapterVersion) -> None:
        # The swap runs on the answering thread: it waits for the answer in progress, never for the executor.
        if msg.version > self.server.adapter_version:
            self._pool.submit(self._swap, msg.path, msg.version)

    def _swap(self, path: str, version: int) -> None:
        if self.server.swap_adapter(path, version):
            self.get_logger().info(f"now serving adapter v{version} from {path}")

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def main(args: list[str] | None = None) -> None:
    console_main(PolicyNode)
