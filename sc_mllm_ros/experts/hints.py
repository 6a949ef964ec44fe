"""The experts' one entry point: RGB-D + camera intrinsics + task -> a contact, an orientation, candidates."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sc_mllm_ros.episode.record import parse_task
from sc_mllm_ros.experts.position import PositionExpert
from sc_mllm_ros.experts.rotation import ExpertError, PlaneFit, RotationExpert
from sc_mllm_ros.geometry import ANSWER_SIZE, CameraIntrinsics, pixel_to_answer


@dataclass(frozen=True)
class Hints:
    """Expert feedback for one image; directions are unit vectors in the camera optical frame."""

    contact: tuple[int, int]  # (row, col) in the ANSWER_SIZE answer frame: candidates[0]
    pixel: tuple[float, float]  # the same point in the input image's pixels
    up: np.ndarray  # approach axis (minus the fitted plane's outward normal)
    forward: np.ndarray  # gripper x axis
    candidates: tuple[tuple[int, int], ...]  # answer frame, best first, pairwise separated
    candidate_pixels: tuple[tuple[float, float], ...]
    candidate_scores: tuple[float, ...]  # smoothed predicted pull success
    position_confidence: float  # candidate_scores[0]
    rotation_confidence: float  # fraction of the depth window on the fitted plane
    plane: PlaneFit
    # The plane fit at each candidate (None where the rotation expert refused), so that a correction after
    # a failed try can move to the next candidate with its own orientation.
    candidate_planes: tuple[PlaneFit | None, ...] = ()


def as_intrinsics(intrinsics: CameraIntrinsics | tuple | list, image_hw: tuple[int, int]) -> CameraIntrinsics:
    """A :class:`CameraIntrinsics` from one or from ``(fx, fy, cx, cy)`` for an image of ``image_hw``."""
    h, w = image_hw
    if isinstance(intrinsics, CameraIntrinsics):
        if (intrinsics.height, intrinsics.width) != (h, w):
            raise ExpertError(
                f"intrinsics are for {intrinsics.width}x{intrinsics.height} but the image is {w}x{h}"
            )
        return intrinsics
    values = [float(v) for v in intrinsics]
    if len(values) != 4 or not all(np.isfinite(values)) or values[0] <= 0 or values[1] <= 0:
        raise ExpertError(f"intrinsics must be (fx, fy, cx, cy) with positive focal lengths, got {values}")
    return CameraIntrinsics(*values, width=w, height=h)


class Experts:
    """The position expert (U-Net affordance map + point selection) and the rotation expert (plane fit)."""

    def __init__(self, position: PositionExpert, rotation: RotationExpert | None = None):
        self.position = position
        self.rotation = rotation or RotationExpert()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None) -> Experts:
        """The position expert's weights in ``path``; ``None`` or ``""``: the shipped ones."""
        return cls(PositionExpert.from_pretrained(path))

    def hints(
        self,
        rgb: np.ndarray,
        depth: np.ndarray,
        intrinsics: CameraIntrinsics | tuple | list,
        task: str,
        k: int | None = None,
    ) -> Hints:
        """Hints for ``task`` ("pull the top drawer") on an aligned RGB-D pair (depth in metres, NaN = hole).

        Raises :class:`ExpertError` (a ``ValueError``) with the reason when no hint can be given.
        """
        rgb, depth = np.asarray(rgb), np.asarray(depth)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ExpertError(f"RGB image must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
        if depth.shape != rgb.shape[:2]:
            raise ExpertError(f"depth {depth.shape} must be aligned to the RGB image {rgb.shape[:2]}")
        intr = as_intrinsics(intrinsics, depth.shape)
        position = self.position.hint(rgb, depth, parse_task(task), k)
        plane = self.rotation.fit(depth, intr, position.pixels[0])
        candidates = tuple(pixel_to_answer(p, depth.shape, ANSWER_SIZE) for p in position.pixels)
        planes = [plane]
        for p in position.pixels[1:]:
            try:
                planes.append(self.rotation.fit(depth, intr, p))
            except ExpertError:
                planes.append(None)
        return Hints(
            contact=candidates[0],
            pixel=position.pixels[0],
            up=plane.up,
            forward=plane.forward,
            candidates=candidates,
            candidate_pixels=position.pixels,
            candidate_scores=position.scores,
            position_confidence=position.scores[0],
            rotation_confidence=plane.confidence,
            plane=plane,
            candidate_planes=tuple(planes),
        )
