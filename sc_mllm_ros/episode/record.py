"""An episode's record: the frame the policy saw, the task, and every attempt with its outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import re
import time
import uuid

import numpy as np

from sc_mllm_ros.geometry import CameraIntrinsics, Pose, rotation_from_quaternion

MAX_TASK_CHARS = 200
_VERBS = {"pull", "open", "please", "the", "a", "an", "of"}
# "pull the drawer", "open the top drawer", "pull out the second drawer of the chest", or just "drawer"
_TASK = re.compile(
    r"^\s*(?:(?:please\s+)?(?:pull|open)(?:\s+(?:out|open))?\s+(?:the\s+|an?\s+)?)?"
    r"([a-z][a-z0-9 _-]*?)\s*[.!]?\s*$",
    re.I,
)
# Words that pick one part among several but name nothing by themselves ("pull the top" is not a task).
_QUALIFIERS = set(
    "top bottom middle left right upper lower front back first second third fourth inner outer".split()
)


class BadInput(ValueError):
    """Input the loop refuses, with a message that says what is wrong; nothing is published for it."""


def parse_task(task: str) -> str:
    """The target part of a task string, normalised.

    ``"Open the left door of a cabinet."`` -> ``"left door of the cabinet"``, ``"pull the drawer"`` ->
    ``"drawer"``.  A part may be qualified ("top drawer", "second drawer") and may name its object after
    one "of" ("left door of the cabinet"); a qualifier alone, a dangling "of" or a second "of" are refused.
    """
    example = "send e.g. 'pull the drawer' or 'open the left door of the cabinet'"
    if not isinstance(task, str) or not task.strip():
        raise BadInput(f"task is empty; {example}")
    if len(task) > MAX_TASK_CHARS:
        raise BadInput(f"task has {len(task)} characters, more than the {MAX_TASK_CHARS} allowed")
    m = _TASK.match(task)
    if m is None:
        raise BadInput(f"cannot read an object from task {task!r}; {example}")
    words = m.group(1).lower().replace("_", " ").split()
    if not words or words[0] in _VERBS or words[-1] in _VERBS or words.count("of") > 1:
        raise BadInput(f"cannot read an object from task {task!r}; {example}")
    if "of" in words:
        i = words.index("of")
        part, obj = words[:i], [w for w in words[i + 1 :] if w not in ("the", "a", "an")]
        if not obj or any(w in _VERBS for w in obj):
            raise BadInput(f"task {task!r} names no object after 'of'; {example}")
        words = [*part, "of", "the", *obj]
    else:
        part = words
    if all(w in _QUALIFIERS for w in part) or any(w in _VERBS for w in part):
        raise BadInput(f"task {task!r} names no part (only {' '.join(part)!r}); {example}")
    return " ".join(words)


@dataclass(frozen=True)
class Frame:
    """One aligned RGB-D frame: ``rgb`` uint8 HxWx3, ``depth`` float32 HxW in metres."""

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: CameraIntrinsics
    stamp: float = 0.0

    def validate(self) -> Frame:
        """Raise :class:`BadInput` unless the arrays agree with each other and with the intrinsics."""
        rgb, depth, intr = self.rgb, self.depth, self.intrinsics
        if rgb.size == 0 or depth.size == 0:
            raise BadInput("image data is empty")
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise BadInput(f"RGB image must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
        if depth.ndim != 2:
            raise BadInput(f"depth image must be HxW, got shape {depth.shape}")
        if rgb.shape[:2] != depth.shape:
            raise BadInput(
                f"RGB {rgb.shape[1]}x{rgb.shape[0]} and depth {depth.shape[1]}x{depth.shape[0]} "
                "images differ in size; the depth must be aligned to the colour image"
            )
        if (intr.height, intr.width) != rgb.shape[:2]:
            raise BadInput(
                f"camera_info is for {intr.width}x{intr.height} but the image is "
                f"{rgb.shape[1]}x{rgb.shape[0]}"
            )
        return self


@dataclass
class Attempt:
    """One pose answer (from the pose prompt or a correction) and, once executed, its outcome."""

    family: str  # "pose" | "correction"
    contact: tuple[int, int]
    up: list[float]
    forward: list[float]
    position: list[float]  # goal position, camera optical frame
    quaternion: list[float]  # (x, y, z, w)
    text: str
    adapter_version: int
    latency_s: float
    feedback: str = ""
    hint_contact: tuple[int, int] | None = None
    hint_up: list[float] | None = None
    hint_forward: list[float] | None = None
    executed: bool = False
    success: bool | None = None  # the checker's verdict
    cause: str | None = None  # one of model.CAUSES
    report_text: str = ""
    ee_contact: tuple[int, int] | None = None
    ee_up: list[float] | None = None
    ee_forward: list[float] | None = None

    @classmethod
    def from_answer(
        cls, family: str, answer, pose: Pose, adapter_version: int, latency_s: float, **extra
    ) -> Attempt:
        """From a model ``PoseAnswer`` and the 6-DoF pose decoded from it."""
        return cls(
            family=family,
            contact=tuple(int(round(float(v))) for v in answer.contact),
            up=np.asarray(answer.up, float).tolist(),
            forward=np.asarray(answer.forward, float).tolist(),
            position=pose.position.tolist(),
            quaternion=pose.quaternion.tolist(),
            text=answer.text,
            adapter_version=adapter_version,
            latency_s=latency_s,
            **extra,
        )

    @property
    def pose(self) -> Pose:
        return Pose(np.asarray(self.position, float), rotation_from_quaternion(np.asarray(self.quaternion)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Attempt:
        d = dict(d)
        for key in ("contact", "hint_contact", "ee_contact"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        return cls(**d)


def new_episode_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


@dataclass
class EpisodeRecord:
    """Everything about one task on one scene: its frame, and the attempts in order."""

    episode_id: str
    task: str
    object_name: str
    frame: Frame
    attempts: list[Attempt] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def last(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def succeeded(self) -> bool:
        return any(a.success for a in self.attempts)
