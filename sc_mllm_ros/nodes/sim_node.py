"""The simulator node (``sim_node``): the embedded MuJoCo world as a cell, arm and camera.

It owns the world of :mod:`sc_mllm_ros.sim` and publishes what a real cell's drivers would: the camera
topics (sensor QoS), ``/joint_states``, ``/sc_mllm/ee_pose`` and, on tf2, the camera optical frame relative to
the robot base as a static transform. It serves the arm's ``/sc_mllm/execute_pose`` action and
``/sc_mllm/pause`` (:class:`~sc_mllm_ros.nodes.arm.ArmNode`), and the scenes: ``/sc_mllm/sim/scene`` (the
loaded object) and ``/sc_mllm/sim/next_scene``.

The automatic experts are not here: the model host runs them on the recorded RGB-D (``sc_mllm/expert_hints``),
as on a real cell; the simulator's ground truth stays in the evaluation.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped, TransformStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Header
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from sc_mllm_ros import names
from sc_mllm_ros.geometry import Pose
from sc_mllm_ros.nodes import conversions as conv
from sc_mllm_ros.nodes.arm import ArmNode
from sc_mllm_ros.nodes.backends import OPTICAL_FRAME, SimArm
from sc_mllm_ros.nodes.qos import LATCHED_QOS, SENSOR_QOS
from sc_mllm_ros.nodes.runtime import console_main, declare
from sc_mllm_ros.nodes.safety_gate import transform_from_matrix


class SimNode(ArmNode):
    arm: SimArm

    def __init__(self, **kwargs) -> None:
        super().__init__("sc_mllm_sim", **kwargs)
        self.arm = SimArm(
            self.base_frame,
            split=declare(self, "scene_split", "train", "train | test_seen | test_unseen"),
            category=declare(self, "scene_category", "", "object category (empty: drawn from the split)"),
            image_size=declare(self, "image_size", 224, "camera resolution (px), as trained", (16, 1024)),
            seed=declare(self, "scene_seed", 0, "seed of the first scene", (0, 2**31 - 1)),
        )
        # tf2_ros_py's StaticTransformBroadcaster keeps the first transform of a child frame, and the camera
        # moves with each scene: publish the latched /tf_static message (its QoS) directly.
        self.tf_static_pub = self.create_publisher(TFMessage, "/tf_static", LATCHED_QOS)
        self.announce_camera()
        topics = (
            declare(self, "color_topic", names.COLOR, "camera colour topic"),
            declare(self, "depth_topic", names.DEPTH, "its depth"),
            declare(self, "camera_info_topic", names.CAMERA_INFO, "its camera_info"),
        )
        rate = declare(self, "camera_rate_hz", 10.0, "publishing rate of the camera", (0.1, 60.0))
        self.rgb_pub = self.create_publisher(Image, topics[0], SENSOR_QOS)
        self.depth_pub = self.create_publisher(Image, topics[1], SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, topics[2], SENSOR_QOS)
        self.joint_pub = self.create_publisher(JointState, "/joint_states", 10)
        self.ee_pub = self.create_publisher(PoseStamped, names.EE_POSE, 10)
        self.create_timer(1.0 / rate, self.publish_sensors, callback_group=MutuallyExclusiveCallbackGroup())
        self.create_service(Trigger, names.SCENE, self._on_scene)
        self.create_service(
            Trigger, names.NEXT_SCENE, self._on_next_scene, callback_group=self.group
        )
        self.serve()
        self.get_logger().info(f"simulated cell ready ({self.arm.object_name}), envelope {self.envelope}")

    def announce_camera(self) -> None:
        """The scene's camera on tf2 (base <- optical frame), latched; the node's own lookups use it too."""
        msg = TransformStamped(transform=transform_from_matrix(self.arm.base_from_camera()))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id, msg.child_frame_id = self.base_frame, OPTICAL_FRAME
        self.tf_static_pub.publish(TFMessage(transforms=[msg]))
        self.tf_buffer.set_transform_static(msg, self.get_name())

    def publish_sensors(self) -> None:
        # Ctrl-C shuts the context down while this 10 Hz timer may be running: publishing then would raise.
        if not self.context.ok():
            return
        f = self.arm.frame
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id=OPTICAL_FRAME)
        self.rgb_pub.publish(conv.image_msg(f.rgb, "rgb8", header))
        self.depth_pub.publish(conv.image_msg(f.depth, "32FC1", header))
        self.info_pub.publish(conv.camera_info_msg(f.intrinsics, header))
        js = JointState(header=Header(stamp=header.stamp), name=list(f.joint_names))
        js.position = [float(v) for v in f.joint_positions]
        self.joint_pub.publish(js)
        self.ee_pub.publish(
            conv.pose_msg(Pose(f.ee_pose.position, f.ee_pose.rotation, OPTICAL_FRAME), header)
        )

    def _on_scene(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        res.success, res.message = True, self.arm.object_name
        return res

    def _on_next_scene(self, req: Trigger.Request, res: Trigger.Response) -> Trigger.Response:
        if not self._busy.acquire(blocking=False):
            res.success, res.message = False, "a primitive is running; try again when it is done"
            return res
        try:
            name = self.arm.load_scene(self.arm.scene_seed + 1)
        finally:
            self._busy.release()
        self.announce_camera()
        self.publish_sensors()
        res.success, res.message = True, name
        return res


def main(args: list[str] | None = None) -> None:
    console_main(SimNode)
