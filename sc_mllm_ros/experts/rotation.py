"""The rotation expert (an AnyGrasp stand-in): a robust plane fit to the depth around the contact pixel.

Neither Open3D nor scikit-learn is in the project's environment, so the fit is scipy's robust
``least_squares`` (Cauchy loss): a redescending-like M-estimator that down-weights points a few noise scales
off the plane, initialised by the SVD of the window's inner half so that the surface under the hint (not a
neighbouring panel or the background) is the one found.  Points further than ``1.5 * radius_m`` from the
contact in 3D are dropped first: behind an edge they belong to another surface.

It degrades honestly: ``confidence`` is the fraction of the whole window that lies on the fitted plane, so
depth holes (NaN), a second surface near an edge and a protruding handle all lower it; a window with too few
valid points raises :class:`NoDepthError` instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from sc_mllm_ros.geometry import CameraIntrinsics, rotation_from_up_forward

# The camera optical frame's "up" (-y) and "right" (+x): the gripper's forward is the first, projected onto
# the plane (the second when the camera looks straight along the normal's y component).
CAMERA_UP = np.array([0.0, -1.0, 0.0])
CAMERA_RIGHT = np.array([1.0, 0.0, 0.0])


class ExpertError(ValueError):
    """An expert cannot give a hint for this input; the message says why."""


class NoDepthError(ExpertError):
    """The depth window around the pixel has too few valid points for a plane."""


@dataclass(frozen=True)
class RotationExpertConfig:
    radius_m: float = 0.03  # half-width of the window on the surface, metres
    min_radius_px: int = 3
    max_radius_px: int = 40
    noise_m: float = 0.004  # depth noise scale: the Cauchy loss's f_scale
    inlier_k: float = 2.5  # inliers lie within inlier_k * noise_m of the plane
    min_points: int = 8


@dataclass(frozen=True)
class PlaneFit:
    """A plane at a pixel, everything in the camera optical frame."""

    normal: np.ndarray  # unit outward normal (facing the camera)
    point: np.ndarray  # the contact pixel's ray intersected with the plane
    up: np.ndarray  # approach axis = -normal
    forward: np.ndarray  # gripper x axis: the camera's up projected onto the plane
    confidence: float  # inliers / all window pixels (NaN pixels count as misses)
    inlier_ratio: float  # inliers / valid points
    valid_ratio: float  # valid (finite, positive) depth pixels / window pixels
    rms_m: float  # RMS distance of the inliers to the plane
    n_points: int  # points the plane was fitted to


def _window(depth: np.ndarray, pixel: tuple[float, float], r: int) -> tuple[np.ndarray, ...]:
    h, w = depth.shape
    row, col = int(round(pixel[0])), int(round(pixel[1]))
    r0, r1, c0, c1 = max(row - r, 0), min(row + r + 1, h), max(col - r, 0), min(col + r + 1, w)
    rows, cols = np.mgrid[r0:r1, c0:c1]
    return rows.ravel(), cols.ravel(), depth[r0:r1, c0:c1].ravel().astype(float)


def _lift(rows: np.ndarray, cols: np.ndarray, z: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    return np.column_stack([(cols - intr.cx) / intr.fx * z, (rows - intr.cy) / intr.fy * z, z])


def _ray(pixel: tuple[float, float], intr: CameraIntrinsics) -> np.ndarray:
    return np.array([(pixel[1] - intr.cx) / intr.fx, (pixel[0] - intr.cy) / intr.fy, 1.0])


class RotationExpert:
    """Plane normal and gripper orientation at a pixel of a depth image."""

    def __init__(self, config: RotationExpertConfig | None = None):
        self.config = config or RotationExpertConfig()

    def fit(self, depth: np.ndarray, intr: CameraIntrinsics, pixel: tuple[float, float]) -> PlaneFit:
        """Fit the plane under ``pixel`` (row, col) of ``depth`` (HxW metres, NaN = no return)."""
        cfg = self.config
        depth = np.asarray(depth)
        if depth.ndim != 2:
            raise ExpertError(f"depth must be HxW, got shape {depth.shape}")
        h, w = depth.shape
        if not (np.isfinite(pixel[0]) and np.isfinite(pixel[1])) or not (
            -0.5 <= pixel[0] <= h - 0.5 and -0.5 <= pixel[1] <= w - 0.5
        ):
            raise ExpertError(f"pixel (row, col) = {tuple(pixel)} is outside the {h}x{w} depth image")
        # The centre depth sets the window's size in pixels; a hole at the pixel itself is bridged by its
        # neighbours (median of a small ring), a hole everywhere near it is refused.
        _, _, z_near = _window(depth, pixel, cfg.min_radius_px)
        z_near = z_near[np.isfinite(z_near) & (z_near > 0)]
        if z_near.size == 0:
            raise NoDepthError(
                f"no valid depth within {cfg.min_radius_px} px of pixel {tuple(round(p, 1) for p in pixel)}: "
                "the depth image has a hole there"
            )
        z0 = float(np.median(z_near))
        r_px = round(cfg.radius_m * max(intr.fx, intr.fy) / z0)
        centre = _ray(pixel, intr) * z0
        # Sparse depth (dropout, depth edges) widens the window once, to twice the size, before refusing.
        for scale in (1, 2):
            r = int(np.clip(scale * r_px, cfg.min_radius_px, cfg.max_radius_px))
            rows, cols, z = _window(depth, pixel, r)
            total = z.size
            ok = np.isfinite(z) & (z > 0)
            rows, cols = rows[ok], cols[ok]
            pts = _lift(rows, cols, z[ok], intr)
            near = np.linalg.norm(pts - centre, axis=1) < 1.5 * scale * cfg.radius_m
            if near.sum() >= cfg.min_points:
                break
        if near.sum() < cfg.min_points:
            raise NoDepthError(
                f"only {int(near.sum())} valid depth points (of {total}) within {r} px of pixel "
                f"{tuple(round(p, 1) for p in pixel)}; need {cfg.min_points} for a plane"
            )
        inner = near & (np.hypot(rows - pixel[0], cols - pixel[1]) <= r / 2)
        normal, offset = self._robust_plane(pts[near], inner[near])
        # Scored on every valid point of the window: far points on the same (steep) plane count, a second
        # surface behind an edge does not.
        res = np.abs(pts @ normal - offset)
        inliers = res < cfg.inlier_k * cfg.noise_m
        ray = _ray(pixel, intr)
        if np.dot(normal, ray) > 0:  # the outward normal faces the camera
            normal, offset = -normal, -offset
        denom = float(np.dot(normal, ray))
        # A plane seen edge-on gives no usable intersection; the centre depth stands in.
        point = ray * (offset / denom) if abs(denom) > 1e-3 else centre
        up = -normal
        forward = CAMERA_UP - np.dot(CAMERA_UP, up) * up
        if np.linalg.norm(forward) < 0.2:
            forward = CAMERA_RIGHT - np.dot(CAMERA_RIGHT, up) * up
        rot = rotation_from_up_forward(up, forward)
        n_in = int(inliers.sum())
        return PlaneFit(
            normal=normal,
            point=point,
            up=rot[:, 2],
            forward=rot[:, 0],
            confidence=n_in / total,
            inlier_ratio=n_in / len(pts),
            valid_ratio=len(pts) / total,
            rms_m=float(np.sqrt(np.mean(res[inliers] ** 2))) if n_in else float("inf"),
            n_points=int(near.sum()),
        )

    def _robust_plane(self, pts: np.ndarray, inner: np.ndarray) -> tuple[np.ndarray, float]:
        """Unit normal n and offset d of the plane n.p = d (Cauchy-loss least squares from an SVD start)."""
        seed = pts[inner] if inner.sum() >= 3 else pts
        c = seed.mean(axis=0)
        n0 = np.linalg.svd(seed - c, full_matrices=False)[2][-1]
        # Two tangent directions: the normal is n0 + a e1 + b e2, well conditioned near the start.
        e1 = np.cross(n0, [1.0, 0.0, 0.0] if abs(n0[0]) < 0.9 else [0.0, 1.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n0, e1)

        def normal_of(x: np.ndarray) -> np.ndarray:
            n = n0 + x[0] * e1 + x[1] * e2
            return n / np.linalg.norm(n)

        def residuals(x: np.ndarray) -> np.ndarray:
            return pts @ normal_of(x) - x[2]

        sol = least_squares(residuals, [0.0, 0.0, float(c @ n0)], loss="cauchy", f_scale=self.config.noise_m)
        return normal_of(sol.x), float(sol.x[2])
