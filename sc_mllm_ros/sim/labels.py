"""Ground truth, the paper's failure labels, and the automatic position and rotation experts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from sc_mllm_ros.causes import CAUSES  # one taxonomy for prompts, labels and messages
from sc_mllm_ros.geometry import (
    angle_between_deg,
    in_mask,
    Pose,
    rotation_from_up_forward,
    ROTATION_LIMIT_DEG,
)


@dataclass(frozen=True)
class GroundTruth:
    """Per-scene ground truth, everything in the camera optical frame / image of the initial observation."""

    affordance_mask: np.ndarray  # HxW bool: where a pull succeeds (executed grid), or the part mask
    plane_normal: np.ndarray  # outward normal of the movable plane
    contact: tuple[float, float]  # best contact pixel (row, col)
    contact_point: np.ndarray  # the same point in 3D
    up: np.ndarray  # approach axis = -plane_normal
    forward: np.ndarray
    part_mask: np.ndarray | None = None  # HxW bool, pixels of the target part (including its handle)

    @property
    def pose(self) -> Pose:
        return Pose(
            position=self.contact_point.copy(), rotation=rotation_from_up_forward(self.up, self.forward)
        )


def in_affordance(gt: GroundTruth, contact: tuple[float, float]) -> bool:
    """Whether a (row, col) pixel lies on the movable part (pixels outside the image do not)."""
    return in_mask(gt.affordance_mask, contact)


def rotation_error_deg(gt: GroundTruth, up: np.ndarray) -> float:
    """Angle between an approach axis and the movable plane's (inward) normal."""
    return angle_between_deg(up, -np.asarray(gt.plane_normal))


def failure_cause(gt: GroundTruth, contact: tuple[float, float], up: np.ndarray) -> str:
    """The paper's label: position (contact off the affordance), rotation (> 30 deg), both, or success."""
    position = not in_affordance(gt, contact)
    rotation = rotation_error_deg(gt, up) > ROTATION_LIMIT_DEG
    return CAUSES[int(position) + 2 * int(rotation)]


def rotate_towards(v: np.ndarray, angle_deg: float, rng: np.random.Generator) -> np.ndarray:
    """``v`` tilted by ``angle_deg`` about a random axis perpendicular to it."""
    v = np.asarray(v, dtype=float) / np.linalg.norm(v)
    axis = np.cross(v, rng.normal(size=3))
    axis /= np.linalg.norm(axis)
    return Rotation.from_rotvec(np.deg2rad(angle_deg) * axis).apply(v)


def nearest_mask_pixel(mask: np.ndarray, pixel: tuple[float, float]) -> tuple[float, float]:
    """The affordance pixel closest to ``pixel`` (itself when it is already on the mask)."""
    if in_mask(mask, pixel):
        return float(pixel[0]), float(pixel[1])
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("the affordance mask is empty: the movable part is not visible")
    i = int(np.argmin((rows - pixel[0]) ** 2 + (cols - pixel[1]) ** 2))
    return float(rows[i]), float(cols[i])


@dataclass(frozen=True)
class PositionExpert:
    """Affordance map, then point selection: a noisy copy of the best contact, kept on the movable part."""

    noise_px: float = 2.0

    def hint(self, gt: GroundTruth, rng: np.random.Generator) -> tuple[float, float]:
        if self.noise_px < 0:
            raise ValueError(f"noise_px must be >= 0, got {self.noise_px}")
        noisy = np.asarray(gt.contact, dtype=float) + rng.normal(0.0, self.noise_px, size=2)
        return nearest_mask_pixel(gt.affordance_mask, (float(noisy[0]), float(noisy[1])))


@dataclass(frozen=True)
class RotationExpert:
    """A grasp-detector stand-in: the inward plane normal tilted by |N(0, noise_deg)|, capped below 30 deg."""

    noise_deg: float = 6.0

    def hint(self, gt: GroundTruth, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.noise_deg < 0:
            raise ValueError(f"noise_deg must be >= 0, got {self.noise_deg}")
        tilt = min(abs(rng.normal(0.0, self.noise_deg)), 0.8 * ROTATION_LIMIT_DEG)
        up = rotate_towards(gt.up, tilt, rng)
        rot = rotation_from_up_forward(up, gt.forward)
        return rot[:, 2], rot[:, 0]
