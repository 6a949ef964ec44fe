"""Each node over real rclpy/DDS in this process.

Bad input is refused with a clear error and nothing is published for it (the arm nodes: test_ros_arm.py).
"""

from __future__ import annotations

from collections.abc import Callable
import os
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")
from rclpy.duration import Duration  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
from visualization_msgs.msg import MarkerArray  # noqa: E402

from sc_mllm_msgs.action import ExecutePose  # noqa: E402
from sc_mllm_msgs.msg import ExecutionOutcome, PosePrediction  # noqa: E402
from sc_mllm_msgs.srv import RequestCorrection  # noqa: E402
from sc_mllm_ros.episode.record import EpisodeRecord, Frame  # noqa: E402
from sc_mllm_ros.episode.serving import ModelServer  # noqa: E402
from sc_mllm_ros.episode.store import EpisodeStore  # noqa: E402
from sc_mllm_ros.geometry import CameraIntrinsics  # noqa: E402
from sc_mllm_ros.nodes import conversions as conv  # noqa: E402
from sc_mllm_ros.nodes.model_host import ModelHost  # noqa: E402
from sc_mllm_ros.nodes.qos import EVENTS_QOS, SENSOR_QOS  # noqa: E402

pytestmark = pytest.mark.ros
SIZE = 48
INTR = CameraIntrinsics.from_fov(45.0, SIZE, SIZE)


@pytest.fixture(scope="module")
def server():
    import torch

    from sc_mllm_ros.model import SCMLLM, SCMLLMConfig

    torch.manual_seed(0)
    return ModelServer(SCMLLM(SCMLLMConfig()), model_version="test-random")


def private_domain() -> int:
    """A DDS domain of this test session alone: engineers and CI jobs on this host share env.sh's default."""
    return random.SystemRandom().randrange(1, 200)


DOMAIN = private_domain()


@pytest.fixture(scope="module")
def ros():
    rclpy.init(domain_id=DOMAIN)
    executor = MultiThreadedExecutor(num_threads=6)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor
    executor.shutdown()
    thread.join(5)
    rclpy.shutdown()


class Probe(Node):
    """Publishes camera frames and tasks; records what the graph publishes."""

    def __init__(self) -> None:
        super().__init__("test_probe")
        self.got: dict[str, list] = {
            "errors": [],
            "prediction": [],
            "goal": [],
            "markers": [],
            "debug": [],
            "outcome": [],
        }
        self.rgb = self.create_publisher(Image, "/camera/color/image_raw", SENSOR_QOS)
        self.depth = self.create_publisher(Image, "/camera/aligned_depth_to_color/image_raw", SENSOR_QOS)
        self.info = self.create_publisher(CameraInfo, "/camera/color/camera_info", SENSOR_QOS)
        self.task = self.create_publisher(String, "/sc_mllm/task", 10)
        for key, t, topic, qos in (
            ("errors", String, "/sc_mllm/errors", EVENTS_QOS),
            ("prediction", PosePrediction, "/sc_mllm/prediction", EVENTS_QOS),
            ("goal", conv.PoseStamped, "/sc_mllm/goal_pose", 10),
            ("markers", MarkerArray, "/sc_mllm/markers", 10),
            ("debug", Image, "/sc_mllm/debug_image", 10),
            ("outcome", ExecutionOutcome, "/sc_mllm/execution_outcome", EVENTS_QOS),
        ):
            self.create_subscription(t, topic, lambda m, k=key: self.got[k].append(m), qos)

    def send_frame(self, rgb_msg=None, depth_msg=None, info=True, age_s: float = 0.0) -> None:
        stamp = self.get_clock().now() - Duration(seconds=age_s)
        header = Header(frame_id="camera_color_optical_frame", stamp=stamp.to_msg())
        rgb = np.random.default_rng(1).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
        for _ in range(3):
            if rgb_msg is not None:
                rgb_msg.header = header
            self.rgb.publish(rgb_msg or conv.image_msg(rgb, "rgb8", header))
            self.depth.publish(
                depth_msg or conv.image_msg(np.full((SIZE, SIZE), 0.7, np.float32), "32FC1", header)
            )
            if info:
                self.info.publish(conv.camera_info_msg(INTR, header))
            time.sleep(0.05)


def wait(predicate: Callable[[], object], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def host(ros, server, tmp_path):
    """A model host around the test's model, answering tasks without an arm."""
    host = ModelHost(
        server,
        {"sc_mllm_model_host": {"data_dir": str(tmp_path)}, "sc_mllm_policy": {"auto_execute": False}},
    )
    for n in host.nodes:
        ros.add_node(n)
    yield host
    for n in host.nodes:
        ros.remove_node(n)
    host.close()
    for n in host.nodes:
        n.destroy_node()


@pytest.fixture
def policy(ros, host):
    probe = Probe()
    ros.add_node(probe)
    wait(
        lambda: (
            probe.count_subscribers("/camera/color/camera_info") and probe.count_subscribers("/sc_mllm/task")
        )
    )
    yield host.policy, probe
    ros.remove_node(probe)
    probe.destroy_node()


def task_refused(probe: Probe, match: str, task: str = "pull the drawer") -> str:
    probe.task.publish(String(data=task))
    error = wait(lambda: probe.got["errors"] and probe.got["errors"][-1].data)
    time.sleep(0.3)  # anything published for the refused input would have arrived by now
    assert match in error, error
    assert not probe.got["prediction"] and not probe.got["goal"] and not probe.got["debug"]
    return error


def test_policy_answers_a_good_frame_with_goal_prediction_markers_and_debug_image(policy) -> None:
    node, probe = policy
    probe.send_frame()
    probe.task.publish(String(data="pull the drawer"))
    pred = wait(lambda: probe.got["prediction"] and probe.got["prediction"][0])
    wait(lambda: probe.got["goal"] and probe.got["markers"] and probe.got["debug"])
    assert pred.task == "pull the drawer" and pred.prompt_family == "pose" and pred.answer_text
    assert pred.pose.header.frame_id == "camera_color_optical_frame"
    assert probe.got["goal"][0].pose == pred.pose.pose
    assert probe.got["debug"][0].height == SIZE and probe.got["debug"][0].encoding == "rgb8"
    assert {m.ns for m in probe.got["markers"][0].markers} >= {"sc_mllm_goal_frame", "sc_mllm_approach"}
    assert node.host.episodes.get(pred.episode_id).attempts[0].text == pred.answer_text
    assert not probe.got["errors"]


def test_policy_keeps_out_of_bounds_goals_to_itself(policy) -> None:
    node, probe = policy
    from geometry_msgs.msg import TransformStamped
    from tf2_ros import StaticTransformBroadcaster

    extrinsics = TransformStamped()  # the camera 10 m in front of the robot: every goal is out of reach
    extrinsics.header.frame_id = node.host.gate.base_frame
    extrinsics.child_frame_id = "camera_color_optical_frame"
    extrinsics.transform.translation.x, extrinsics.transform.rotation.w = 10.0, 1.0
    StaticTransformBroadcaster(probe).sendTransform(extrinsics)
    wait(lambda: node.host.gate.knows("camera_color_optical_frame"))
    probe.send_frame()
    probe.task.publish(String(data="pull the drawer"))
    error = wait(lambda: probe.got["errors"] and probe.got["errors"][-1].data)
    pred = wait(lambda: probe.got["prediction"] and probe.got["prediction"][0])
    time.sleep(0.3)
    assert "rejected by the safety envelope, not sent" in error and pred.episode_id in error
    assert "outside the workspace box" in error
    assert not probe.got["goal"]  # the answer is visible, the goal never left the policy
    assert node.host.episodes.get(pred.episode_id) is not None  # and the episode can be corrected


def test_missing_camera_info_is_refused(policy) -> None:
    _, probe = policy
    probe.send_frame(info=False)
    task_refused(probe, "no camera_info received yet on /camera/color/camera_info")


def test_a_stale_frame_is_refused(policy) -> None:
    node, probe = policy
    probe.send_frame(age_s=10 * node.max_frame_age_s)
    task_refused(probe, "the latest colour frame is")


def test_wrong_encoding_is_refused(policy) -> None:
    _, probe = policy
    bad = conv.image_msg(np.zeros((SIZE, SIZE, 3), np.uint8), "rgb8")
    bad.encoding = "yuv422"
    probe.send_frame(rgb_msg=bad)
    task_refused(probe, "colour image has encoding 'yuv422'")


def test_mismatched_image_sizes_are_refused(policy) -> None:
    _, probe = policy
    probe.send_frame(depth_msg=conv.image_msg(np.full((SIZE // 2, SIZE), 0.7, np.float32), "32FC1"))
    task_refused(probe, "differ in size")


def test_empty_image_data_is_refused(policy) -> None:
    _, probe = policy
    empty = conv.image_msg(np.zeros((SIZE, SIZE, 3), np.uint8), "rgb8")
    empty.data = b""
    probe.send_frame(rgb_msg=empty)
    task_refused(probe, "empty")


@pytest.mark.parametrize(("task", "match"), [("", "task is empty"), ("x" * 500, "characters, more than")])
def test_empty_or_oversized_task_is_refused(policy, task: str, match: str) -> None:
    _, probe = policy
    probe.send_frame()
    task_refused(probe, match, task)


@pytest.mark.parametrize("value", [np.nan, 0.0])
def test_nan_or_zero_depth_at_the_contact_is_refused(policy, value: float) -> None:
    _, probe = policy
    probe.send_frame(depth_msg=conv.image_msg(np.full((SIZE, SIZE), value, np.float32), "32FC1"))
    task_refused(probe, "cannot lift the answer to a 6-DoF goal")


# -- /request_correction -----------------------------------------------------------------------------------
@pytest.fixture
def correction(ros, host):
    client_node = rclpy.create_node("test_correction_client")
    client = client_node.create_client(RequestCorrection, "/request_correction")
    ros.add_node(client_node)
    assert client.wait_for_service(timeout_sec=20)
    yield host.episodes, client
    ros.remove_node(client_node)
    client_node.destroy_node()


def call(client, timeout: float = 30.0, **fields) -> RequestCorrection.Response:
    future = client.call_async(RequestCorrection.Request(**fields))
    wait(future.done, timeout)
    return future.result()


def add_episode(episodes: EpisodeStore, server: ModelServer) -> EpisodeRecord:
    rng = np.random.default_rng(2)
    frame = Frame(
        rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), np.full((SIZE, SIZE), 0.7, np.float32), INTR
    )
    rec = EpisodeRecord("ep-1", "pull the drawer", "drawer", frame, [server.predict(frame, "drawer")])
    episodes.add(rec)
    return rec


def test_correction_with_no_episode_is_refused(correction) -> None:
    _, client = correction
    res = call(client, has_contact_hint=True, contact_row=1, contact_col=1)
    assert not res.accepted and "no episode to correct yet" in res.message
    res = call(client, episode_id="nope", has_contact_hint=True)
    assert not res.accepted and "no episode 'nope'" in res.message


def test_malformed_corrections_are_refused(correction, server) -> None:
    episodes, client = correction
    add_episode(episodes, server)
    cases = [
        ({}, "carries no hint"),
        ({"has_contact_hint": True, "contact_row": -3, "contact_col": 2}, "outside"),
        ({"has_contact_hint": True, "contact_row": 2, "contact_col": SIZE}, "outside"),
        ({"has_direction_hint": True}, "not a direction"),  # zero vectors
    ]
    for fields, match in cases:
        res = call(client, **fields)
        assert not res.accepted and match in res.message, (fields, res.message)
    assert len(episodes.get("ep-1").attempts) == 1  # nothing was added for refused requests


def test_a_correction_is_answered_and_recorded(correction, server) -> None:
    episodes, client = correction
    rec = add_episode(episodes, server)
    res = call(client, has_contact_hint=True, contact_row=10, contact_col=20, feedback="lower the contact")
    assert res.accepted and not res.executed and res.answer_text
    assert res.prediction.prompt_family == "correction" and res.prediction.episode_id == rec.episode_id
    att = episodes.get(rec.episode_id).attempts[-1]
    assert att.hint_contact == (10, 20) and att.feedback == "lower the contact"
    assert np.allclose(att.hint_up, rec.attempts[0].up, atol=1e-6)  # directions came from the attempt


def test_a_second_correction_while_one_runs_is_refused(correction, server) -> None:
    episodes, client = correction
    add_episode(episodes, server)
    futures = [
        client.call_async(RequestCorrection.Request(has_contact_hint=True, contact_row=5, contact_col=5))
        for _ in range(2)
    ]
    wait(lambda: all(f.done() for f in futures))
    results = [f.result() for f in futures]
    assert sorted(r.accepted for r in results) == [False, True]
    refused = next(r for r in results if not r.accepted)
    assert "is still running" in refused.message


def test_the_correct_cli_is_a_client_of_the_service(correction, server) -> None:
    episodes, _ = correction
    rec = add_episode(episodes, server)
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN)}
    cmd = [
        sys.executable,
        "-m",
        "sc_mllm_ros.cli",
        "correct",
        "--contact",
        "7",
        "8",
        "--feedback",
        "more left",
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        f"corrected episode {rec.episode_id}" in run.stdout and "answer: The contact point is" in run.stdout
    )
    assert episodes.get(rec.episode_id).attempts[-1].hint_contact == (7, 8)
    bad = subprocess.run([*cmd[:4], "--up", "0,0,1"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "both --up and --forward" in bad.stdout


# -- learner: the two tunables change at run time, the rest is read-only --------------------------------
def test_learner_takes_lr_and_ema_decay_at_run_time_and_refuses_the_rest(ros, server, tmp_path) -> None:
    from rclpy.parameter import Parameter

    from sc_mllm_ros.episode.store import SampleStore
    from sc_mllm_ros.nodes.learner import LearnerNode

    node = LearnerNode(
        server.model.clone(),
        SampleStore(tmp_path / "s.sqlite"),
        parameter_overrides=[Parameter("data_dir", value=str(tmp_path))],
    )
    try:
        results = node.set_parameters([Parameter("lr", value=5e-4), Parameter("ema_decay", value=0.9)])
        assert all(r.successful for r in results)
        learner = node.worker.learner
        assert {g["lr"] for g in learner.opt.param_groups} == {5e-4} and learner.ema.decay == 0.9
        assert not node.set_parameters([Parameter("steps_per_update", value=7)])[0].successful
        assert not node.set_parameters([Parameter("ema_decay", value=1.5)])[0].successful  # out of range
        assert learner.ema.decay == 0.9
    finally:
        node.close()
        node.destroy_node()


# -- the model host process: Ctrl-C ends it cleanly ------------------------------------------------------
def test_the_model_host_process_exits_0_on_sigint(tmp_path) -> None:
    import signal

    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN)}
    cmd = [sys.executable, "-c", "from sc_mllm_ros.nodes.model_host import main; main()"]
    proc = subprocess.Popen(
        [*cmd, "--ros-args", "-p", f"data_dir:={tmp_path}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "model host ready" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(180), "".join(lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, "".join(lines)
    finally:
        proc.kill()
    reader.join(10)
    out = "".join(lines)
    assert "Traceback" not in out and "RCLError" not in out, out


def test_a_goal_the_arm_never_finishes_ends_unreachable_at_the_time_limit(ros, server, tmp_path) -> None:
    from rclpy.action import ActionServer
    from rclpy.callback_groups import ReentrantCallbackGroup

    release = threading.Event()

    def hang(goal_handle):  # an arm that takes the goal and never answers (until the test ends)
        release.wait(30)
        goal_handle.abort()
        return ExecutePose.Result(message="released")

    # A cell of its own in namespace /lost (relative names), away from the other tests' executor.
    arm = rclpy.create_node("test_lost_arm", namespace="/lost")
    ActionServer(arm, ExecutePose, "sc_mllm/execute_pose", hang, callback_group=ReentrantCallbackGroup())
    # An envelope that takes any goal: other tests' arms latch camera extrinsics on this domain.
    anywhere = {"workspace_min": [-1e3] * 3, "workspace_max": [1e3] * 3, "max_approach_angle_deg": 180.0}
    params = {"data_dir": str(tmp_path), "timeout_s": 1.0, **anywhere}
    host = ModelHost(server, {"sc_mllm_model_host": params}, ["--ros-args", "-r", "__ns:=/lost"])
    client_node = rclpy.create_node("test_correction_client")
    client = client_node.create_client(RequestCorrection, "/lost/request_correction")
    nodes = [arm, client_node, *host.nodes]
    for n in nodes:
        ros.add_node(n)
    try:
        assert client.wait_for_service(timeout_sec=20)
        wait(host.arm.client.server_is_ready)
        rec = add_episode(host.episodes, server)
        res = call(client, has_contact_hint=True, contact_row=5, contact_col=5, execute=True)
        assert res.accepted and res.executed, res.message  # answered at acceptance
        att = wait(lambda: (a := host.episodes.get(rec.episode_id).attempts[-1]).cause and a, 20)
        assert att.cause == "unreachable" and not att.executed and "did not finish" in att.report_text
        again = call(client, has_contact_hint=True, contact_row=6, contact_col=6)  # no longer pending
        assert again.accepted, again.message
    finally:
        release.set()
        for n in nodes:
            ros.remove_node(n)
        host.close()
        for n in nodes:
            n.destroy_node()


def test_a_node_process_computes_with_one_torch_thread_that_sleeps_when_idle_unless_told_otherwise():
    probe = (
        "import os, sc_mllm_ros.nodes, torch; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "PASSIVE"]
    env["OMP_NUM_THREADS"] = "2"  # an explicit setting wins
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "PASSIVE"]
