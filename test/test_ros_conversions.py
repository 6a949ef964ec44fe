"""Message <-> numpy conversions: round trips, every refused input, and cv_bridge against the numpy path."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from sc_mllm_ros.episode.record import BadInput
from sc_mllm_ros.geometry import CameraIntrinsics, Pose, rotation_from_up_forward
from sc_mllm_ros.nodes import conversions as conv

RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (6, 5, 3), dtype=np.uint8)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_colour_encodings_give_rgb(encoding: str) -> None:
    arr = RGB[..., ::-1] if encoding.startswith("bgr") else RGB
    if encoding.endswith("a8"):
        arr = np.dstack([arr, np.full(arr.shape[:2], 255, np.uint8)])
    msg = conv.image_msg(arr, encoding)
    assert np.array_equal(conv.rgb_from_msg(msg, use_cv_bridge=False), RGB)


def test_padded_rows_and_big_endian_depth() -> None:
    msg = conv.image_msg(RGB, "rgb8")
    padded = np.zeros((6, 5 * 3 + 4), np.uint8)
    padded[:, :15] = RGB.reshape(6, 15)
    msg.step, msg.data = 19, padded.tobytes()
    assert np.array_equal(conv.rgb_from_msg(msg, use_cv_bridge=False), RGB)
    depth = RNG.uniform(0.2, 2.0, (4, 3)).astype(np.float32)
    be = Image(height=4, width=3, encoding="32FC1", is_bigendian=1, step=12)
    be.data = depth.astype(">f4").tobytes()
    assert np.array_equal(conv.depth_from_msg(be, use_cv_bridge=False), depth)


def test_depth_in_millimetres_becomes_metres() -> None:
    mm = np.array([[0, 500], [1234, 65535]], np.uint16)
    out = conv.depth_from_msg(conv.image_msg(mm, "16UC1"), use_cv_bridge=False)
    assert out.dtype == np.float32 and np.allclose(out, mm / 1000.0)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda m: setattr(m, "encoding", "yuv422"), "encoding"),
        (lambda m: setattr(m, "encoding", "32FC1"), "expected one of"),
        (lambda m: setattr(m, "data", b""), "empty"),
        (lambda m: setattr(m, "data", bytes(m.data)[:-1]), "bytes"),
        (lambda m: setattr(m, "step", 3), "step"),
        (lambda m: setattr(m, "height", 0), "empty"),
    ],
)
def test_bad_colour_images_are_refused(mutate, match: str) -> None:
    msg = conv.image_msg(RGB, "rgb8")
    mutate(msg)
    with pytest.raises(BadInput, match=match):
        conv.rgb_from_msg(msg, use_cv_bridge=False)


def test_depth_with_a_colour_encoding_is_refused() -> None:
    with pytest.raises(BadInput, match="depth image has encoding 'rgb8'"):
        conv.depth_from_msg(conv.image_msg(RGB, "rgb8"), use_cv_bridge=False)


def test_camera_info_round_trip_and_uncalibrated() -> None:
    intr = CameraIntrinsics.from_fov(45.0, 64, 48)
    assert conv.intrinsics_from_msg(conv.camera_info_msg(intr)) == intr
    with pytest.raises(BadInput, match="not calibrated"):
        conv.intrinsics_from_msg(CameraInfo(width=64, height=48))


def test_pose_round_trip_and_bad_quaternion() -> None:
    rot = rotation_from_up_forward(np.array([0.2, -0.3, 0.9]), np.array([1.0, 0.0, 0.0]))
    pose = Pose(np.array([0.1, -0.2, 0.7]), rot, "camera_color_optical_frame")
    back = conv.pose_from_msg(conv.pose_msg(pose, Header()))
    assert np.allclose(back.position, pose.position) and np.allclose(back.rotation, rot)
    bad = conv.pose_msg(pose, Header())
    bad.pose.orientation.w = 5.0
    with pytest.raises(BadInput, match="unit quaternion"):
        conv.pose_from_msg(bad)


def test_cv_bridge_and_numpy_paths_agree() -> None:
    if not conv.cv_bridge_available():
        pytest.skip(
            "cv_bridge is not installed here (no ROS 2 cv_bridge wheel on PyPI); "
            "this runs on a full ROS 2 Jazzy install"
        )
    for arr, enc in ((RGB, "rgb8"), (RGB[..., ::-1], "bgr8")):
        msg = conv.image_msg(arr, enc)
        assert np.array_equal(conv.rgb_from_msg(msg, True), conv.rgb_from_msg(msg, False))
    for arr, enc in ((np.array([[1, 2]], np.uint16), "16UC1"), (np.array([[0.5, 1.5]], np.float32), "32FC1")):
        msg = conv.image_msg(arr, enc)
        assert np.array_equal(conv.depth_from_msg(msg, True), conv.depth_from_msg(msg, False))
