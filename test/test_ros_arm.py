"""The two arm nodes over real rclpy/DDS: the simulator node, and the MoveIt executor over a stand-in.

Both serve ``/sc_mllm/execute_pose`` behind tf2 and the safety envelope: goals outside it, or in a frame
tf2 cannot resolve, never reach the arm; the attempt index travels to the outcome; cancel stops the arm.
"""

from __future__ import annotations

from collections.abc import Callable
import random
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")
pytest.importorskip("sc_mllm_msgs.msg", reason="sc_mllm_msgs is not built: run tools/setup.sh (colcon build)")
tf2_ros = pytest.importorskip(
    "tf2_ros", reason="tf2_ros is not installed: tools/setup.sh with SC_MLLM_ROS2_VENDOR set installs it"
)

from action_msgs.msg import GoalStatus  # noqa: E402, I100
from geometry_msgs.msg import TransformStamped  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
from std_srvs.srv import SetBool  # noqa: E402
from test_moveit_backend import install  # noqa: E402

from sc_mllm_msgs.action import ExecutePose  # noqa: E402
from sc_mllm_msgs.msg import ExecutionOutcome  # noqa: E402
from sc_mllm_ros.geometry import CameraIntrinsics, Pose  # noqa: E402
from sc_mllm_ros.nodes import conversions as conv  # noqa: E402
from sc_mllm_ros.nodes.qos import EVENTS_QOS, SENSOR_QOS  # noqa: E402
from sc_mllm_ros.nodes.safety_gate import matrix_from_transform, transform_from_matrix  # noqa: E402

pytestmark = pytest.mark.ros
OPTICAL = "camera_color_optical_frame"
BASE = "fr3_link0"


@pytest.fixture(scope="module")
def ros():
    """A DDS domain of this module alone, spun by background threads; the nodes join it."""
    rclpy.init(domain_id=random.SystemRandom().randrange(1, 200))
    executor = MultiThreadedExecutor(num_threads=6)
    spinner = threading.Thread(target=executor.spin, daemon=True, name="test_ros_arm_spin")
    spinner.start()
    try:
        yield executor
    finally:
        executor.shutdown()
        spinner.join(5)
        rclpy.shutdown()


def until(predicate: Callable[[], object], timeout: float = 30.0):
    """The predicate's first truthy value, polled until ``timeout``."""
    end = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)
    return value


class Client(Node):
    """The arm action's client; records the camera, joint states, outcomes and errors; a tf2 listener."""

    def __init__(self) -> None:
        super().__init__("test_arm_client")
        self.action = ActionClient(self, ExecutePose, "/sc_mllm/execute_pose")
        self.pause = self.create_client(SetBool, "/sc_mllm/pause")
        self.got: dict[str, list] = {
            k: [] for k in ("rgb", "info", "joints", "outcome", "errors", "feedback")
        }
        for key, t, topic, qos in (
            ("rgb", Image, "/camera/color/image_raw", SENSOR_QOS),
            ("info", CameraInfo, "/camera/color/camera_info", SENSOR_QOS),
            ("joints", JointState, "/joint_states", 10),
            ("outcome", ExecutionOutcome, "/sc_mllm/execution_outcome", EVENTS_QOS),
            ("errors", String, "/sc_mllm/errors", EVENTS_QOS),
        ):
            self.create_subscription(t, topic, lambda m, k=key: self.got[k].append(m), qos)
        self.tf_buffer = tf2_ros.Buffer()
        self.tf_listener = tf2_ros.TransformListener(self.tf_buffer, self)

    def send(self, pose: Pose, attempt: int = 0, stamp=None):
        header = Header(frame_id=pose.frame_id)
        if stamp is not None:
            header.stamp = stamp
        goal = ExecutePose.Goal(target=conv.pose_msg(pose, header), episode_id="ep-test", attempt=attempt)
        sent = self.action.send_goal_async(goal, feedback_callback=lambda f: self.got["feedback"].append(f))
        return until(lambda: sent.done() and sent.result(), 20)

    def execute(self, pose: Pose, attempt: int = 0):
        result = self.send(pose, attempt).get_result_async()
        return until(lambda: result.done() and result.result(), 60).result

    def set_pause(self, on: bool) -> SetBool.Response:
        future = self.pause.call_async(SetBool.Request(data=on))
        return until(lambda: future.done() and future.result())


def attach(ros, *nodes: Node):
    for n in nodes:
        ros.add_node(n)


def detach(ros, *nodes: Node):
    for n in nodes:
        ros.remove_node(n)
        n.destroy_node()


# -- the simulator node ------------------------------------------------------------------------------------
@pytest.fixture(scope="class")
def sim(ros):
    from sc_mllm_ros.nodes.sim_node import SimNode

    node = SimNode(
        parameter_overrides=[Parameter("scene_seed", value=1), Parameter("camera_rate_hz", value=20.0)]
    )
    client = Client()
    attach(ros, node, client)
    assert client.action.wait_for_server(timeout_sec=20) and client.pause.wait_for_service(timeout_sec=20)
    yield node, client
    detach(ros, node, client)
    node.close()


class TestSimNode:
    """The simulator node; torn down before the MoveIt tests, which serve the same action."""

    def test_node_publishes_the_camera_joint_states_and_the_camera_frame_on_tf(self, sim) -> None:
        node, client = sim
        rgb = until(lambda: client.got["rgb"])[-1]
        info = until(lambda: client.got["info"])[-1]
        joints = until(lambda: client.got["joints"])[-1]
        assert rgb.header.frame_id == OPTICAL and (rgb.height, rgb.width) == node.arm.frame.rgb.shape[:2]
        assert info.k[0] > 0 and len(joints.name) == len(joints.position) > 0
        msg = until(
            lambda: (
                client.tf_buffer.can_transform(BASE, OPTICAL, Time())
                and client.tf_buffer.lookup_transform(BASE, OPTICAL, Time())
            )
        )
        assert np.allclose(matrix_from_transform(msg.transform), node.arm.base_from_camera(), atol=1e-6)

    def test_goals_outside_the_envelope_or_in_an_unknown_frame_are_refused_and_never_run(self, sim) -> None:
        node, client = sim
        gt = node.arm.world.ground_truth.pose
        n_out = len(client.got["outcome"])
        far = Pose(
            gt.position + np.array([0.0, 0.0, 3.0]), gt.rotation, OPTICAL
        )  # 3 m further along the axis
        res = client.execute(far)
        assert not res.success and res.status == ExecutionOutcome.STATUS_REJECTED
        assert "outside the workspace box" in res.message
        res = client.execute(Pose(gt.position, gt.rotation, "nowhere"))
        assert res.status == ExecutionOutcome.STATUS_REJECTED and "no transform" in res.message
        time.sleep(0.3)
        assert len(client.got["outcome"]) == n_out  # nothing ran, nothing to grade
        assert any("not sent to the arm" in e.data for e in client.got["errors"])

    def test_runs_a_goal_and_its_outcome_carries_the_attempt(self, sim) -> None:
        node, client = sim
        gt = node.arm.world.ground_truth.pose
        n_out = len(client.got["outcome"])
        res = client.execute(Pose(gt.position, gt.rotation, OPTICAL), attempt=3)
        assert res.success and res.status == ExecutionOutcome.STATUS_COMPLETED, res.message
        outcome = until(lambda: len(client.got["outcome"]) > n_out and client.got["outcome"][-1])
        assert outcome.episode_id == "ep-test" and outcome.attempt == 3 and outcome.completed
        assert outcome.end_image.height == node.arm.frame.rgb.shape[0]
        assert outcome.final_ee_pose.header.frame_id == OPTICAL
        assert "pulled" in outcome.message  # the ground-truth pose opens the part in the simulator

    def test_takes_goals_in_any_frame_tf2_resolves(self, sim) -> None:
        node, client = sim
        gt = node.arm.world.ground_truth.pose
        in_base = gt.transformed(node.arm.base_from_camera(), BASE)
        res = client.execute(in_base, attempt=1)
        assert res.success, res.message
        assert res.final_ee_pose.header.frame_id == BASE

    def test_cancel_stops_the_primitive_and_reports_canceled(self, sim) -> None:
        node, client = sim
        gt = node.arm.world.ground_truth.pose
        n_out = len(client.got["outcome"])
        # A primitive takes a fraction of a second in the simulator: hold it at its first waypoint until
        # the cancel has been accepted, as a long real motion would be.
        moving, canceled, world = threading.Event(), threading.Event(), node.arm.world
        execute = world.execute

        def held(pose, on_phase):
            def phase(name: str, progress: float) -> None:
                moving.set()
                canceled.wait(20)
                on_phase(name, progress)

            return execute(pose, on_phase=phase)

        world.execute = held
        try:
            handle = client.send(Pose(gt.position, gt.rotation, OPTICAL), attempt=4)
            assert moving.wait(20)
            cancel = handle.cancel_goal_async()
            until(lambda: cancel.done())
            canceled.set()
            result = handle.get_result_async()
            res = until(lambda: result.done() and result.result())
        finally:
            canceled.set()
            del world.execute
        assert (
            res.status == GoalStatus.STATUS_CANCELED and res.result.status == ExecutionOutcome.STATUS_CANCELED
        )
        time.sleep(0.3)
        assert len(client.got["outcome"]) == n_out  # a withdrawn attempt is not graded
        assert client.execute(Pose(gt.position, gt.rotation, OPTICAL)).success  # the arm is free again

    def test_pause_refuses_goals_until_released(self, sim) -> None:
        node, client = sim
        gt = Pose(
            node.arm.world.ground_truth.pose.position, node.arm.world.ground_truth.pose.rotation, OPTICAL
        )
        assert client.set_pause(True).success and node.paused
        res = client.execute(gt)
        assert not res.success and "paused" in res.message
        client.set_pause(False)
        assert client.execute(gt).success

    def test_serves_scenes_and_moves_the_camera_frame_with_them(self, sim) -> None:
        from std_srvs.srv import Trigger

        node, client = sim
        scene = client.create_client(Trigger, "/sc_mllm/sim/scene")
        next_scene = client.create_client(Trigger, "/sc_mllm/sim/next_scene")
        assert next_scene.wait_for_service(timeout_sec=10)
        first = scene.call_async(Trigger.Request())
        name = until(lambda: first.done() and first.result()).message
        assert name == node.arm.object_name
        seed = node.arm.scene_seed
        moved = next_scene.call_async(Trigger.Request())
        assert until(lambda: moved.done() and moved.result()).success and node.arm.scene_seed == seed + 1

        def same_camera() -> bool:
            t = client.tf_buffer.lookup_transform(BASE, OPTICAL, Time()).transform
            return np.allclose(matrix_from_transform(t), node.arm.base_from_camera(), atol=1e-6)

        until(same_camera)


# -- the MoveIt executor over the moveit_py stand-in ------------------------------------------------------
# The calibrated camera 1 m above the table, looking straight down: a goal 0.6 m in front of it is at 0.4 m.
BASE_FROM_CAMERA = np.eye(4)
BASE_FROM_CAMERA[:3, :3] = np.diag([1.0, -1.0, -1.0])
BASE_FROM_CAMERA[:3, 3] = [0.5, 0.0, 1.0]
GOAL = Pose(np.array([0.0, 0.0, 0.6]), np.eye(3), OPTICAL)
SIZE = 16


class Camera(Node):
    """The cell's camera (frames numbered in their pixels) and its hand-eye calibration on tf2."""

    def __init__(self) -> None:
        super().__init__("test_camera")
        self.sent: dict[int, float] = {}  # pixel value -> stamp (s)
        self.rgb = self.create_publisher(Image, "/camera/color/image_raw", SENSOR_QOS)
        self.info = self.create_publisher(CameraInfo, "/camera/color/camera_info", SENSOR_QOS)
        self.create_timer(0.05, self.publish)
        self.tf_static = tf2_ros.StaticTransformBroadcaster(self)
        calib = TransformStamped(transform=transform_from_matrix(BASE_FROM_CAMERA))
        calib.header.frame_id, calib.child_frame_id = BASE, OPTICAL
        self.tf_static.sendTransform(calib)

    def publish(self) -> None:
        now = self.get_clock().now()
        value = len(self.sent) % 250 + 1
        self.sent[value] = now.nanoseconds * 1e-9
        header = Header(stamp=now.to_msg(), frame_id=OPTICAL)
        self.rgb.publish(conv.image_msg(np.full((SIZE, SIZE, 3), value, np.uint8), "rgb8", header))
        self.info.publish(conv.camera_info_msg(CameraIntrinsics.from_fov(45.0, SIZE, SIZE), header))


@pytest.fixture
def moveit(ros, monkeypatch):
    from sc_mllm_ros.nodes.executor import ExecutorNode

    cell = install(monkeypatch)
    camera, client = Camera(), Client()
    node = ExecutorNode(parameter_overrides=[Parameter("end_image_timeout_s", value=5.0)])
    attach(ros, node, camera, client)
    assert client.action.wait_for_server(timeout_sec=20)
    until(lambda: client.got["rgb"] and node.tf_buffer.can_transform(BASE, OPTICAL, Time()))
    yield node, cell, camera, client
    detach(ros, node, camera, client)
    node.close()


def test_moveit_outcome_carries_the_attempt_and_a_camera_frame_from_after_the_execution(moveit) -> None:
    node, cell, camera, client = moveit
    res = client.execute(GOAL, attempt=2)
    assert res.success and res.status == ExecutionOutcome.STATUS_COMPLETED, res.message
    outcome = until(lambda: client.got["outcome"])[-1]
    assert outcome.attempt == 2 and outcome.episode_id == "ep-test" and outcome.completed
    assert len(cell.executed) == 3 and cell.goals[1][0].pose.position.z == pytest.approx(0.4)
    value = int(conv.rgb_from_msg(outcome.end_image)[0, 0, 0])
    assert camera.sent[value] >= cell.finished[-1]  # the frame was taken after the arm stopped
    assert outcome.camera_info.width == SIZE
    # The arm ended at the pull end, 0.2 m back along the approach axis, reported in the goal's frame.
    end = conv.pose_from_msg(outcome.final_ee_pose)
    assert end.frame_id == OPTICAL and np.allclose(end.position, GOAL.position - 0.2 * GOAL.up, atol=1e-6)


def test_moveit_unreachable_and_failed_executions_are_reported_and_graded(moveit) -> None:
    node, cell, camera, client = moveit
    cell.unreachable = {0}
    res = client.execute(GOAL, attempt=1)
    assert not res.success and res.status == ExecutionOutcome.STATUS_UNREACHABLE
    outcome = until(lambda: client.got["outcome"])[-1]
    assert outcome.status == ExecutionOutcome.STATUS_UNREACHABLE and outcome.end_image.height == SIZE
    cell.unreachable, cell.execution_status = set(), "ABORTED"
    n_out = len(client.got["outcome"])
    res = client.execute(GOAL, attempt=2)
    assert not res.success and res.status == ExecutionOutcome.STATUS_FAILED and "ABORTED" in res.message
    outcome = until(lambda: len(client.got["outcome"]) > n_out and client.got["outcome"][-1])
    assert outcome.attempt == 2 and not outcome.completed
    cell.planner_error = RuntimeError("planning pipeline crashed")
    res = client.execute(GOAL, attempt=3)
    assert res.status == ExecutionOutcome.STATUS_FAILED and "planning pipeline crashed" in res.message
    assert any("planning pipeline crashed" in e.data for e in client.got["errors"])
    assert client.execute(GOAL).status == ExecutionOutcome.STATUS_FAILED  # the arm is free again


def test_moveit_cancel_stops_the_execution_manager_and_reports_canceled(moveit) -> None:
    node, cell, camera, client = moveit
    cell.block_execution = True
    handle = client.send(GOAL)
    assert cell.executing.wait(20)
    cancel = handle.cancel_goal_async()
    until(lambda: cancel.done())
    result = handle.get_result_async()
    res = until(lambda: result.done() and result.result())
    assert cell.stopped.is_set() and res.status == GoalStatus.STATUS_CANCELED
    assert len(cell.executed) == 1 and not client.got["outcome"]


def test_moveit_envelope_and_frames_come_from_tf2(moveit) -> None:
    node, cell, camera, client = moveit
    below = Pose(np.array([0.0, 0.0, 1.5]), np.eye(3), OPTICAL)  # 0.5 m under the table
    res = client.execute(below)
    assert res.status == ExecutionOutcome.STATUS_REJECTED and "outside the workspace box" in res.message
    res = client.execute(Pose(GOAL.position, GOAL.rotation, "uncalibrated_camera"))
    assert res.status == ExecutionOutcome.STATUS_REJECTED and "no transform" in res.message
    assert not cell.goals and not client.got["outcome"]  # MoveIt never saw them
