"""Camera and gripper geometry shared by the model codec and the simulator (pure numpy).

Conventions, fixed here once for the whole project:

* Pixels are ``(row, col)`` integer or float pairs, origin at the top-left pixel centre.
  (ManipLLM's answer text writes the contact point as ``[x, y]`` with x the ROW and y the COLUMN;
  this matches.)
* The camera frame is the ROS optical frame (REP 103 ``*_optical_frame``): +x right, +y down,
  +z forward into the scene.  Depth is the z coordinate in metres.
* A gripper orientation is given by two unit vectors in the camera frame: ``up`` is the approach
  axis (the gripper z axis, pointing into the surface, i.e. minus the surface normal) and
  ``forward`` is the gripper x axis.  The rotation matrix has columns ``[forward, up x forward, up]``.
* Quaternions are ``(x, y, z, w)`` like ``geometry_msgs/Quaternion``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import math

import numpy as np
from scipy.spatial.transform import Rotation

ROTATION_LIMIT_DEG = 30.0  # paper: rotation error when the approach axis is > 30 deg off the plane normal
ANSWER_SIZE = 336  # the paper's answer frame: contacts are integer (row, col) pixels of a 336 x 336 image


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image of ``height`` x ``width`` pixels (sensor_msgs/CameraInfo K)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_fov(cls, fovy_deg: float, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics of an ideal camera with vertical field of view ``fovy_deg`` (MuJoCo's convention)."""
        f = 0.5 * height / np.tan(np.deg2rad(fovy_deg) / 2.0)
        return cls(fx=f, fy=f, cx=(width - 1) / 2.0, cy=(height - 1) / 2.0, width=width, height=height)

    @classmethod
    def from_k(cls, k: np.ndarray | list[float], width: int, height: int) -> CameraIntrinsics:
        """From a row-major 3x3 K matrix (CameraInfo.k)."""
        k = np.asarray(k, dtype=float).reshape(3, 3)
        return cls(fx=k[0, 0], fy=k[1, 1], cx=k[0, 2], cy=k[1, 2], width=width, height=height)

    @property
    def k(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def to_dict(self) -> dict:
        return asdict(self)

    def scaled(self, width: int, height: int) -> CameraIntrinsics:
        """The same camera rendered at another resolution."""
        sx, sy = width / self.width, height / self.height
        return CameraIntrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )


def deproject(pixel: tuple[float, float], depth: float, intr: CameraIntrinsics) -> np.ndarray:
    """Lift a ``(row, col)`` pixel with its depth (metres) to a 3D point in the camera frame."""
    if not np.isfinite(depth) or depth <= 0.0:
        raise ValueError(f"depth at pixel {tuple(pixel)} must be a positive finite number, got {depth}")
    row, col = pixel
    x = (col - intr.cx) / intr.fx * depth
    y = (row - intr.cy) / intr.fy * depth
    return np.array([x, y, depth], dtype=float)


def lift_pixel(
    depth: np.ndarray, pixel: tuple[float, float], intr: CameraIntrinsics, window: int = 5
) -> np.ndarray:
    """Lift a pixel with a noisy depth image (NaN or 0 = dropout): the median of a ``window`` square.

    One pixel of a RealSense-like image is often missing or off by millimetres; the median of its
    neighbourhood is robust to both.  The window is centred on the nearest pixel inside the image (answers
    at the border round outwards); raises ``ValueError`` when the whole window is missing.
    """
    h, w = depth.shape
    r = min(max(int(round(float(pixel[0]))), 0), h - 1)
    c = min(max(int(round(float(pixel[1]))), 0), w - 1)
    k = window // 2
    patch = depth[max(0, r - k) : r + k + 1, max(0, c - k) : c + k + 1]
    valid = patch[np.isfinite(patch) & (patch > 0)]
    if valid.size == 0:
        raise ValueError(f"no depth within {window} px of pixel {tuple(pixel)}")
    return deproject(pixel, float(np.median(valid)), intr)


def local_normal(
    depth: np.ndarray, pixel: tuple[float, float], intr: CameraIntrinsics, window: int = 9
) -> np.ndarray:
    """The depth image's local plane normal at a pixel (camera frame, facing the camera).

    A least-squares plane through the valid points of a ``window`` square; ``ValueError`` with < 3.
    """
    h, w = depth.shape
    r, c = int(round(float(pixel[0]))), int(round(float(pixel[1])))
    k = window // 2
    rows, cols = np.mgrid[max(0, r - k) : min(h, r + k + 1), max(0, c - k) : min(w, c + k + 1)]
    z = depth[rows, cols]
    ok = np.isfinite(z) & (z > 0)
    if ok.sum() < 3:
        raise ValueError(f"too little depth around pixel {tuple(pixel)} for a normal")
    z = z[ok]
    pts = np.column_stack([(cols[ok] - intr.cx) / intr.fx * z, (rows[ok] - intr.cy) / intr.fy * z, z])
    _, _, vt = np.linalg.svd(pts - pts.mean(axis=0))
    n = vt[2]
    return -n if np.dot(n, pts.mean(axis=0)) > 0 else n


def project(point: np.ndarray, intr: CameraIntrinsics) -> tuple[float, float]:
    """Project a 3D camera-frame point to a ``(row, col)`` pixel."""
    x, y, z = np.asarray(point, dtype=float)
    if z <= 0.0:
        raise ValueError(f"point {point} is behind the camera")
    return (intr.fy * y / z + intr.cy, intr.fx * x / z + intr.cx)


def rotation_from_up_forward(up: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Orthonormal rotation with columns ``[forward, up x forward, up]``.

    ``up`` is kept as given (normalised); ``forward`` is re-orthogonalised against it (Gram-Schmidt),
    which is how quantised directions from answer text become a proper rotation.
    """
    up = np.asarray(up, dtype=float)
    forward = np.asarray(forward, dtype=float)
    nu = np.linalg.norm(up)
    if not np.isfinite(nu) or nu < 1e-6:
        raise ValueError(f"up direction {up.tolist()} has no length")
    up = up / nu
    forward = forward - np.dot(forward, up) * up
    nf = np.linalg.norm(forward)
    if not np.isfinite(nf) or nf < 1e-6:
        raise ValueError("forward direction is parallel to the up direction")
    forward = forward / nf
    return np.column_stack([forward, np.cross(up, forward), up])


def up_forward_from_rotation(rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`rotation_from_up_forward`."""
    rot = np.asarray(rot, dtype=float)
    return rot[:, 2].copy(), rot[:, 0].copy()


def quaternion_from_rotation(rot: np.ndarray) -> np.ndarray:
    """``(x, y, z, w)`` quaternion of a rotation matrix."""
    return Rotation.from_matrix(rot).as_quat()


def rotation_from_quaternion(quat: np.ndarray) -> np.ndarray:
    """Rotation matrix of an ``(x, y, z, w)`` quaternion."""
    return Rotation.from_quat(quat).as_matrix()


def angle_between_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two vectors in degrees."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    c = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))


@dataclass(frozen=True)
class Pose:
    """A 6-DoF pose: ``position`` (3,) and ``rotation`` (3, 3), both in the frame ``frame_id``."""

    position: np.ndarray
    rotation: np.ndarray
    frame_id: str = "camera_color_optical_frame"

    @property
    def quaternion(self) -> np.ndarray:
        return quaternion_from_rotation(self.rotation)

    @property
    def up(self) -> np.ndarray:
        return self.rotation[:, 2]

    @property
    def forward(self) -> np.ndarray:
        return self.rotation[:, 0]

    def matrix(self) -> np.ndarray:
        """Homogeneous 4x4 transform."""
        t = np.eye(4)
        t[:3, :3] = self.rotation
        t[:3, 3] = self.position
        return t

    def transformed(self, parent_from_frame: np.ndarray, frame_id: str) -> Pose:
        """This pose expressed in another frame, given the 4x4 transform into it."""
        m = parent_from_frame @ self.matrix()
        return Pose(position=m[:3, 3].copy(), rotation=m[:3, :3].copy(), frame_id=frame_id)


def in_mask(mask: np.ndarray, pixel: tuple[float, float]) -> bool:
    """Whether the pixel nearest to ``pixel`` is inside the image and set in ``mask``."""
    h, w = mask.shape
    r, c = int(round(float(pixel[0]))), int(round(float(pixel[1])))
    return 0 <= r < h and 0 <= c < w and bool(mask[r, c])


def _hw(image_hw: tuple[int, int]) -> tuple[int, int]:
    h, w = int(image_hw[0]), int(image_hw[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"image size must be positive, got {image_hw}")
    return h, w


def pixel_to_answer(
    pixel: tuple[float, float], image_hw: tuple[int, int], size: int = ANSWER_SIZE
) -> tuple[int, int]:
    """Camera pixel (row, col) of an image of ``image_hw`` -> integer (row, col) of the answer frame.

    Pixel centres map to pixel centres (``a = (p + 0.5) * size / H - 0.5``), rounded to the nearest integer.
    """
    h, w = _hw(image_hw)
    row, col = float(pixel[0]), float(pixel[1])
    if not (math.isfinite(row) and math.isfinite(col)):
        raise ValueError(f"pixel {pixel} is not finite")
    if not (-0.5 <= row <= h - 0.5 and -0.5 <= col <= w - 0.5):
        raise ValueError(f"pixel (row, col) = ({row:.1f}, {col:.1f}) is outside the {h}x{w} image")
    a = (round((row + 0.5) * size / h - 0.5), round((col + 0.5) * size / w - 0.5))
    return min(max(a[0], 0), size - 1), min(max(a[1], 0), size - 1)


def answer_to_pixel(
    answer: tuple[int, int], image_hw: tuple[int, int], size: int = ANSWER_SIZE
) -> tuple[float, float]:
    """Integer (row, col) of the answer frame -> float camera pixel (row, col) of an image of ``image_hw``."""
    h, w = _hw(image_hw)
    r, c = int(answer[0]), int(answer[1])
    if not (0 <= r < size and 0 <= c < size):
        raise ValueError(f"answer point [{r}, {c}] is outside the {size}x{size} answer frame")
    return (r + 0.5) * h / size - 0.5, (c + 0.5) * w / size - 0.5


def to_pixel(p: tuple[float, float]) -> tuple[int, int]:
    """Round a sub-pixel (row, col) of the image to the integer pixel a hint names."""
    return int(round(p[0])), int(round(p[1]))
