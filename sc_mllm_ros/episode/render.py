"""Debug images: the frame with the contact point, the gripper axes and a status line drawn on it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sc_mllm_ros.episode.record import Attempt
from sc_mllm_ros.episode.store import EpisodeStore
from sc_mllm_ros.geometry import CameraIntrinsics, project

AXIS_LENGTH_M = 0.06


def annotate(
    rgb: np.ndarray, attempt: Attempt, intr: CameraIntrinsics, status: str = "", min_size: int = 0
) -> np.ndarray:
    """A copy of ``rgb`` (uint8 HxWx3) with the attempt drawn: contact (circle), up (blue), forward (red).

    ``min_size`` upscales small frames first (nearest neighbour) so the drawing and the text stay legible.
    """
    k = max(1, -(-min_size // rgb.shape[0])) if min_size else 1
    out = np.ascontiguousarray(np.repeat(np.repeat(rgb, k, axis=0), k, axis=1))
    intr = intr.scaled(intr.width * k, intr.height * k) if k > 1 else intr
    scale = max(1, out.shape[0] // 112)
    row, col = ((v + 0.5) * k - 0.5 for v in attempt.contact)
    cv2.circle(out, (int(round(col)), int(round(row))), 3 * scale, (255, 255, 0), 1)
    pose = attempt.pose
    for axis, color in ((pose.up, (0, 128, 255)), (pose.forward, (255, 0, 0))):
        try:
            r, c = project(pose.position + AXIS_LENGTH_M * axis, intr)
        except ValueError:
            continue  # the axis tip is behind the camera
        start, tip = (int(round(col)), int(round(row))), (int(round(c)), int(round(r)))
        cv2.arrowedLine(out, start, tip, color, scale, tipLength=0.25)
    if status:
        white = (255, 255, 255)
        cv2.putText(out, status[:48], (4, 12 * scale), cv2.FONT_HERSHEY_PLAIN, 0.6 * scale, white, 1)
    return out


def annotate_candidates(rgb: np.ndarray, pixels, min_size: int = 0) -> np.ndarray:
    """A copy of ``rgb`` with the experts' candidate contacts (row, col) numbered 0.. (best first)."""
    k = max(1, -(-min_size // rgb.shape[0])) if min_size else 1
    out = np.ascontiguousarray(np.repeat(np.repeat(rgb, k, axis=0), k, axis=1))
    scale = max(1, out.shape[0] // 112)
    for i, (row, col) in enumerate(pixels):
        centre = (int(round((col + 0.5) * k - 0.5)), int(round((row + 0.5) * k - 0.5)))
        color = (0, 255, 0) if i == 0 else (255, 255, 0)
        cv2.circle(out, centre, 3 * scale, color, 1)
        label = (centre[0] + 3 * scale, centre[1] - 2 * scale)
        cv2.putText(out, str(i), label, cv2.FONT_HERSHEY_PLAIN, 0.8 * scale, color, 1)
    return out


def save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def save_debug_images(episodes: EpisodeStore, summary: dict, out: Path) -> list[str]:
    """One annotated PNG per attempt of every episode in ``summary``; their paths relative to ``out``."""
    written = []
    for ep in summary["episodes"]:
        rec = episodes.get(ep["episode_id"]) if ep.get("episode_id") else None
        if rec is None:
            continue
        for i, att in enumerate(rec.attempts, 1):
            verdict = f"failed: {att.cause}" if att.executed and not att.success else "success"
            if not att.executed:
                verdict = "not executed"
            name = Path("images") / f"{rec.episode_id}_{i}_{att.family}.png"
            save_png(
                out / name,
                annotate(rec.frame.rgb, att, rec.frame.intrinsics, f"#{i} {att.family} {verdict}", 336),
            )
            written.append(str(name))
    return written
