"""The shared camera and gripper conventions of sc_mllm_ros.geometry."""

from hypothesis import assume, given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from sc_mllm_ros.geometry import (
    angle_between_deg,
    CameraIntrinsics,
    deproject,
    Pose,
    project,
    quaternion_from_rotation,
    rotation_from_quaternion,
    rotation_from_up_forward,
    up_forward_from_rotation,
)

INTR = CameraIntrinsics.from_fov(45.0, width=112, height=96)
component = st.floats(-1, 1, allow_nan=False)
unit = st.tuples(component, component, component).map(np.array).filter(lambda v: np.linalg.norm(v) > 0.1)


@settings(max_examples=200, deadline=None)
@given(row=st.floats(0, 95), col=st.floats(0, 111), depth=st.floats(0.05, 5.0))
def test_pixel_depth_round_trip(row: float, col: float, depth: float) -> None:
    point = deproject((row, col), depth, INTR)
    assert point[2] == pytest.approx(depth)
    assert project(point, INTR) == pytest.approx((row, col), abs=1e-6)


def test_pixel_convention_is_row_then_column() -> None:
    # Right of the principal point is +x in the optical frame; below it is +y.
    right = deproject((INTR.cy, INTR.cx + 10), 1.0, INTR)
    below = deproject((INTR.cy + 10, INTR.cx), 1.0, INTR)
    assert right[0] > 0 and abs(right[1]) < 1e-9
    assert below[1] > 0 and abs(below[0]) < 1e-9


@pytest.mark.parametrize("depth", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_depth_is_rejected(depth: float) -> None:
    with pytest.raises(ValueError, match="depth"):
        deproject((10, 10), depth, INTR)


@settings(max_examples=200, deadline=None)
@given(up=unit, forward=unit)
def test_rotation_from_up_forward_is_proper_and_keeps_up(up: np.ndarray, forward: np.ndarray) -> None:
    assume(2 < angle_between_deg(up, forward) < 178)
    rot = rotation_from_up_forward(up, forward)
    np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-9)
    assert np.linalg.det(rot) == pytest.approx(1.0)
    got_up, got_forward = up_forward_from_rotation(rot)
    np.testing.assert_allclose(got_up, up / np.linalg.norm(up), atol=1e-9)
    assert angle_between_deg(got_forward, forward) < 90
    np.testing.assert_allclose(rotation_from_quaternion(quaternion_from_rotation(rot)), rot, atol=1e-9)


def test_intrinsics_scale_with_resolution() -> None:
    big = INTR.scaled(336, 288)
    point = np.array([0.1, -0.05, 0.8])
    r_small, c_small = project(point, INTR)
    r_big, c_big = project(point, big)
    assert r_big == pytest.approx((r_small + 0.5) * 3 - 0.5)
    assert c_big == pytest.approx((c_small + 0.5) * 3 - 0.5)
    np.testing.assert_allclose(CameraIntrinsics.from_k(big.k.ravel(), 336, 288).k, big.k)


def test_pose_transform_composes() -> None:
    rot = rotation_from_up_forward(np.array([0, 0, 1.0]), np.array([1.0, 0, 0]))
    pose = Pose(position=np.array([0.1, 0.2, 0.3]), rotation=rot)
    shift = np.eye(4)
    shift[:3, 3] = [1.0, 0.0, 0.0]
    moved = pose.transformed(shift, "world")
    np.testing.assert_allclose(moved.position, [1.1, 0.2, 0.3])
    assert moved.frame_id == "world"
    np.testing.assert_allclose(moved.up, [0, 0, 1.0])


@pytest.mark.parametrize("forward", [[0, 0, 2.0], [0, 0, -1.0], [0, 0, 0]])
def test_degenerate_directions_are_rejected(forward: list[float]) -> None:
    with pytest.raises(ValueError, match="forward|length"):
        rotation_from_up_forward(np.array([0, 0, 1.0]), np.array(forward))
    with pytest.raises(ValueError, match="length"):
        rotation_from_up_forward(np.zeros(3), np.array([1.0, 0, 0]))
