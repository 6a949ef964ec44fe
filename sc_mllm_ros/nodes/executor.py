"""The executor node: the ``/sc_mllm/execute_pose`` action behind the safety envelope.

Every goal is checked against the workspace box and orientation limits before a backend sees it; an
out-of-bounds goal is aborted with the reason and never sent. ``/sc_mllm/pause`` (std_srvs/SetBool)
stops a running primitive and refuses goals until released. After each primitive the end state goes
out on ``/sc_mllm/execution_outcome`` for the checker.

Backend ``mujoco`` (the embedded arm) also publishes the camera topics, ``/joint_states`` and
``/sc_mllm/ee_pose`` like a real cell, and serves the automatic experts on ``/sc_mllm/sim/expert_hints``
and ``/sc_mllm/sim/next_scene``. Backend ``moveit`` drives a real or Gazebo Franka through moveit_py.
"""

from __future__ import annotations

import threading

from geometry_msgs.msg import PoseStamped, TransformStamped
import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header, String
from std_srvs.srv import SetBool, Trigger

from sc_mllm_msgs.action import ExecutePose
from sc_mllm_msgs.msg import ExecutionOutcome
from sc_mllm_msgs.srv import ExpertHints
from sc_mllm_ros.episode.record import BadInput
from sc_mllm_ros.episode.safety import GoalRejected
from sc_mllm_ros.geometry import Pose, rotation_from_quaternion
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.backends import MoveItBackend, SimBackend
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS, SENSOR_QOS
from sc_mllm_ros.nodes.runtime import console_main, declare
from sc_mllm_ros.nodes.safety_gate import declare_envelope, extrinsics_msg, EXTRINSICS_TOPIC

OPTICAL_FRAME = "camera_color_optical_frame"


class ExecutorNode(Node):
    def __init__(self, backend=None, **kwargs) -> None:
        super().__init__("sc_mllm_executor", **kwargs)
        kind = declare(self, "backend", "mujoco", "mujoco (embedded arm) | moveit (moveit_py)")
        self.envelope = declare_envelope(self)
        self.paused = False
        self._busy = threading.Lock()
        self.backend = backend or self._make_backend(kind)
        group = ReentrantCallbackGroup()
        self.extrinsics_pub = self.create_publisher(TransformStamped, EXTRINSICS_TOPIC, LATCHED_QOS)
        self.announce_extrinsics()
        self.outcome_pub = self.create_publisher(ExecutionOutcome, "/sc_mllm/execution_outcome", EVENTS_QOS)
        self.error_pub = self.create_publisher(String, "/sc_mllm/errors", EVENTS_QOS)
        self.create_service(SetBool, "/sc_mllm/pause", self._on_pause, callback_group=group)
        self._action = ActionServer(
            self,
            ExecutePose,
            "/sc_mllm/execute_pose",
            self._execute,
            goal_callback=self._on_goal,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=group,
        )
        if isinstance(self.backend, SimBackend):
            self._setup_sim()
        self.get_logger().info(f"executor ready ({type(self.backend).__name__}), envelope {self.envelope}")

    def _make_backend(self, kind: str):
        if kind == "mujoco":
            return SimBackend(
                split=declare(self, "scene_split", "train", "train | test_seen | test_unseen"),
                category=declare(self, "scene_category", "", "object category (empty: drawn from the split)"),
                image_size=declare(self, "image_size", 112, "camera resolution (px)", (16, 1024)),
                position_noise_px=declare(self, "position_noise_px", 2.0, "expert noise (px)", (0.0, 50.0)),
                rotation_noise_deg=declare(
                    self, "rotation_noise_deg", 6.0, "expert noise (deg)", (0.0, 30.0)
                ),
                seed=declare(self, "scene_seed", 0, "seed of the first scene", (0, 2**31 - 1)),
            )
        if kind == "moveit":
            ext = np.asarray(
                declare(
                    self,
                    "camera_extrinsics",
                    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                    "base <- camera optical frame: x y z qx qy qz qw",
                ),
                float,
            )
            base_from_camera = np.eye(4)
            base_from_camera[:3, :3] = rotation_from_quaternion(ext[3:])
            base_from_camera[:3, 3] = ext[:3]
            return MoveItBackend(
                base_from_camera,
                group=declare(self, "planning_group", "fr3_arm", "MoveIt planning group"),
                ee_link=declare(self, "ee_link", "fr3_hand_tcp", "link placed at the goal"),
                base_frame=declare(self, "base_frame", "fr3_link0", "robot base frame"),
            )
        raise ValueError(f"unknown executor backend '{kind}' (mujoco | moveit)")

    def announce_extrinsics(self) -> None:
        """Latch the camera pose in the base frame: the other nodes gate goals with it."""
        base_frame = getattr(self.backend, "base_frame", "world")
        msg = extrinsics_msg(self.backend.base_from_camera(), base_frame, OPTICAL_FRAME)
        msg.header.stamp = self.get_clock().now().to_msg()
        self.extrinsics_pub.publish(msg)

    # -- the embedded arm's sensors and experts ----------------------------------------------------------
    def _setup_sim(self) -> None:
        topics = (
            declare(self, "color_topic", "/camera/color/image_raw", "embedded camera colour topic"),
            declare(self, "depth_topic", "/camera/aligned_depth_to_color/image_raw", "its depth"),
            declare(self, "camera_info_topic", "/camera/color/camera_info", "its camera_info"),
        )
        rate = declare(self, "camera_rate_hz", 10.0, "publishing rate of the embedded camera", (0.1, 60.0))
        self.rgb_pub = self.create_publisher(Image, topics[0], SENSOR_QOS)
        self.depth_pub = self.create_publisher(Image, topics[1], SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, topics[2], SENSOR_QOS)
        self.joint_pub = self.create_publisher(JointState, "/joint_states", 10)
        self.ee_pub = self.create_publisher(PoseStamped, "/sc_mllm/ee_pose", 10)
        sensors = MutuallyExclusiveCallbackGroup()
        self.create_timer(1.0 / rate, self.publish_sensors, callback_group=sensors)
        self.create_service(
            ExpertHints, "/sc_mllm/sim/expert_hints", self._on_hints, callback_group=ReentrantCallbackGroup()
        )
        self.create_service(Trigger, "/sc_mllm/sim/scene", self._on_scene)
        self.create_service(
            Trigger, "/sc_mllm/sim/next_scene", self._on_next_scene, callback_group=ReentrantCallbackGroup()
        )

    def publish_sensors(self) -> None:
        f = self.backend.frame
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=OPTICAL_FRAME)
        self.rgb_pub.publish(conv.image_msg(f.rgb, "rgb8", header))
        self.depth_pub.publish(conv.image_msg(f.depth, "32FC1", header))
        self.info_pub.publish(conv.camera_info_msg(f.intrinsics, header))
        js = JointState(header=Header(stamp=header.stamp), name=list(f.joint_names))
        js.position = [float(v) for v in f.joint_positions]
        self.joint_pub.publish(js)
        ee = Pose(f.ee_pose.position, f.ee_pose.rotation, OPTICAL_FRAME)
        self.ee_pub.publish(conv.pose_msg(ee, header))

    def _on_hints(self, req: ExpertHints.Request, res: ExpertHints.Response) -> ExpertHints.Response:
        contact, up, forward = self.backend.expert_hints()
        res.ok, res.contact_row, res.contact_col = True, contact[0], contact[1]
        res.up, res.forward = conv.vector3(up), conv.vector3(forward)
        res.message = f"experts' hints for the {self.backend.object_name} (scene {self.backend.scene_seed})"
        return res

    def _on_scene(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        res.success, res.message = True, self.backend.object_name
        return res

    def _on_next_scene(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        if not self._busy.acquire(blocking=False):
            res.success, res.message = False, "a primitive is running; try again when it is done"
            return res
        try:
            name = self.backend.load_scene(self.backend.scene_seed + 1)
        finally:
            self._busy.release()
        self.announce_extrinsics()
        self.publish_sensors()
        res.success, res.message = True, name
        return res

    # -- pause / e-stop and the action ----------------------------------------------------------------------
    def _on_pause(self, req: SetBool.Request, res: SetBool.Response) -> SetBool.Response:
        self.paused = bool(req.data)
        if self.paused:
            self.backend.stop()
        res.success, res.message = True, "paused: goals are refused" if self.paused else "resumed"
        self.get_logger().warn(res.message)
        return res

    def _on_goal(self, goal: ExecutePose.Goal) -> GoalResponse:
        if self._busy.locked():
            self.error(f"goal of {goal.episode_id} rejected: another primitive is running")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def error(self, text: str) -> None:
        self.get_logger().error(text)
        self.error_pub.publish(String(data=f"{self.get_name()}: {text}"))

    def check(self, target: PoseStamped) -> Pose:
        """The goal if it may be sent; :class:`GoalRejected` with the reason otherwise."""
        if self.paused:
            raise GoalRejected("execution is paused (e-stop); release it with /sc_mllm/pause false")
        try:
            pose = conv.pose_from_msg(target)
        except BadInput as err:
            raise GoalRejected(str(err)) from err
        if pose.frame_id != OPTICAL_FRAME:
            raise GoalRejected(f"goal is in frame '{pose.frame_id}'; the executor takes {OPTICAL_FRAME}")
        self.envelope.check(pose, self.backend.base_from_camera())
        return pose

    def _execute(self, goal_handle) -> ExecutePose.Result:
        goal: ExecutePose.Goal = goal_handle.request
        result = ExecutePose.Result()
        if not self._busy.acquire(blocking=False):
            goal_handle.abort()
            result.message = "another primitive is running"
            return result
        try:
            try:
                pose = self.check(goal.target)
            except GoalRejected as err:
                self.error(f"goal of episode '{goal.episode_id}' rejected, not sent to the arm: {err}")
                goal_handle.abort()
                result.message = f"rejected: {err}"
                return result

            def on_phase(phase: str, progress: float) -> None:
                goal_handle.publish_feedback(ExecutePose.Feedback(phase=phase, progress=float(progress)))

            outcome = self.backend.execute(pose, on_phase)
        finally:
            self._busy.release()
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=OPTICAL_FRAME)
        result.success, result.message = outcome.completed, outcome.message
        result.final_ee_pose = conv.pose_msg(
            Pose(outcome.ee_pose.position, outcome.ee_pose.rotation, OPTICAL_FRAME), header
        )
        if outcome.end_rgb is not None:
            msg = ExecutionOutcome(
                header=header,
                episode_id=goal.episode_id,
                completed=outcome.completed,
                message=outcome.message,
                final_ee_pose=result.final_ee_pose,
                end_image=conv.image_msg(outcome.end_rgb, "rgb8", header),
                camera_info=conv.camera_info_msg(outcome.intrinsics, header),
            )
            self.outcome_pub.publish(msg)
        goal_handle.succeed() if outcome.completed else goal_handle.abort()
        return result

    def close(self) -> None:
        self.backend.close()


def main(args: list[str] | None = None) -> None:
    console_main(ExecutorNode)
