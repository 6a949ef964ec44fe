import math

from hypothesis import given, settings
from hypothesis import strategies as st
import numpy as np
import pytest

from sc_mllm_ros.geometry import angle_between_deg, CameraIntrinsics, Pose, rotation_from_up_forward
from sc_mllm_ros.model import FailureAnswer, PoseAnswer
from sc_mllm_ros.model.codec import (
    answer_to_pixel,
    dequantize_direction,
    parse_failure_text,
    parse_pose_text,
    pixel_to_answer,
    pose_to_answer_values,
    quantize_direction,
)
from sc_mllm_ros.model.prompts import CAUSES, FAILURE_ANSWERS

unit = st.tuples(*[st.floats(-1, 1)] * 3).map(np.array).filter(lambda v: np.linalg.norm(v) > 0.1)
INTR = CameraIntrinsics.from_fov(58.0, 640, 480)


def _frame(up, fwd_seed):
    rot = rotation_from_up_forward(
        up,
        np.cross(up, fwd_seed)
        if np.linalg.norm(np.cross(up, fwd_seed)) > 0.1
        else np.cross(up, [0.3, 0.9, 0.1]),
    )
    return rot


@settings(max_examples=200, deadline=None)
@given(up=unit, fwd_seed=unit, row=st.floats(0, 479), col=st.floats(0, 639), depth=st.floats(0.3, 3.0))
def test_pose_text_pose_round_trip(up, fwd_seed, row, col, depth):
    from sc_mllm_ros.geometry import deproject

    rot = _frame(up, fwd_seed)
    pose = Pose(deproject((row, col), depth, INTR), rot)
    values = pose_to_answer_values(pose, INTR)
    text = PoseAnswer.from_values(values, (480, 640)).text
    ans = PoseAnswer.from_text(text, (480, 640))
    # Contact within one answer-frame pixel (640/336 camera pixels) of the truth.
    assert abs(ans.contact[0] - row) <= 0.5 * 480 / 336 + 1e-6
    assert abs(ans.contact[1] - col) <= 0.5 * 640 / 336 + 1e-6
    back = ans.to_pose(np.full((480, 640), depth), INTR)
    r = back.rotation
    assert np.allclose(r.T @ r, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1.0)
    # floor(v / 0.02) moves each component by < 0.02: a few degrees at most.
    assert angle_between_deg(back.up, pose.up) < 3.0
    assert angle_between_deg(back.forward, pose.forward) < 4.0
    assert np.linalg.norm(back.position - pose.position) < depth * 0.01 + 1e-6


@settings(max_examples=200, deadline=None)
@given(v=unit)
def test_quantize_is_floor_and_bounded(v):
    q = quantize_direction(v)
    n = v / np.linalg.norm(v)
    assert all(-50 <= x <= 50 for x in q)
    assert all(x <= c / 0.02 + 1e-6 and c / 0.02 - x < 1 + 1e-6 for x, c in zip(q, n))
    assert math.isclose(np.linalg.norm(dequantize_direction(q)), 1.0)


@given(row=st.integers(0, 335), col=st.integers(0, 335), h=st.integers(10, 1000), w=st.integers(10, 1000))
def test_answer_frame_round_trip(row, col, h, w):
    assert pixel_to_answer(answer_to_pixel((row, col), (h, w)), (h, w)) == (row, col)


def test_out_of_range_is_rejected_with_clear_errors():
    with pytest.raises(ValueError, match="outside the 480x640 image"):
        pixel_to_answer((500.0, 10.0), (480, 640))
    with pytest.raises(ValueError, match="outside the 336x336 answer frame"):
        answer_to_pixel((336, 0), (480, 640))
    with pytest.raises(ValueError, match="no finite length"):
        quantize_direction([0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="in \\[-50, 50\\]"):
        dequantize_direction([51, 0, 0])
    good = PoseAnswer.from_values(
        {"row": 1, "col": 2, "ux": 0, "uy": 0, "uz": 50, "fx": 50, "fy": 0, "fz": 0}, (336, 336)
    ).text
    with pytest.raises(ValueError, match="out of the 336x336"):
        parse_pose_text(good.replace("[1, 2]", "[400, 2]"))
    with pytest.raises(ValueError, match="direction component out of"):
        parse_pose_text(good.replace("[0, 0, 50]", "[0, 0, 70]"))
    with pytest.raises(ValueError, match="not a pose answer"):
        parse_pose_text("The contact point is somewhere")
    with pytest.raises(ValueError, match="cause must be one of"):
        FailureAnswer("gravity", "")


def test_to_pose_lifts_through_dropout_and_refuses_a_missing_window():
    ans = PoseAnswer.from_values(
        {"row": 168, "col": 168, "ux": 0, "uy": 0, "uz": 50, "fx": 50, "fy": 0, "fz": 0}, (480, 640)
    )
    depth = np.full((480, 640), 1.0)
    assert ans.to_pose(depth, INTR).position[2] == pytest.approx(1.0)
    r, c = round(ans.contact[0]), round(ans.contact[1])
    depth[r, c] = np.nan  # one dropout pixel at the contact: the window's median still lifts it
    assert ans.to_pose(depth, INTR).position[2] == pytest.approx(1.0)
    for bad in (np.nan, 0.0):
        depth[r - 2 : r + 3, c - 2 : c + 3] = bad
        with pytest.raises(ValueError, match="no depth within"):
            ans.to_pose(depth, INTR)
    mm = np.full((480, 640), 750, np.uint16)  # dataset depth PNGs are millimetres
    assert ans.to_pose(mm, INTR).position[2] == pytest.approx(0.75)


def test_failure_text_round_trip():
    for cause in CAUSES:
        assert parse_failure_text(FAILURE_ANSWERS[cause]) == cause
