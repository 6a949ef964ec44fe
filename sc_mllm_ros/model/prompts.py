"""The paper's three prompt families, their answers, and the Alpaca-style wrapper (ManipLLM), as segments.

A template is split once into fixed text and named slots.  Number slots hold integers: the contact point
``[x, y]`` is (row, col) of the 336x336 answer frame (``x`` = ROW, like ManipLLM and ``geometry.py``),
directions
are ``floor(v / 0.02)`` per component.  Token sequences are always built segment by segment (see
``tokenizer.SCTokenizer.encode_segments``) so training and constrained decoding see identical tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
import string

from sc_mllm_ros.causes import CAUSES  # noqa: F401  (one taxonomy for prompts, labels and messages)

FAMILIES = ("pose", "failure", "correction")

WRAPPER = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:"
)

_POSE = "Predict the contact point and orientation for pulling the {object}"
INSTRUCTIONS = {
    "pose": _POSE,
    "failure": (
        "The robot's end-effector state is at [{row}, {col}], with the gripper's up 3D direction "
        "[{ux}, {uy}, {uz}] and the gripper's forward 3D direction [{fx}, {fy}, {fz}]. "
        "Detect the failure causes of pulling the {object}."
    ),
    "correction": (
        "Here are potential contact point coordinates: [{row}, {col}], Here are the potential orientations: "
        "the gripper's upward 3D direction is [{ux}, {uy}, {uz}], and the gripper's forward 3D direction is "
        "[{fx}, {fy}, {fz}]. " + _POSE + "."
    ),
}

POSE_ANSWER = (
    "The contact point is [{row}, {col}], the gripper up 3D direction is [{ux}, {uy}, {uz}], "
    "the gripper forward 3D direction is [{fx}, {fy}, {fz}]"
)
# The paper only gives the failure sentences; a success needs its own answer (our choice).
FAILURE_ANSWERS = {
    "success": "No failure, the manipulation is successful.",
    "position": "Failure cause is incorrect prediction of position.",
    "rotation": "Failure cause is incorrect prediction of rotation.",
    "position and rotation": "Failure cause is incorrect prediction of position and rotation.",
}

PIXEL_SLOTS = ("row", "col")
DIRECTION_SLOTS = ("ux", "uy", "uz", "fx", "fy", "fz")


@dataclass(frozen=True)
class Slot:
    """A named hole in a template: an integer in ``[lo, hi]``, free text or a choice (``cause``)."""

    name: str
    lo: int = 0
    hi: int = 0

    @property
    def is_int(self) -> bool:
        return self.name in PIXEL_SLOTS or self.name in DIRECTION_SLOTS


Segment = str | Slot


def slot_range(name: str, answer_size: int = 336) -> tuple[int, int]:
    if name in PIXEL_SLOTS:
        return 0, answer_size - 1
    if name in DIRECTION_SLOTS:
        return -50, 50
    raise ValueError(f"{name!r} is not a number slot")


def split_template(template: str, answer_size: int = 336) -> list[Segment]:
    """``"a [{row}, {col}]"`` -> ``["a [", Slot("row"), ", ", Slot("col"), "]"]``."""
    out: list[Segment] = []
    for text, name, _, _ in string.Formatter().parse(template):
        if text:
            out.append(text)
        if name is not None:
            lo, hi = slot_range(name, answer_size) if name in PIXEL_SLOTS + DIRECTION_SLOTS else (0, 0)
            out.append(Slot(name, lo, hi))
    return out


def prompt_segments(family: str, answer_size: int = 336) -> list[Segment]:
    """Full prompt (wrapper + instruction) of a family."""
    if family not in INSTRUCTIONS:
        raise ValueError(f"unknown prompt family {family!r}; expected one of {FAMILIES}")
    return split_template(WRAPPER.replace("{instruction}", INSTRUCTIONS[family]), answer_size)


def answer_segments(family: str, answer_size: int = 336) -> list[Segment]:
    """Answer grammar: pose and correction share the pose answer; failure is one ``cause`` choice."""
    if family in ("pose", "correction"):
        return split_template(POSE_ANSWER, answer_size)
    if family == "failure":
        return [Slot("cause")]
    raise ValueError(f"unknown prompt family {family!r}; expected one of {FAMILIES}")


def fill(segments: list[Segment], values: dict[str, object]) -> str:
    """Text of a segment list with its slots filled (``cause`` is filled with its answer sentence)."""
    parts = []
    for seg in segments:
        if isinstance(seg, str):
            parts.append(seg)
        elif seg.name == "cause":
            parts.append(FAILURE_ANSWERS[str(values["cause"])])
        else:
            parts.append(str(values[seg.name]))
    return "".join(parts)
