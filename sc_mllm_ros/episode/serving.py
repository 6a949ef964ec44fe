"""The model calls of one episode: predict, grade, correct; and hot-swapping the adapter while serving."""

from __future__ import annotations

from dataclasses import dataclass
import threading
import time

import numpy as np

from sc_mllm_ros.episode.adapters import AdapterStore
from sc_mllm_ros.episode.record import Attempt, BadInput, EpisodeRecord, Frame
from sc_mllm_ros.geometry import CameraIntrinsics, Pose, project, to_pixel


@dataclass(frozen=True)
class Hints:
    """An expert's feedback for the correction prompt (the paper: candidate point and orientation)."""

    contact: tuple[int, int]
    up: np.ndarray
    forward: np.ndarray
    feedback: str = ""


@dataclass(frozen=True)
class Grade:
    success: bool
    cause: str
    text: str
    ee_contact: tuple[int, int]
    ee_up: list[float]
    ee_forward: list[float]
    confidence: float = float("nan")  # the checker's probability that the attempt succeeded


def ee_state(ee_pose: Pose, intr: CameraIntrinsics) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """The end-effector state of the failure prompt: its pixel in the image and its up/forward directions."""
    row, col = project(ee_pose.position, intr)
    pixel = (int(np.clip(round(row), 0, intr.height - 1)), int(np.clip(round(col), 0, intr.width - 1)))
    return pixel, ee_pose.up, ee_pose.forward


class ModelServer:
    """One SC-MLLM behind a lock, with the version of the adapter it serves.

    Calls come from worker threads (never the ROS executor thread); an adapter swap waits for the
    answer in progress and the next answer uses the new adapter.
    """

    def __init__(self, model, adapter_version: int = 0, model_version: str = "") -> None:
        self.model = model
        self.adapter_version = adapter_version
        self.model_version = model_version
        self._lock = threading.Lock()

    def predict(self, frame: Frame, object_name: str) -> Attempt:
        frame.validate()
        with self._lock:
            t0 = time.perf_counter()
            answer = self.model.predict_pose(frame.rgb, object_name)
            version = self.adapter_version
        return self._attempt("pose", answer, frame, version, time.perf_counter() - t0)

    def correct(self, record: EpisodeRecord, hints: Hints) -> Attempt:
        frame = record.frame
        with self._lock:
            t0 = time.perf_counter()
            answer = self.model.correct(frame.rgb, record.object_name, hints.contact, hints.up, hints.forward)
            version = self.adapter_version
        return self._attempt(
            "correction",
            answer,
            frame,
            version,
            time.perf_counter() - t0,
            feedback=hints.feedback,
            hint_contact=tuple(int(v) for v in hints.contact),
            hint_up=np.asarray(hints.up, float).tolist(),
            hint_forward=np.asarray(hints.forward, float).tolist(),
        )

    def grade(
        self,
        end_rgb: np.ndarray,
        object_name: str,
        ee_pose: Pose,
        intr: CameraIntrinsics,
        initial_rgb: np.ndarray | None = None,
        threshold: float | None = None,
    ) -> Grade:
        """The checker's verdict; ``initial_rgb``: the image the attempt was predicted from (before/after)."""
        contact, up, forward = ee_state(ee_pose, intr)
        with self._lock:
            report = self.model.detect_failure(
                end_rgb, object_name, contact, up, forward, initial_rgb=initial_rgb, threshold=threshold
            )
        return Grade(
            success=report.cause == "success",
            cause=report.cause,
            text=report.text,
            ee_contact=contact,
            ee_up=up.tolist(),
            ee_forward=forward.tolist(),
            confidence=float(report.success_probability),
        )

    def swap_adapter(self, path: str, version: int) -> bool:
        """Serve the adapter released in directory ``path`` from the next answer on; False if not newer."""
        with self._lock:
            if version <= self.adapter_version:
                return False
            AdapterStore.load(self.model, path)
            self.adapter_version = version
            return True

    @staticmethod
    def _attempt(family: str, answer, frame: Frame, version: int, latency: float, **extra) -> Attempt:
        try:
            pose = answer.to_pose(frame.depth, frame.intrinsics)
        except ValueError as err:
            # NaN or zero depth at the contact pixel: no goal can be made from this answer.
            raise BadInput(f"cannot lift the answer to a 6-DoF goal: {err}") from err
        return Attempt.from_answer(family, answer, pose, version, latency, **extra)


def resolve_hints(record: EpisodeRecord, contact=None, up=None, forward=None, feedback: str = "") -> Hints:
    """Hints for correcting ``record``; the ones the expert left out come from its last attempt."""
    last = record.last
    if last is None:
        raise BadInput(f"episode {record.episode_id} has no attempt to correct")
    h, w = record.frame.rgb.shape[:2]
    contact = last.contact if contact is None else tuple(int(v) for v in contact)
    if not (0 <= contact[0] < h and 0 <= contact[1] < w):
        raise BadInput(f"contact hint {contact} is outside the {w}x{h} image")
    dirs = []
    for name, given, fallback in (("up", up, last.up), ("forward", forward, last.forward)):
        v = np.asarray(fallback if given is None else given, dtype=float)
        n = np.linalg.norm(v)
        if v.shape != (3,) or not np.isfinite(n) or n < 1e-6:
            raise BadInput(f"{name} hint {v.tolist()} is not a direction (needs a finite non-zero 3-vector)")
        dirs.append(v / n)
    if abs(float(np.dot(*dirs))) > 0.99:
        raise BadInput("up and forward hints are parallel")
    return Hints(contact=contact, up=dirs[0], forward=dirs[1], feedback=feedback)


def untried_candidate(record: EpisodeRecord, pixels, min_px: float) -> int:
    """Index of the best candidate farther than ``min_px`` from each contact and hint tried so far (else 0).

    A failed attempt is evidence against its contact, and against its hint: a correction that landed away from
    its hint would otherwise get the same hint again and repeat its answer.
    """
    points = [a.contact for a in record.attempts]
    points += [a.hint_contact for a in record.attempts if a.hint_contact is not None]
    tried = np.array(points, dtype=float).reshape(-1, 2)
    for i, p in enumerate(pixels):
        if tried.size == 0 or np.min(np.linalg.norm(tried - np.asarray(p, float), axis=1)) > min_px:
            return i
    return 0


def expert_hints(record: EpisodeRecord, auto, position: bool = True, rotation: bool = True) -> Hints:
    """Hints from the RGB-D experts' output ``auto`` (an ``experts.Hints``); the others from the last attempt.

    The position hint is the best candidate not yet tried in this episode (``untried_candidate``), with the
    rotation expert's plane fit there. One conversion for the ROS graph and the evaluation, so both
    correct alike.
    """
    # Candidates the rotation expert could fit a plane at (the first always has one).
    fits = [(p, f) for p, f in zip(auto.candidate_pixels, auto.candidate_planes) if f is not None]
    fits = fits or [(auto.pixel, auto.plane)]
    # The expert's candidates are 16 px apart at 224 px (its non-maximum suppression) and a correction lands
    # a few pixels from its hint: within half that distance an answer tried the candidate.
    h, w = record.frame.rgb.shape[:2]
    i = untried_candidate(record, [p for p, _ in fits], min_px=0.036 * max(h, w)) if position else 0
    pixel, plane = fits[i]
    contact = to_pixel(pixel) if position else None
    up, forward = (plane.up, plane.forward) if rotation else (None, None)
    feedback = (
        "automatic experts" if i == 0 else f"automatic experts (candidate {i + 1}: the better ones failed)"
    )
    return resolve_hints(record, contact, up, forward, feedback=feedback)


@dataclass(frozen=True)
class FrameExperts:
    """The loop's experts: the RGB-D experts (``experts.Experts``) on the episode's recorded frame.

    All a real cell has (no ground truth). A refusal leaves the correction to the model's own last answer.
    """

    experts: object

    def hints(self, record: EpisodeRecord) -> Hints:
        from sc_mllm_ros.experts import ExpertError

        f = record.frame
        try:
            auto = self.experts.hints(f.rgb, f.depth, f.intrinsics, record.task)
        except ExpertError as err:
            return resolve_hints(record, feedback=f"automatic experts refused: {err}")
        return expert_hints(record, auto)
