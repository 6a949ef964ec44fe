"""Round trips of every sc_mllm_msgs interface over real DDS, inside the test process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")
sc_msgs = pytest.importorskip(
    "sc_mllm_msgs.msg", reason="sc_mllm_msgs is not built: run tools/setup.sh (colcon build)"
)

from geometry_msgs.msg import PoseStamped, Vector3  # noqa: E402, I100
from rclpy.action import ActionClient, ActionServer  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402

from sc_mllm_msgs.action import ExecutePose, RunEpisode  # noqa: E402
from sc_mllm_msgs.msg import AdapterVersion, CorrectionSample, FailureReport, PosePrediction  # noqa: E402
from sc_mllm_msgs.srv import RequestCorrection  # noqa: E402

pytestmark = pytest.mark.ros


@pytest.fixture
def ros() -> Iterator[tuple[Node, MultiThreadedExecutor]]:
    context = rclpy.Context()
    rclpy.init(context=context)
    node = Node("interfaces_test", context=context)
    executor = MultiThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        yield node, executor
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def spin_until(executor: MultiThreadedExecutor, done: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return done()


def _prediction() -> PosePrediction:
    msg = PosePrediction(episode_id="ep-7", task="pull the drawer", prompt_family="pose")
    msg.contact_row, msg.contact_col = 41, 97
    msg.up = Vector3(x=0.0, y=0.6, z=0.8)
    msg.forward = Vector3(x=1.0, y=0.0, z=0.0)
    msg.pose.header.frame_id = "camera_color_optical_frame"
    msg.pose.pose.position.x = 0.12
    msg.pose.pose.orientation.w = 1.0
    msg.answer_text = "The contact point is [123, 291], ..."
    msg.adapter_version = 3
    msg.latency_s = 0.25
    return msg


MESSAGES = {
    "prediction": _prediction,
    "failure_report": lambda: FailureReport(
        episode_id="ep-7", success=False, cause=FailureReport.CAUSE_ROTATION, answer_text="rotation"
    ),
    "adapter_version": lambda: AdapterVersion(version=4, path="/tmp/adapters/v4", num_samples=12, loss=0.5),
    "correction_sample": lambda: CorrectionSample(
        sample_id="s-1", episode_id="ep-7", corrected=_prediction()
    ),
}


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_publish_subscribe_round_trip(ros, name: str) -> None:
    node, executor = ros
    sent = MESSAGES[name]()
    received = []
    topic = f"/test/{name}"
    node.create_subscription(type(sent), topic, received.append, 10)
    pub = node.create_publisher(type(sent), topic, 10)
    # Keep publishing until discovery has matched the pair; DDS drops messages sent before that.
    assert spin_until(executor, lambda: pub.get_subscription_count() > 0)
    pub.publish(sent)
    assert spin_until(executor, lambda: bool(received)), f"no {name} message arrived"
    assert received[0] == sent


def test_request_correction_service_round_trip(ros) -> None:
    node, executor = ros
    seen = []

    def handle(request: RequestCorrection.Request, response: RequestCorrection.Response):
        seen.append(request)
        response.accepted = request.has_contact_hint
        response.corrected_pose = PoseStamped()
        response.corrected_pose.pose.position.x = float(request.contact_row)
        response.answer_text = f"feedback was: {request.feedback}"
        response.message = "corrected" if response.accepted else "no hint"
        return response

    node.create_service(RequestCorrection, "/request_correction", handle)
    client = node.create_client(RequestCorrection, "/request_correction")
    assert spin_until(executor, client.service_is_ready)

    request = RequestCorrection.Request(feedback="grasp the handle", has_contact_hint=True, contact_row=55)
    future = client.call_async(request)
    assert spin_until(executor, future.done)
    response = future.result()
    assert seen[0].feedback == "grasp the handle"
    assert response.accepted
    assert response.corrected_pose.pose.position.x == 55.0
    assert response.answer_text == "feedback was: grasp the handle"


def test_execute_pose_action_round_trip(ros) -> None:
    node, executor = ros
    phases = ["pre_pose", "approach", "attach", "pull", "release"]

    def execute(goal_handle):
        for i, phase in enumerate(phases):
            # A primitive takes time; feedback sent before the client has the goal's acceptance is dropped.
            time.sleep(0.1)
            goal_handle.publish_feedback(ExecutePose.Feedback(phase=phase, progress=(i + 1) / len(phases)))
        goal_handle.succeed()
        result = ExecutePose.Result(success=True, message="done")
        result.final_ee_pose = goal_handle.request.target
        return result

    ActionServer(node, ExecutePose, "/sc_mllm/execute", execute)
    client = ActionClient(node, ExecutePose, "/sc_mllm/execute")
    assert spin_until(executor, client.server_is_ready)

    goal = ExecutePose.Goal(primitive=ExecutePose.Goal.PRIMITIVE_PULL, episode_id="ep-1")
    goal.target.pose.position.z = 0.7
    feedback = []
    send = client.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback.phase))
    assert spin_until(executor, send.done)
    assert send.result().accepted
    result_future = send.result().get_result_async()
    assert spin_until(executor, result_future.done)
    result = result_future.result().result
    assert result.success
    assert result.final_ee_pose.pose.position.z == pytest.approx(0.7)
    assert spin_until(executor, lambda: len(feedback) == len(phases))
    assert feedback == phases


def test_run_episode_goal_defaults_and_round_trip(ros) -> None:
    node, executor = ros
    goal = RunEpisode.Goal(task="pull the drawer")
    # the defaults a bare `ros2 action send_goal` gets: three corrections with both experts' hints
    assert goal.max_corrections == 3 and goal.position_expert and goal.rotation_expert

    def execute(goal_handle):
        for i, verdict in enumerate(("failure", "success")):
            time.sleep(0.1)  # feedback sent before the client has the goal's acceptance is dropped
            goal_handle.publish_feedback(RunEpisode.Feedback(attempt=i, verdict=verdict, correction=i > 0))
        goal_handle.succeed()
        return RunEpisode.Result(success=True, attempts=2, causes=["position", "success"], episode_id="ep-2")

    ActionServer(node, RunEpisode, "/test/run_episode", execute)
    client = ActionClient(node, RunEpisode, "/test/run_episode")
    assert spin_until(executor, client.server_is_ready)
    feedback = []
    send = client.send_goal_async(goal, feedback_callback=lambda fb: feedback.append(fb.feedback.verdict))
    assert spin_until(executor, send.done) and send.result().accepted
    result_future = send.result().get_result_async()
    assert spin_until(executor, result_future.done)
    result = result_future.result().result
    assert result.success and result.attempts == 2 and list(result.causes) == ["position", "success"]
    assert spin_until(executor, lambda: len(feedback) == 2) and feedback == ["failure", "success"]
