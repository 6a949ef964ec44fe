"""Every message <-> numpy/dataclass conversion of the nodes, in one place.

Images go through cv_bridge where it is installed (a full ROS 2 install) and through an equivalent
numpy path otherwise; both give the same arrays (tested against each other where both exist).
Every conversion refuses bad input with :class:`~sc_mllm_ros.episode.record.BadInput`.
"""

from __future__ import annotations

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, PoseStamped, Vector3
import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from sc_mllm_msgs.msg import ExecutionOutcome, FailureReport, PosePrediction
from sc_mllm_ros.causes import Cause
from sc_mllm_ros.episode.loop import ArmOutcome
from sc_mllm_ros.episode.record import Attempt, BadInput
from sc_mllm_ros.geometry import CameraIntrinsics, Pose, rotation_from_quaternion

# encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono8": ("u1", 1),
    "16UC1": ("u2", 1),
    "mono16": ("u2", 1),
    "32FC1": ("f4", 1),
}
OPTICAL_FRAME = "camera_color_optical_frame"  # the camera frame every goal and answer is expressed in
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8")
DEPTH_ENCODINGS = ("16UC1", "32FC1")  # REP 118: millimetres as uint16 or metres as float32
CAUSE_CODES = {
    Cause.SUCCESS: FailureReport.CAUSE_NONE,
    Cause.POSITION: FailureReport.CAUSE_POSITION,
    Cause.ROTATION: FailureReport.CAUSE_ROTATION,
    Cause.POSITION_AND_ROTATION: FailureReport.CAUSE_POSITION_AND_ROTATION,
}


def cv_bridge_available() -> bool:
    try:
        import cv_bridge  # noqa: F401
    except ImportError:
        return False
    return True


def _raw_array(msg: Image) -> np.ndarray:
    """The image's pixels as an HxWxC array of its encoding, with every size checked."""
    if msg.encoding not in ENCODINGS:
        raise BadInput(f"unsupported image encoding '{msg.encoding}' (supported: {', '.join(ENCODINGS)})")
    if msg.height == 0 or msg.width == 0 or len(msg.data) == 0:
        raise BadInput(f"image is empty ({msg.width}x{msg.height}, {len(msg.data)} bytes)")
    kind, channels = ENCODINGS[msg.encoding]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row_bytes = msg.width * channels * dtype.itemsize
    if msg.step < row_bytes or len(msg.data) != msg.step * msg.height:
        raise BadInput(
            f"image data has {len(msg.data)} bytes, expected step {msg.step} x height "
            f"{msg.height} with step >= {row_bytes} for {msg.width} px of {msg.encoding}"
        )
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)[:, :row_bytes]
    arr = np.ascontiguousarray(rows).view(dtype).reshape(msg.height, msg.width, channels)
    return arr.astype(dtype.newbyteorder("="))


def rgb_from_msg(msg: Image, use_cv_bridge: bool | None = None) -> np.ndarray:
    """uint8 HxWx3 RGB of a colour image (rgb8, bgr8, rgba8, bgra8)."""
    if msg.encoding not in COLOR_ENCODINGS:
        raise BadInput(
            f"colour image has encoding '{msg.encoding}', expected one of {', '.join(COLOR_ENCODINGS)}"
        )
    if use_cv_bridge if use_cv_bridge is not None else cv_bridge_available():
        _raw_array(msg)  # the same size checks on both paths
        from cv_bridge import CvBridge

        return np.ascontiguousarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding="rgb8"))
    arr = _raw_array(msg)[..., :3]
    return np.ascontiguousarray(arr[..., ::-1] if msg.encoding.startswith("bgr") else arr)


def depth_from_msg(msg: Image, use_cv_bridge: bool | None = None) -> np.ndarray:
    """float32 HxW depth in metres (16UC1 millimetres or 32FC1 metres); 0 stays 0 (no reading)."""
    if msg.encoding not in DEPTH_ENCODINGS:
        raise BadInput(
            f"depth image has encoding '{msg.encoding}', expected one of {', '.join(DEPTH_ENCODINGS)}"
        )
    if use_cv_bridge if use_cv_bridge is not None else cv_bridge_available():
        _raw_array(msg)
        from cv_bridge import CvBridge

        arr = np.asarray(CvBridge().imgmsg_to_cv2(msg, desired_encoding="passthrough"))
    else:
        arr = _raw_array(msg)[..., 0]
    return arr.astype(np.float32) / 1000.0 if msg.encoding == "16UC1" else arr.astype(np.float32)


def image_msg(arr: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image message of an HxW or HxWxC array (the inverse of the two readers)."""
    kind, channels = ENCODINGS[encoding]
    arr = np.ascontiguousarray(arr, dtype=np.dtype(kind).newbyteorder("<"))
    if arr.ndim != (2 if channels == 1 else 3):
        raise BadInput(f"array of shape {arr.shape} cannot be a {encoding} image")
    msg = Image(
        header=header or Header(),
        height=arr.shape[0],
        width=arr.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=arr.shape[1] * channels * arr.itemsize,
    )
    msg.data = arr.tobytes()
    return msg


def intrinsics_from_msg(msg: CameraInfo) -> CameraIntrinsics:
    k = np.asarray(msg.k, dtype=float)
    ok = msg.width > 0 and msg.height > 0 and k.shape == (9,) and np.all(np.isfinite(k))
    if not (ok and k[0] > 0 and k[4] > 0):
        raise BadInput(
            f"camera_info is not calibrated (width {msg.width}, height {msg.height}, K {k.tolist()})"
        )
    return CameraIntrinsics.from_k(k, width=msg.width, height=msg.height)


def camera_info_msg(intr: CameraIntrinsics, header: Header | None = None) -> CameraInfo:
    msg = CameraInfo(
        header=header or Header(), width=intr.width, height=intr.height, distortion_model="plumb_bob"
    )
    msg.k = intr.k.reshape(-1).tolist()
    msg.d = [0.0] * 5
    msg.r = np.eye(3).reshape(-1).tolist()
    msg.p = np.hstack([intr.k, np.zeros((3, 1))]).reshape(-1).tolist()
    return msg


def vector3(v) -> Vector3:
    x, y, z = (float(c) for c in v)
    return Vector3(x=x, y=y, z=z)


def array3(v: Vector3) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=float)


def pose_msg(pose: Pose, header: Header) -> PoseStamped:
    msg = PoseStamped(header=header)
    msg.header.frame_id = pose.frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(c) for c in pose.position)
    q.x, q.y, q.z, q.w = (float(c) for c in pose.quaternion)
    return msg


def pose_from_msg(msg: PoseStamped) -> Pose:
    p, q = msg.pose.position, msg.pose.orientation
    quat = np.array([q.x, q.y, q.z, q.w], dtype=float)
    n = np.linalg.norm(quat)
    if not np.isfinite(n) or abs(n - 1.0) > 1e-3:
        raise BadInput(f"pose orientation is not a unit quaternion: {quat.tolist()}")
    return Pose(
        np.array([p.x, p.y, p.z], dtype=float),
        rotation_from_quaternion(quat / n),
        frame_id=msg.header.frame_id or OPTICAL_FRAME,
    )


def prediction_msg(
    att: Attempt, episode_id: str, task: str, header: Header, frame_id: str, model_version: str = ""
) -> PosePrediction:
    msg = PosePrediction(
        header=header,
        episode_id=episode_id,
        task=task,
        prompt_family=att.family,
        contact_row=int(att.contact[0]),
        contact_col=int(att.contact[1]),
        up=vector3(att.up),
        forward=vector3(att.forward),
        answer_text=att.text,
        model_version=model_version,
        adapter_version=int(att.adapter_version),
        latency_s=float(att.latency_s),
    )
    pose = att.pose
    msg.pose = pose_msg(Pose(pose.position, pose.rotation, frame_id), header)
    return msg


def report_msg(
    episode_id: str,
    attempt: int,
    success: bool,
    cause: str,
    text: str,
    adapter_version: int,
    header: Header,
    confidence: float = float("nan"),
) -> FailureReport:
    return FailureReport(
        confidence=float(confidence),
        header=header,
        episode_id=episode_id,
        attempt=int(attempt),
        success=success,
        cause=CAUSE_CODES[cause],
        answer_text=text,
        adapter_version=int(adapter_version),
    )


def arm_outcome(completed: bool, message: str, outcome: ExecutionOutcome | None) -> ArmOutcome:
    """The loop's view of an execute-action result and the end state the arm published for it."""
    if outcome is None:
        return ArmOutcome(completed, message)
    return ArmOutcome(
        completed,
        message,
        ee_pose=pose_from_msg(outcome.final_ee_pose),
        end_rgb=rgb_from_msg(outcome.end_image),
        intrinsics=intrinsics_from_msg(outcome.camera_info),
    )


def stamp_seconds(t: Time) -> float:
    return t.sec + t.nanosec * 1e-9


def point(v) -> Point:
    x, y, z = (float(c) for c in v)
    return Point(x=x, y=y, z=z)
