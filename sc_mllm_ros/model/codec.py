"""Answers <-> geometry: answer-frame integers to camera pixels (``geometry``) and 6-DoF poses.

* Contact: the answer's ``[x, y]`` is (row, col) of a ``size`` x ``size`` answer frame (336, the paper's
  resolution) whatever the camera resolution; pixel centres map to pixel centres
  (``a = (p + 0.5) * size / H - 0.5``), rounded to the nearest integer.
* Directions: unit vectors in the camera optical frame, each component quantised as ``floor(v / 0.02)``
  (integers -50..50) and decoded as ``int * 0.02`` (ManipLLM), then normalised;
  ``geometry.rotation_from_up_forward``
  re-orthonormalises.  The angular error of one round trip is below ~2.5 degrees.
* 3D: ``geometry.lift_pixel`` (median of a small window) of the contact pixel with the noisy depth and
  the camera intrinsics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import re

import numpy as np

# pixel_to_answer / answer_to_pixel are pure numpy and live in geometry (the experts use them without
# torch); they stay importable from here, where the answer format is defined.
from sc_mllm_ros.geometry import (
    answer_to_pixel,
    CameraIntrinsics,
    lift_pixel,
    pixel_to_answer,
    Pose,
    project,
    rotation_from_up_forward,
)
from sc_mllm_ros.model.prompts import CAUSES, FAILURE_ANSWERS, POSE_ANSWER

QUANT = 0.02
QMAX = 50


def quantize_direction(v: np.ndarray | list[float]) -> tuple[int, int, int]:
    """Unit-normalise a 3-vector and quantise each component as ``floor(v / 0.02)``."""
    v = np.asarray(v, dtype=float).reshape(-1)
    if v.shape != (3,):
        raise ValueError(f"a direction has 3 components, got {v.shape[0]}")
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError(f"direction {v.tolist()} has no finite length")
    q = np.floor(v / n / QUANT + 1e-9)  # the epsilon keeps exact multiples such as 0.06 on their own cell
    return tuple(int(x) for x in np.clip(q, -QMAX, QMAX))


def dequantize_direction(q: tuple[int, int, int] | list[int]) -> np.ndarray:
    """Answer integers -> unit vector (``int * 0.02``, normalised)."""
    q = [int(x) for x in q]
    if len(q) != 3 or any(abs(x) > QMAX for x in q):
        raise ValueError(f"direction integers must be 3 values in [-{QMAX}, {QMAX}], got {q}")
    v = np.asarray(q, dtype=float) * QUANT
    n = np.linalg.norm(v)
    if n < 1e-9:
        raise ValueError("direction [0, 0, 0] has no length")
    return v / n


def pose_values(
    contact_ans: tuple[int, int], up_q: tuple[int, ...], fwd_q: tuple[int, ...]
) -> dict[str, int]:
    """Slot values of a pose answer / failure or correction prompt."""
    return {
        "row": int(contact_ans[0]),
        "col": int(contact_ans[1]),
        "ux": up_q[0],
        "uy": up_q[1],
        "uz": up_q[2],
        "fx": fwd_q[0],
        "fy": fwd_q[1],
        "fz": fwd_q[2],
    }


def encode_pose_values(
    contact: tuple[float, float], up, forward, image_hw: tuple[int, int], size: int = 336
) -> dict[str, int]:
    """Camera-pixel contact + directions -> the integers of the answer text."""
    return pose_values(
        pixel_to_answer(contact, image_hw, size), quantize_direction(up), quantize_direction(forward)
    )


_INT = r"\s*(-?\d+)\s*"
_POSE_RE = re.compile(
    re.escape(POSE_ANSWER)
    .replace(r"\{row\}", _INT)
    .replace(r"\{col\}", _INT)
    .replace(r"\{ux\}", _INT)
    .replace(r"\{uy\}", _INT)
    .replace(r"\{uz\}", _INT)
    .replace(r"\{fx\}", _INT)
    .replace(r"\{fy\}", _INT)
    .replace(r"\{fz\}", _INT)
)


def parse_pose_text(text: str, size: int = 336) -> dict[str, int]:
    """Answer text -> its eight integers; ValueError if it does not follow the template or is out of range."""
    m = _POSE_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a pose answer: {text!r}")
    vals = dict(zip(("row", "col", "ux", "uy", "uz", "fx", "fy", "fz"), (int(g) for g in m.groups())))
    if not (0 <= vals["row"] < size and 0 <= vals["col"] < size):
        raise ValueError(f"contact point out of the {size}x{size} answer frame in {text!r}")
    if any(abs(vals[k]) > QMAX for k in ("ux", "uy", "uz", "fx", "fy", "fz")):
        raise ValueError(f"direction component out of [-{QMAX}, {QMAX}] in {text!r}")
    return vals


def parse_failure_text(text: str) -> str:
    """Failure answer text -> its cause (one of ``CAUSES``)."""
    for cause, sentence in FAILURE_ANSWERS.items():
        if text.strip() == sentence:
            return cause
    raise ValueError(f"not a failure answer: {text!r}")


def lift_pose(
    contact: tuple[float, float],
    up: np.ndarray,
    forward: np.ndarray,
    depth: np.ndarray,
    intr: CameraIntrinsics,
) -> Pose:
    """Contact pixel (in the intrinsics' image) + depth + directions -> 6-DoF camera-frame pose."""
    if np.asarray(depth).shape[:2] != (intr.height, intr.width):
        raise ValueError(
            f"depth shape {np.asarray(depth).shape} does not match intrinsics {intr.height}x{intr.width}"
        )
    depth = np.asarray(depth)
    metres = depth / 1000.0 if np.issubdtype(depth.dtype, np.integer) else depth
    return Pose(position=lift_pixel(metres, contact, intr), rotation=rotation_from_up_forward(up, forward))


def pose_to_answer_values(pose: Pose, intr: CameraIntrinsics, size: int = 336) -> dict[str, int]:
    """6-DoF camera-frame pose -> answer integers (inverse of :func:`lift_pose` up to quantisation)."""
    pixel = project(pose.position, intr)
    return encode_pose_values(pixel, pose.up, pose.forward, (intr.height, intr.width), size)


@dataclass
class PoseAnswer:
    """A decoded pose answer.  ``contact`` is (row, col) in the pixels of the image it was predicted from."""

    contact: tuple[float, float]
    up: np.ndarray
    forward: np.ndarray
    text: str
    forward_passes: int = 0
    values: dict[str, int] = field(default_factory=dict)
    image_hw: tuple[int, int] = (336, 336)

    @classmethod
    def from_values(
        cls, values: dict[str, int], image_hw: tuple[int, int], size: int = 336, forward_passes: int = 0
    ) -> PoseAnswer:
        up = dequantize_direction([values["ux"], values["uy"], values["uz"]])
        fwd = dequantize_direction([values["fx"], values["fy"], values["fz"]])
        return cls(
            contact=answer_to_pixel((values["row"], values["col"]), image_hw, size),
            up=up,
            forward=fwd,
            text=POSE_ANSWER.format(**values),
            forward_passes=forward_passes,
            values=dict(values),
            image_hw=tuple(image_hw),
        )

    @classmethod
    def from_text(cls, text: str, image_hw: tuple[int, int], size: int = 336) -> PoseAnswer:
        return cls.from_values(parse_pose_text(text, size), image_hw, size)

    def to_pose(self, depth: np.ndarray, intr: CameraIntrinsics) -> Pose:
        """6-DoF pose; the contact is rescaled if the depth image's size differs from the RGB image's."""
        h, w = self.image_hw
        row = (self.contact[0] + 0.5) * intr.height / h - 0.5
        col = (self.contact[1] + 0.5) * intr.width / w - 0.5
        return lift_pose((row, col), self.up, self.forward, depth, intr)


@dataclass
class FailureAnswer:
    cause: str
    text: str
    forward_passes: int = 0
    success_probability: float | None = None  # the checker's confidence that the attempt succeeded
    probabilities: dict[str, float] | None = None  # of each answer, normalised over the four

    def __post_init__(self) -> None:
        if self.cause not in CAUSES:
            raise ValueError(f"cause must be one of {CAUSES}, got {self.cause!r}")

    @property
    def success(self) -> bool:
        return self.cause == "success"
