"""The automatic RGB-D experts and a person's clicks on the ROS graph, over real DDS, with no simulator.

Episodes are added to the model host's store directly (a recorded frame, a failed first attempt); the experts
are an untrained position network saved to a temporary directory (the service is under test, not the
network's skill).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed: run tools/setup.sh")
geometry_msgs = pytest.importorskip("geometry_msgs.msg")
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402
import test_ros_nodes  # noqa: E402
from test_ros_nodes import DOMAIN, wait  # noqa: E402

from sc_mllm_msgs.msg import FailureReport  # noqa: E402
from sc_mllm_msgs.srv import ExpertHints, RequestCorrection  # noqa: E402
from sc_mllm_ros.episode.record import EpisodeRecord, Frame  # noqa: E402
from sc_mllm_ros.episode.serving import ModelServer  # noqa: E402
from sc_mllm_ros.experts import Experts, PositionNet, PositionNetConfig  # noqa: E402
from sc_mllm_ros.geometry import CameraIntrinsics, deproject  # noqa: E402
from sc_mllm_ros.nodes import conversions as conv  # noqa: E402
from sc_mllm_ros.nodes.model_host import ModelHost  # noqa: E402
from sc_mllm_ros.nodes.qos import EVENTS_QOS, LATCHED_QOS  # noqa: E402
from sc_mllm_ros.nodes.safety_gate import transform_from_matrix  # noqa: E402

# test_ros_nodes' fixtures: its private DDS domain, its small random model, its model host
ros, server, nodes_host = test_ros_nodes.ros, test_ros_nodes.server, test_ros_nodes.host

pytestmark = pytest.mark.ros
SIZE = 48
INTR = CameraIntrinsics.from_fov(45.0, SIZE, SIZE)
BASE = "fr3_link0"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("experts")
    PositionNet(PositionNetConfig()).save_pretrained(path)
    return path


@pytest.fixture
def host(nodes_host, weights):
    """test_ros_nodes' model host, with the test's experts and clicked corrections answered, not executed."""
    nodes_host.experts.path = str(weights)  # read on first use
    nodes_host.correction.click_execute = False  # no arm in these tests
    yield nodes_host
    nodes_host.queue(lambda: None).result(timeout=60)  # a clicked correction still publishing finishes first


@pytest.fixture
def probe(ros, host):
    node = rclpy.create_node("test_experts_probe")
    node.errors, node.texts, node.images = [], [], []
    node.create_subscription(Image, "/sc_mllm/expert_image", node.images.append, LATCHED_QOS)
    node.create_subscription(String, "/sc_mllm/errors", lambda m: node.errors.append(m.data), EVENTS_QOS)
    node.create_subscription(String, "/sc_mllm/failure_text", lambda m: node.texts.append(m.data), EVENTS_QOS)
    node.clicks = node.create_publisher(geometry_msgs.PointStamped, "/clicked_point", 10)
    node.reports = node.create_publisher(FailureReport, "/sc_mllm/failure_report", EVENTS_QOS)
    node.hints = node.create_client(ExpertHints, "/sc_mllm/expert_hints")
    ros.add_node(node)
    assert node.hints.wait_for_service(timeout_sec=20)
    wait(lambda: node.count_subscribers("/clicked_point"))
    yield node
    ros.remove_node(node)
    node.destroy_node()


def scene() -> Frame:
    """A textured frame: a flat wall 0.7 m away with a nearer box, so the experts' map has structure."""
    rgb = np.random.default_rng(2).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    depth = np.full((SIZE, SIZE), 0.7, np.float32)
    depth[10:30, 12:36] = 0.6
    return Frame(rgb, depth, INTR)


def add_failed_episode(host: ModelHost, server: ModelServer, eid: str = "ep-1") -> EpisodeRecord:
    frame = scene()
    first = server.predict(frame, "drawer")
    first.executed, first.success, first.cause = True, False, "position"
    rec = EpisodeRecord(eid, "pull the top drawer", "drawer", frame, [first])
    host.episodes.add(rec)
    return rec


def ask(probe, **fields) -> ExpertHints.Response:
    future = probe.hints.call_async(ExpertHints.Request(**fields))
    wait(future.done, 90)  # the host's one model worker may still be finishing the previous test's work
    return future.result()


def test_expert_hints_come_from_the_recorded_rgbd_with_no_simulator(host, probe, server, weights) -> None:
    assert "sc_mllm_sim" not in probe.get_node_names()
    assert not ask(probe).ok  # no episode yet
    rec = add_failed_episode(host, server)
    res = ask(probe, k=3)
    assert res.ok and res.episode_id == rec.episode_id, res.message
    expected = Experts.from_pretrained(weights).hints(
        rec.frame.rgb, rec.frame.depth, rec.frame.intrinsics, rec.task, 3
    )
    cands = list(zip(res.candidate_rows, res.candidate_cols))
    assert cands == [tuple(int(round(v)) for v in p) for p in expected.candidate_pixels]
    assert 1 <= len(cands) <= 3 and (res.contact_row, res.contact_col) == cands[0]
    assert np.allclose(conv.array3(res.up), expected.up, atol=1e-5)
    assert np.allclose(res.candidate_scores, expected.candidate_scores, atol=1e-5)
    assert "sc_mllm/sim/expert_hints" not in {n.lstrip("/") for n, _ in probe.get_service_names_and_types()}
    drawn = wait(lambda: probe.images and probe.images[-1])  # the candidates, numbered, for a person
    assert (drawn.height, drawn.width) == (5 * SIZE, 5 * SIZE) and drawn.encoding == "rgb8"
    missing = ask(probe, episode_id="nope")
    assert not missing.ok and "no episode 'nope'" in missing.message

    # /request_correction's automatic experts are the same, in process
    client = probe.create_client(RequestCorrection, "/request_correction")
    assert client.wait_for_service(timeout_sec=20)
    future = client.call_async(RequestCorrection.Request(use_automatic_experts=True))
    corrected = wait(future.done) and future.result()
    assert corrected.accepted, corrected.message
    att = host.episodes.get(rec.episode_id).attempts[-1]
    assert att.hint_contact == cands[0] and np.allclose(att.hint_up, expected.up, atol=1e-5)


def click(probe, point: np.ndarray, frame_id: str) -> None:
    msg = geometry_msgs.PointStamped(header=Header(frame_id=frame_id, stamp=probe.get_clock().now().to_msg()))
    msg.point.x, msg.point.y, msg.point.z = (float(v) for v in point)
    probe.clicks.publish(msg)


def test_a_clicked_point_in_the_camera_frame_becomes_a_correction(host, probe, server, weights) -> None:
    rec = add_failed_episode(host, server)
    target = (20, 24)  # on the box
    click(probe, deproject(target, 0.6, INTR), conv.OPTICAL_FRAME)
    att = wait(lambda: len(a := host.episodes.get(rec.episode_id).attempts) == 2 and a[1])
    assert att.family == "correction" and att.hint_contact == target
    plane = Experts.from_pretrained(weights).rotation.fit(rec.frame.depth, INTR, (20.0, 24.0))
    assert np.allclose(att.hint_up, plane.up, atol=1e-5)  # the rotation expert's orientation at the click
    # that correction was not executed: nothing failed since, so the next click is refused, saying why
    click(probe, deproject(target, 0.6, INTR), conv.OPTICAL_FRAME)
    assert "no failed episode" in wait(lambda: probe.errors and probe.errors[-1])
    assert len(host.episodes.get(rec.episode_id).attempts) == 2


def test_a_click_in_the_base_frame_goes_through_tf2_and_one_off_the_image_is_refused(
    host, probe, server
) -> None:
    base_from_camera = np.eye(4)
    base_from_camera[:3, 3] = [0.5, 0.0, 0.8]
    t = geometry_msgs.TransformStamped(transform=transform_from_matrix(base_from_camera))
    t.header.frame_id, t.child_frame_id = BASE, conv.OPTICAL_FRAME
    host.gate.buffer.set_transform_static(t, "test")
    rec = add_failed_episode(host, server, "ep-base")
    outside = np.array([5.0, 0.0, 0.6])  # far to the right of the camera's view
    click(probe, (base_from_camera @ np.append(outside, 1.0))[:3], BASE)
    assert "outside episode ep-base" in wait(lambda: probe.errors and probe.errors[-1])
    click(probe, [0.0, 0.0, 1.0], "no_such_frame")
    assert wait(lambda: any("frame is unknown" in e for e in probe.errors))
    target = (30, 10)
    click(probe, (base_from_camera @ np.append(deproject(target, 0.7, INTR), 1.0))[:3], BASE)
    att = wait(lambda: len(a := host.episodes.get(rec.episode_id).attempts) == 2 and a[1])
    assert att.hint_contact == target


def test_failure_reports_are_summarised_as_text(host, probe) -> None:
    probe.reports.publish(FailureReport(episode_id="ep-9", attempt=1, success=False, answer_text="too low"))
    text = wait(lambda: probe.texts and probe.texts[-1])
    assert "ep-9" in text and "attempt 1" in text and "FAILED" in text and "too low" in text


def test_correct_cli_sends_the_position_experts_kth_candidate(host, probe, server) -> None:
    rec = add_failed_episode(host, server)
    hints = ask(probe, k=2)
    assert len(hints.candidate_rows) == 2, hints.message
    env = {**os.environ, "ROS_DOMAIN_ID": str(DOMAIN)}
    cmd = [sys.executable, "-m", "sc_mllm_ros.cli", "correct", "--candidate", "1"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    expected = (hints.candidate_rows[1], hints.candidate_cols[1])
    assert f"candidate 1: contact {expected}" in run.stdout
    last = host.episodes.get(rec.episode_id).attempts[-1]
    assert last.hint_contact == expected and last.feedback == "the position expert's candidate 1"
    bad = subprocess.run([*cmd, "--contact", "1", "2"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "replaces --contact" in bad.stdout
